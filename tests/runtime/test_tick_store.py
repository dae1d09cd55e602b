"""The tick's reads and writes on SQLite and PostgreSQL: which cases are enrolled and
which are due, each once; each debtor's recent messages counted once; many outbox rows
written at once keep their attempt ids unique."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select, update

from parcours.ingest import ImportKind
from parcours.runtime.tick import _EVENTS, CONFLICTS, _read_facts, run_tick
from parcours.store.bulk import Key
from parcours.store.journeys import EVENT_TYPES, WAKE_TYPES, JourneyStore, OutboxEntry
from parcours.store.schema import CaseRow, DebtorRow, EnrolmentRow
from parcours.store.uow import UnitOfWork
from tests.ingest.test_import import run_import, write_csv
from tests.runtime.test_tick import START, library, load

HEADER = "debtor_ref,name,email,phone,language,country,street,postcode,city"


def _tick(engine: Engine, now: dt.datetime) -> Any:
    with _acme_store(engine) as (uow, store):
        result = run_tick(store.connection, store.creditor_id, library(), now)
        uow.commit()
    return result


@contextlib.contextmanager
def _acme_store(engine: Engine) -> Iterator[tuple[UnitOfWork, JourneyStore]]:
    """A unit of work and the journey store of the test creditor inside it."""
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        yield uow, JourneyStore(uow.connection(), creditor.id)


def _add_debtor(engine: Engine, tmp_path: Path, ref: str, now: dt.datetime) -> None:
    row = f"{ref},Dana {ref},{ref.lower()}@example.be,0470111222,fr,BE,Rue {ref},1000,Bruxelles"
    run_import(
        engine, ImportKind.DEBTORS, write_csv(tmp_path, f"{ref}.csv", HEADER, [row]), now=now
    )
    run_import(
        engine,
        ImportKind.INVOICES,
        write_csv(
            tmp_path,
            f"{ref}-i.csv",
            "invoice_ref,debtor_ref,amount,currency,issue_date,due_date",
            [f"I{ref},{ref},50.00,EUR,2026-11-05,2026-12-05"],
        ),
        now=now,
    )


def _enrolled(engine: Engine) -> list[UUID]:
    with engine.connect() as connection:
        return list(connection.execute(select(EnrolmentRow.case_id)).scalars())


def _case_of(engine: Engine, debtor_ref: str) -> UUID:
    with engine.connect() as connection:
        found = connection.execute(
            select(CaseRow.id).join(DebtorRow, DebtorRow.id == CaseRow.debtor_id)
            .where(DebtorRow.ref == debtor_ref)
        )  # fmt: skip
        return found.scalar_one()  # type: ignore[no-any-return]


def _set_status(engine: Engine, case: UUID, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(CaseRow).where(CaseRow.id == case).values(status=status))


def test_a_case_opened_after_a_tick_is_enrolled_at_the_next_one_and_only_once(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, tmp_path)
    assert _tick(engine, START).enrolled == 3
    assert _tick(engine, START + dt.timedelta(hours=1)).enrolled == 0
    # Imported after the tick with an earlier clock (clock travel): still enrolled.
    _add_debtor(engine, tmp_path, "D4", START - dt.timedelta(days=3))
    assert _tick(engine, START + dt.timedelta(days=1)).enrolled == 1
    assert _case_of(engine, "D4") in _enrolled(engine)
    for day in (2, 3):
        assert _tick(engine, START + dt.timedelta(days=day)).enrolled == 0
    enrolled = _enrolled(engine)
    assert len(enrolled) == len(set(enrolled)) == 4


def test_a_case_reopened_before_it_was_ever_enrolled_is_enrolled(
    engine: Engine, tmp_path: Path
) -> None:
    """A case closed before the first tick leaves more cases than enrolments for good:
    each tick then looks for open cases without one, and finds new and reopened ones."""
    load(engine, tmp_path)
    closed = _case_of(engine, "D3")
    _set_status(engine, closed, "closed")
    assert _tick(engine, START).enrolled == 2
    assert _tick(engine, START + dt.timedelta(hours=1)).enrolled == 0
    _set_status(engine, closed, "open")
    _add_debtor(engine, tmp_path, "D4", START)
    assert _tick(engine, START + dt.timedelta(days=1)).enrolled == 2
    assert {closed, _case_of(engine, "D4")} <= set(_enrolled(engine))
    assert _tick(engine, START + dt.timedelta(days=2)).enrolled == 0
    assert len(_enrolled(engine)) == 4


def _keys(store: JourneyStore, engine: Engine) -> dict[str, tuple[Key, Key]]:
    """debtor ref → (case, debtor) in storage form."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(DebtorRow.ref, CaseRow.id, CaseRow.debtor_id)
            .join(DebtorRow, DebtorRow.id == CaseRow.debtor_id)
        ).all()  # fmt: skip
    return {ref: (store.writer.key(case), store.writer.key(debtor)) for ref, case, debtor in rows}


