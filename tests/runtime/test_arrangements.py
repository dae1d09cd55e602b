"""Promises, payment plans and disputes through real ticks (clock travel) on SQLite and
PostgreSQL: each changes the journey as the issue describes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine

from parcours.runtime.arrangements import (
    CaseError,
    create_plan,
    make_promise,
    open_dispute,
    resolve_dispute,
)
from parcours.store.payments import PaymentStore
from parcours.store.schema import (
    CaseRow,
    DisputeRow,
    EnrolmentRow,
    EventRow,
    OutboxRow,
    PaymentPlanRow,
    PlanInstalmentRow,
    PromiseRow,
)
from tests.runtime.test_payments import book, creditor, line, ogm
from tests.runtime.test_tick import START, load, rows, tick

DAY = dt.timedelta(days=1)


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    load(engine, tmp_path)
    return engine


def sent_to(engine: Engine, case_ref: str, after: dt.datetime) -> list[str]:
    """Templates sent on a case after `after`."""
    cases = dict(rows(engine, CaseRow.ref, CaseRow.id))
    return [
        t
        for c, t, s, at in rows(
            engine, OutboxRow.case_id, OutboxRow.template, OutboxRow.status, OutboxRow.sent_at
        )
        if c == cases[case_ref] and s == "sent" and at is not None and at > after
    ]


def events(engine: Engine) -> list[str]:
    return [t for (t,) in rows(engine, EventRow.type)]


def test_a_promise_is_broken_after_its_grace_and_kept_when_paid(
    loaded: Engine, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    who = creditor(loaded)
    tick(loaded, START, outbox)
    make_promise(
        loaded, who, "C-D1", 12_000, dt.date(2026, 12, 10), START, source="debtor", actor="t"
    )
    make_promise(
        loaded, who, "C-D2", 8_000, dt.date(2026, 12, 10), START, source="agent", actor="t"
    )
    assert events(loaded).count("promise.made") == 2
    for day in range(1, 13):  # 10 Dec + 3 days of grace: broken on the 14th
        tick(loaded, START + day * DAY, outbox)
    assert {s for (s,) in rows(loaded, PromiseRow.state)} == {"pending"}
    book(loaded, line("K1", 8_000, structured=ogm(loaded, "F2")), now=START + 12 * DAY)
    result, _ = tick(loaded, START + 13 * DAY, outbox)
    assert result.arrangements == {"promise.kept": 1, "promise.broken": 1}
    states = dict(rows(loaded, PromiseRow.amount_minor, PromiseRow.state))
    assert states == {12_000: "broken", 8_000: "kept"}
    assert "promise.broken" in events(loaded)


def test_a_promise_is_checked_against_the_rules(loaded: Engine) -> None:
    who = creditor(loaded)
    with pytest.raises(CaseError, match="due_on"):
        make_promise(
            loaded, who, "C-D1", 100, dt.date(2026, 11, 1), START, source="debtor", actor="t"
        )
    with pytest.raises(CaseError, match="amount"):
        make_promise(
            loaded, who, "C-D1", 99_999, dt.date(2026, 12, 9), START, source="debtor", actor="t"
        )
    with pytest.raises(CaseError, match="no case"):
        make_promise(
            loaded, who, "C-X", 100, dt.date(2026, 12, 9), START, source="debtor", actor="t"
        )
    assert rows(loaded, PromiseRow.id) == []


def test_a_running_plan_pauses_collection_until_an_instalment_is_missed(
    loaded: Engine, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    who = creditor(loaded)
    tick(loaded, START, outbox)
    made = create_plan(
        loaded, who, "C-D3", 3, dt.date(2026, 12, 15), START, source="debtor", actor="t"
    )
    assert [i.amount_minor for i in made.instalments] == [10_000, 10_000, 10_000]
    assert len(rows(loaded, PlanInstalmentRow.number)) == 3
    for day in range(1, 20):  # the first instalment (15 Dec, 5 days of grace) is paid
        if day == 14:
            book(loaded, line("I1", 10_000, structured=ogm(loaded, "F3")), now=START + day * DAY)
        tick(loaded, START + day * DAY, outbox)
    assert sent_to(loaded, "C-D3", START) == []  # Chris heard nothing while he paid
    for day in range(20, 52):  # the second (15 Jan) is missed: collection resumes
        tick(loaded, START + day * DAY, outbox)
    assert "plan.missed" in events(loaded)
    assert [s for (s,) in rows(loaded, PaymentPlanRow.state)] in (["missed"], ["broken"])
    assert sent_to(loaded, "C-D3", START + 20 * DAY)


def test_a_plan_outside_the_limits_is_refused_naming_the_rule(loaded: Engine) -> None:
    who = creditor(loaded)
    with pytest.raises(CaseError, match="max_instalments"):
        create_plan(
            loaded, who, "C-D3", 24, dt.date(2026, 12, 15), START, source="debtor", actor="t"
        )
    with pytest.raises(CaseError, match="min_instalment"):
        create_plan(
            loaded, who, "C-D2", 6, dt.date(2026, 12, 15), START, source="debtor", actor="t"
        )
    assert rows(loaded, PaymentPlanRow.id) == []


def test_a_dispute_pauses_everything_until_an_agent_rules(loaded: Engine, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    who = creditor(loaded)
    tick(loaded, START, outbox)
    open_dispute(
        loaded, who, "C-D2", "amount_wrong", "I was billed twice", START, source="debtor", actor="t"
    )
    with pytest.raises(CaseError, match="already"):
        open_dispute(loaded, who, "C-D2", "other", None, START, source="debtor", actor="t")
    with pytest.raises(CaseError, match="reason"):
        open_dispute(loaded, who, "C-D1", "because", None, START, source="debtor", actor="t")
    for day in range(1, 12):
        tick(loaded, START + day * DAY, outbox)
    assert sent_to(loaded, "C-D2", START) == []
    assert sent_to(loaded, "C-D1", START)  # the others go on
    resolve_dispute(loaded, who, "C-D2", "rejected", START + 11 * DAY, actor="agent:ann")
    for day in range(12, 20):
        tick(loaded, START + day * DAY, outbox)
    assert sent_to(loaded, "C-D2", START + 11 * DAY)  # the journey resumed

    open_dispute(loaded, who, "C-D1", "not_mine", None, START + 12 * DAY, source="agent", actor="t")
    resolve_dispute(loaded, who, "C-D1", "upheld", START + 13 * DAY, actor="agent:ann")
    exits = dict(rows(loaded, CaseRow.ref, CaseRow.status))
    assert exits["C-D1"] == "closed"
    assert ("disputed",) in rows(loaded, EnrolmentRow.exit_reason)
    assert {s for (s,) in rows(loaded, DisputeRow.state)} == {"rejected", "upheld"}
    with pytest.raises(CaseError, match="no open dispute"):
        resolve_dispute(loaded, who, "C-D1", "rejected", START + 14 * DAY, actor="agent:ann")


def test_an_upheld_dispute_can_lower_the_balance_instead(loaded: Engine) -> None:
    who = creditor(loaded)
    open_dispute(loaded, who, "C-D3", "amount_wrong", None, START, source="debtor", actor="t")
    with pytest.raises(CaseError, match="adjustment"):
        resolve_dispute(loaded, who, "C-D3", "upheld", START, actor="a", adjustment_minor=40_000)
    resolve_dispute(loaded, who, "C-D3", "upheld", START, actor="a", adjustment_minor=10_000)
    assert dict(rows(loaded, CaseRow.ref, CaseRow.status))["C-D3"] == "open"
    book(loaded, line("A1", 20_000, structured=ogm(loaded, "F3")))
    assert "case.paid" in events(loaded)


def test_holds_recorded_as_events_pause_and_resume_collection(
    loaded: Engine, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    who = creditor(loaded)
    tick(loaded, START, outbox)

    def record(case_ref: str, kind: str, at: dt.datetime) -> None:
        with loaded.begin() as connection:
            store = PaymentStore(connection, who)
            case = store.case_by_ref(case_ref)
            assert case is not None
            store.add_events([(case, store.cases([case])[case].debtor, kind, at, {})])

    record("C-D1", "legal_hold.set", START)
    record("C-D2", "contact_objection", START)
    for day in range(1, 12):
        tick(loaded, START + day * DAY, outbox)
    assert sent_to(loaded, "C-D1", START) == [] and sent_to(loaded, "C-D2", START) == []
    assert sent_to(loaded, "C-D3", START)  # the letter-only debtor is not held
    record("C-D1", "legal_hold.lifted", START + 11 * DAY)
    for day in range(12, 20):
        tick(loaded, START + day * DAY, outbox)
    assert sent_to(loaded, "C-D1", START + 11 * DAY)
    assert sent_to(loaded, "C-D2", START) == []
