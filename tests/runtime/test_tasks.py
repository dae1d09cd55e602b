"""Agent call tasks: gated like messages, closed with a disposition that feeds the case."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update

from parcours.domain.journey import Journey
from parcours.journeys.library import Library
from parcours.runtime.tasks import Disposition, TaskError, complete_task, due_tasks
from parcours.runtime.tick import run_tick
from parcours.store.messages import MessageStore
from parcours.store.schema import (
    CaseRow,
    DebtorRow,
    EventRow,
    InvoiceRow,
    OutboxRow,
    PromiseRow,
)
from parcours.store.uow import UnitOfWork
from tests.runtime.test_tick import START, load, rows

# A call every day after the due date, until paid.
CALLS: dict[str, Any] = {
    "key": "calls",
    "version": 1,
    "persona": None,
    "description": "call, then call again the next day",
    "start": "wait",
    "nodes": [
        {"id": "wait", "type": "wait", "anchor": "due_date", "days": 1, "next": "call"},
        {"id": "call", "type": "task", "kind": "call", "script": "supportive_call", "next": "pause"},
        {"id": "pause", "type": "wait_event", "events": ["payment"], "timeout_days": 1, "on_event": "paid", "on_timeout": "call"},
        {"id": "paid", "type": "exit", "reason": "paid"},
    ],
}  # fmt: skip
DUE = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)  # a Monday, two days after the due date


def tick(engine: Engine, at: dt.datetime) -> Any:
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        run_tick(uow.connection(), creditor.id, Library([Journey.model_validate(CALLS)]), at)
        uow.commit()
        return creditor.id


def open_tasks(engine: Engine, creditor: Any, at: dt.datetime) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return due_tasks(connection, creditor, at, 50)


def test_a_call_task_is_gated_and_closed_with_a_promise(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    tick(engine, START)
    creditor = tick(engine, DUE)
    tasks = open_tasks(engine, creditor, DUE)
    # Alice and Bruno have a phone; Chris has none: his call is skipped by the gate.
    assert sorted(t[1] for t in tasks) == ["C-D1", "C-D2"]
    skipped = [
        r
        for r in rows(engine, OutboxRow.kind, OutboxRow.status, OutboxRow.reason)
        if r[1] == "skipped"
    ]
    assert skipped == [("task", "skipped", "no consent or contact point for phone")]
    alice = next(t[0] for t in tasks if t[1] == "C-D1")
    bruno = next(t[0] for t in tasks if t[1] == "C-D2")
    done = complete_task(
        engine, creditor, alice, Disposition.PROMISE, DUE,
        promise=(12_000, "EUR", dt.date(2026, 12, 20)),
    )  # fmt: skip
    assert done.endswith("promise")
    assert rows(engine, PromiseRow.amount_minor, PromiseRow.due_on, PromiseRow.state) == [
        (12_000, dt.date(2026, 12, 20), "pending")
    ]
    complete_task(engine, creditor, bruno, Disposition.WRONG_NUMBER, DUE)
    assert dict(rows(engine, DebtorRow.ref, DebtorRow.phone_consent))["D2"] == "opted_out"
    events = sorted(t for (t,) in rows(engine, EventRow.type))
    assert events == ["call.wrong_number", "promise.made"]
    with pytest.raises(TaskError, match="already sent"):
        complete_task(engine, creditor, alice, Disposition.NO_ANSWER, DUE)
    with pytest.raises(TaskError, match="no agent task"):
        complete_task(engine, creditor, "nope", Disposition.NO_ANSWER, DUE)
    with pytest.raises(TaskError, match="amount and date"):
        complete_task(engine, creditor, alice, Disposition.PROMISE, DUE)
    # Bruno's number is wrong: no call is planned for him any more.
    tick(engine, DUE + dt.timedelta(days=1))
    later = open_tasks(engine, creditor, DUE + dt.timedelta(days=1))
    assert "C-D2" not in {t[1] for t in later}


def test_no_call_for_a_week_after_a_conversation(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    tick(engine, START)
    creditor = tick(engine, DUE)
    alice = next(t[0] for t in open_tasks(engine, creditor, DUE) if t[1] == "C-D1")
    complete_task(engine, creditor, alice, Disposition.RIGHT_PARTY, DUE)
    for day in range(1, 7):
        at = DUE + dt.timedelta(days=day)
        tick(engine, at)
        assert "C-D1" not in {t[1] for t in open_tasks(engine, creditor, at)}
    delayed = [r for r in rows(engine, OutboxRow.status, OutboxRow.reason) if r[0] == "delayed"]
    # Alice's calls of that week wait for its end (Bruno's only for Sunday).
    assert sum("conversation on" in reason for _, reason in delayed) >= 1
    week = DUE + dt.timedelta(days=7, hours=1)
    assert "C-D1" in {t[1] for t in open_tasks(engine, creditor, week)}


def test_a_dispute_pauses_collection_until_it_is_closed(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    tick(engine, START)
    creditor = tick(engine, DUE)
    alice = next(t[0] for t in open_tasks(engine, creditor, DUE) if t[1] == "C-D1")
    complete_task(engine, creditor, alice, Disposition.DISPUTE, DUE)
    for day in range(1, 4):  # no more calls for Alice while her dispute is open
        at = DUE + dt.timedelta(days=day)
        tick(engine, at)
        assert "C-D1" not in {t[1] for t in open_tasks(engine, creditor, at)}
        assert "C-D2" in {t[1] for t in open_tasks(engine, creditor, at)}
    with UnitOfWork(engine) as uow:  # an agent rejects the dispute: collection resumes
        creditor_id = uow.creditors.by_name("acme").id  # type: ignore[union-attr]
        store = MessageStore(uow.connection(), creditor_id)
        found = store.case_debtor(
            next(str(c) for c, d in rows(engine, CaseRow.id, CaseRow.ref) if d == "C-D1")
        )
        assert found is not None
        store.add_event(
            *found, "dispute.closed", DUE + dt.timedelta(days=4), {"outcome": "rejected"}
        )
        uow.commit()
    resumed = DUE + dt.timedelta(days=4, hours=1)
    tick(engine, resumed)
    assert "C-D1" in {t[1] for t in open_tasks(engine, creditor, resumed)}


def test_a_call_planned_for_a_case_paid_or_held_since_is_not_offered(
    engine: Engine, tmp_path: Path
) -> None:
    """The gate looks again when an agent asks for work, as at send time: a case paid in
    full or put on hold after the call was planned is not called (no tick in between);
    after 21:00 no call is offered at all."""
    load(engine, tmp_path)
    tick(engine, START)
    creditor = tick(engine, DUE)
    assert sorted(t[1] for t in open_tasks(engine, creditor, DUE)) == ["C-D1", "C-D2"]
    assert open_tasks(engine, creditor, DUE.replace(hour=21, minute=30)) == []  # 22:30 local
    cases = {ref: case for case, ref in rows(engine, CaseRow.id, CaseRow.ref)}
    with UnitOfWork(engine) as uow:
        connection = uow.connection()
        connection.execute(
            update(InvoiceRow)
            .where(InvoiceRow.case_id == cases["C-D1"])
            .values(paid_minor=InvoiceRow.amount_minor)
        )
        store = MessageStore(connection, creditor)
        alice, bruno = (store.case_debtor(str(cases[ref])) for ref in ("C-D1", "C-D2"))
        assert alice is not None and bruno is not None
        paid_at = DUE + dt.timedelta(minutes=1)
        store.add_event(*alice, "payment.booked", paid_at, {})  # as booking a payment does
        store.add_event(*bruno, "legal_hold.set", paid_at, {})
        uow.commit()
    later = DUE + dt.timedelta(minutes=5)
    with engine.connect() as connection:
        listed = MessageStore(connection, creditor).open_tasks(later, 50)
    assert sorted(t[1] for t in listed) == ["C-D1", "C-D2"]  # still queued in the outbox
    assert open_tasks(engine, creditor, later) == []
    # At the next tick Alice's journey ends (paid): her call is dropped for good; Bruno's
    # waits for the end of the hold.
    tick(engine, DUE + dt.timedelta(hours=2))
    tasks = rows(engine, OutboxRow.case_id, OutboxRow.kind, OutboxRow.status, OutboxRow.reason)
    assert [(s, r) for c, k, s, r in tasks if c == cases["C-D1"] and k == "task"] == [
        ("skipped", "journey ended: paid")
    ]
    assert [s for c, k, s, _ in tasks if c == cases["C-D2"] and k == "task"] == ["queued"]


def test_calls_held_back_do_not_crowd_out_the_others(engine: Engine, tmp_path: Path) -> None:
    """A list of one: the first task in the queue is on hold, the next one is offered."""
    load(engine, tmp_path)
    tick(engine, START)
    creditor = tick(engine, DUE)
    with UnitOfWork(engine) as uow:
        store = MessageStore(uow.connection(), creditor)
        first, second = store.open_tasks(DUE, 50)
        store.add_event(first[6], first[7], "legal_hold.set", DUE + dt.timedelta(minutes=1), {})
        uow.commit()
    with engine.connect() as connection:
        offered = due_tasks(connection, creditor, DUE + dt.timedelta(minutes=5), 1)
    assert [t[0] for t in offered] == [second[0]]