def test_a_case_due_by_its_wake_time_and_by_an_event_is_due_once(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, tmp_path)
    _tick(engine, START)
    later = START + dt.timedelta(hours=2)
    with _acme_store(engine) as (_, store):
        connection = store.connection
        keys = _keys(store, engine)
        # Every case waits for a date days away: make Alice's due now by time, and give
        # her and Bruno an event each since the tick that may end a wait; Chris gets
        # only reports that change nothing before his time (delivered, opened, a hold).
        connection.execute(
            update(EnrolmentRow)
            .where(EnrolmentRow.case_id == _case_of(engine, "D1"))
            .values(wake_at=START + dt.timedelta(hours=1))
        )
        from parcours.store.payments import PaymentStore

        PaymentStore(connection, store.creditor_id).add_events(
            [(keys[ref][0], keys[ref][1], "message.replied", later, {}) for ref in ("D1", "D2")]
            + [
                (*keys["D3"], kind, later, {})
                for kind in ("message.delivered", "message.opened", "legal_hold.set")
            ]
        )
        due = store.due(later + dt.timedelta(minutes=1), store.last_tick())
        # Staged for the fact reads, each at its position in the batch (from 0).
        staged = store._select(f"SELECT pos, {store._id('id')} FROM tick_case_rows", ())
        assert sorted((int(pos), store._key(case)) for pos, case in staged) == list(
            enumerate(due.case)
        )
    assert sorted(due.case) == due.case  # in the order of the case ids
    assert set(due.case) == {keys["D1"][0], keys["D2"][0]}
    assert len(due.case) == 2


def test_the_events_that_wake_a_case_are_those_the_planner_acts_on() -> None:
    """What a `wait_event` node hears (the tick's event columns) wakes a sleeping case;
    every waking event is also read as a fact."""
    assert set(_EVENTS) <= set(WAKE_TYPES) <= set(EVENT_TYPES)
    assert "payment.booked" in WAKE_TYPES  # a paid case ends at once


def test_each_debtors_recent_messages_count_once_whatever_their_cases(
    engine: Engine, tmp_path: Path
) -> None:
    """Facts read for two cases of one person: the person's messages in the cap's window
    are theirs once, each case sees only its own sends."""
    load(engine, tmp_path)
    _tick(engine, START)
    with _acme_store(engine) as (_, store):
        keys = _keys(store, engine)
        case, debtor = keys["D1"]
        # A second (older, closed) case of Alice's, with a message of its own.
        other = store.writer.new_id()
        store.writer.insert(
            "cases",
            ("id", "creditor_id", "debtor_id", "ref", "status", "opened_at"),
            [(other, store.writer.creditor_key, debtor, "OLD-1", "closed",
              store.writer.timestamp(START - dt.timedelta(days=90)))],
        )  # fmt: skip
        sent = START + dt.timedelta(days=1)
        entries = [
            OutboxEntry(f"a-{n}", c, debtor, "ladder@1", "reminder", n, "send", ch,
                        "reminder_1", True, None, "sent", sent, "allowed", sent)
            for n, (c, ch) in enumerate([(case, "email"), (case, "sms"), (other, "letter")])
        ]  # fmt: skip
        store.add_outbox(entries, sent)
        now = sent + dt.timedelta(days=1)
        gate = _read_facts(store, [case, other], [debtor, debtor], ["c1", "c2"], now)
        if not store.sqlite:  # the fact reads' limits on joins end with them
            joins = store.connection.exec_driver_sql("SHOW enable_hashjoin").scalar()
            assert joins == "on"
    assert sorted(ch for ch, _ in gate.recent[debtor]) == ["email", "letter", "sms"]
    assert [int(n) for n in gate.facts.reminders_sent] == [2, 1]
    assert {ch for _, ch in gate.reminders[0]} == {"email", "sms"}
    assert [ch for _, ch in gate.reminders[1]] == ["letter"]


@pytest.mark.parametrize("rows", [3, 2_500])  # one statement per row, and at once
def test_outbox_rows_keep_their_attempt_ids_unique(
    engine: Engine, tmp_path: Path, rows: int
) -> None:
    load(engine, tmp_path)
    _tick(engine, START)
    with _acme_store(engine) as (uow, store):
        keys = list(_keys(store, engine).values())

        def entries(prefix: str, n: int) -> list[OutboxEntry]:
            return [
                OutboxEntry(f"{prefix}-{i}", *keys[i % 3], "ladder@1", "reminder", i, "send",
                            "letter", "reminder_1", False, None, "queued", START, None)
                for i in range(n)
            ]  # fmt: skip

        assert store.add_outbox(entries("x", rows), START) == rows
        uow.commit()
    with _acme_store(engine) as (_, store):
        written = store._rows("SELECT COUNT(*) FROM outbox WHERE creditor_id = ? AND node_id = ?",
                              ["reminder"])  # fmt: skip
        assert int(written[0][0]) == rows
        with pytest.raises(CONFLICTS):
            store.add_outbox([*entries("y", rows - 1), *entries("x", 1)], START)


def test_staged_enrolments_land_in_one_update_on_this_creditors_rows_only(
    engine: Engine, tmp_path: Path
) -> None:
    """What a tick stages for its enrolments is written by one UPDATE, each row on its
    own enrolment; a store of another creditor applying the same staged rows changes
    none. On SQLite, that UPDATE walks the staged rows and finds each enrolment by its
    row id (the other way round, it would probe every staged row for each enrolment)."""
    load(engine, tmp_path)
    _tick(engine, START)
    wake = START + dt.timedelta(days=40)
    with _acme_store(engine) as (_, store):
        due = store.due(START + dt.timedelta(days=30), None)  # every active enrolment
        assert len(due) == 3
        # Times go as epoch seconds; the first case is staged with no wake time (-1).
        wakes = [-1, *[int(wake.timestamp())] * (len(due) - 1)]
        store.stage_enrolments(
            [
                (*due.journey[i], due.persona[i], due.node_id[i], int(START.timestamp()),
                 wakes[i], int(due.step[i]) + 5, False, None, due.arms[i], due.stored[i])
                for i in range(len(due))
            ]
        )  # fmt: skip
        seen: list[str] = []
        if store.sqlite:
            store.connection.connection.driver_connection.set_trace_callback(seen.append)  # type: ignore[union-attr]
        JourneyStore(store.connection, uuid4()).apply_enrolments()

        def steps() -> list[int]:
            found = store._rows("SELECT step FROM enrolments WHERE creditor_id = ?")
            return sorted(int(step) for (step,) in found)

        assert steps() == sorted(int(s) for s in due.step)
        store.apply_enrolments()
        assert steps() == sorted(int(s) + 5 for s in due.step)
        woken = store.due(wake - dt.timedelta(seconds=1), None)
        assert len(woken) == 0 and len(store.due(wake, None)) == 2
        times = store._rows(
            "SELECT entered_at, wake_at FROM enrolments WHERE creditor_id = ? AND case_id = ?",
            [due.case[0]],
        ) + store._rows(
            "SELECT entered_at, wake_at FROM enrolments WHERE creditor_id = ? AND case_id = ?",
            [due.case[1]],
        )
        assert [(store.utc(e), store.utc(w)) for e, w in times] == [(START, None), (START, wake)]
        if store.sqlite:
            update = next(s for s in seen if s.startswith("UPDATE enrolments"))
            explained = store.connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {update}")
            plan = [row[-1] for row in explained]
            assert plan[0].startswith("SCAN m"), plan
            assert "SEARCH enrolments USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan


def test_a_tick_leaves_the_cycle_collector_as_it_found_it(engine: Engine, tmp_path: Path) -> None:
    import gc

    load(engine, tmp_path)
    assert gc.isenabled()
    _tick(engine, START)
    assert gc.isenabled()
    gc.disable()
    try:
        _tick(engine, START + dt.timedelta(days=1))
        assert not gc.isenabled()
    finally:
        gc.enable()


# Hypothesis takes naive bounds; the times drawn are UTC.
_NAIVE_BOUNDS = (dt.datetime(1970, 1, 1), dt.datetime(2200, 1, 1))  # noqa: DTZ001


@given(at=st.datetimes(*_NAIVE_BOUNDS, timezones=st.just(dt.UTC)))
def test_sqlite_reads_a_stored_time_as_epoch_seconds_with_any_version(at: dt.datetime) -> None:
    """`epoch()` uses unixepoch() where SQLite has it (3.38) and strftime before: both
    read a stored time (as the writer stores it) as the same seconds, NULL as NULL."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        store = JourneyStore(connection, UUID(int=1))
        stored = store.writer.timestamp(at)
        expressions = [store.epoch("?")]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sqlite3, "sqlite_version_info", (3, 37, 2))
            expressions.append(store.epoch("?"))
        assert expressions[0] != expressions[1]
        read = [
            tuple(connection.exec_driver_sql(f"SELECT {e}, {e}", (stored, None)).one())
            for e in expressions
        ]
    assert read[0] == read[1]
    seconds, null = read[0]
    # Whole seconds of the time to the millisecond (SQLite's precision): a time less
    # than half a millisecond before the next second reads as that second.
    assert null is None
    assert seconds - math.floor(at.timestamp()) == (at.microsecond > 999_500) or (
        at.microsecond == 999_500 and seconds - math.floor(at.timestamp()) in (0, 1)
    )
