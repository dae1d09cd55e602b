"""Ticks on SQLite and PostgreSQL: enrolment, clock travel, the gate, idempotence and a
real kill between sending and committing."""

from __future__ import annotations

import copy
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import uuid_utils
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import DBAPIError

from parcours.channels.content import Channel
from parcours.channels.file import FileConfig, FileOutbox
from parcours.channels.links import Links
from parcours.channels.render import get_renderer
from parcours.domain.journey import Journey
from parcours.ingest import ImportKind
from parcours.journeys.library import Library
from parcours.runtime.dispatch import ChannelSet, dispatch
from parcours.runtime.tasks import due_tasks
from parcours.runtime.tick import _spread, attempt_id, run_tick
from parcours.store.db import connect
from parcours.store.schema import CaseRow, EnrolmentRow, OutboxRow, PolicyLogRow
from parcours.store.uow import UnitOfWork
from tests.channels.conftest import CREDITOR
from tests.ingest.test_import import run_import, write_csv

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # 10:00 in Brussels, a Tuesday

UNIVERSAL: dict[str, Any] = {
    "key": "ladder",
    "version": 1,
    "persona": None,
    "description": "pre-due SMS/e-mail, reminders, letter when nothing else works",
    "start": "pre_due",
    "nodes": [
        {"id": "pre_due", "type": "wait", "anchor": "due_date", "days": -3, "next": "nudge"},
        {"id": "nudge", "type": "send", "template": "pre_due", "channels": ["sms", "email"], "reminder": False, "next": "after_due"},
        {"id": "after_due", "type": "wait", "anchor": "due_date", "days": 2, "next": "reminder"},
        {"id": "reminder", "type": "send", "template": "reminder_1", "channels": ["email", "sms"], "mode": "all", "fallback": ["letter"], "next": "again"},
        {"id": "again", "type": "wait", "anchor": "entered", "days": 1, "next": "follow_up"},
        {"id": "follow_up", "type": "send", "template": "reminder_2", "channels": ["email", "sms"], "mode": "all", "next": "listen"},
        {"id": "listen", "type": "wait_event", "events": ["payment"], "timeout_days": 20, "on_event": "answered", "on_timeout": "fee"},
        {"id": "fee", "type": "fee", "kind": "flat_indemnity", "next": "handover"},
        {"id": "answered", "type": "exit", "reason": "completed"},
        {"id": "handover", "type": "exit", "reason": "handed_over"},
    ],
}  # fmt: skip

DEBTORS = [
    "D1,Alice Martin,alice@example.be,0470123456,fr,BE,Rue Haute 1,1000,Bruxelles",
    "D2,Bruno Peeters,,0470654321,nl,BE,Kerkstraat 2,2000,Antwerpen",
    "D3,Chris Letter,,,en,BE,Markt 3,3000,Leuven",
]
INVOICES = [
    "F1,D1,120.00,EUR,2026-11-05,2026-12-05",
    "F2,D2,80.00,EUR,2026-11-05,2026-12-05",
    "F3,D3,300.00,EUR,2026-11-05,2026-12-05",
]


def library() -> Library:
    return Library([Journey.model_validate(UNIVERSAL)])


def load(engine: Engine, tmp_path: Path) -> None:
    header = "debtor_ref,name,email,phone,language,country,street,postcode,city"
    run_import(engine, ImportKind.DEBTORS, write_csv(tmp_path, "d.csv", header, DEBTORS))
    run_import(
        engine,
        ImportKind.INVOICES,
        write_csv(
            tmp_path,
            "i.csv",
            "invoice_ref,debtor_ref,amount,currency,issue_date,due_date",
            INVOICES,
        ),
    )


def tick(
    engine: Engine, now: dt.datetime, outbox: Path, journeys: Library | None = None
) -> tuple[Any, Counter[str]]:
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        result = run_tick(uow.connection(), creditor.id, journeys or library(), now)
        uow.commit()
    sent = dispatch(engine, creditor.id, channel_set(outbox, journeys or library()), now)
    return result, sent


def channel_set(outbox: Path, journeys: Library, provider: Any = None) -> ChannelSet:
    """Every channel to the file outbox in `outbox`, with the test creditor's profile."""
    provider = provider or FileOutbox(FileConfig(directory=outbox))
    return ChannelSet(
        "acme",
        CREDITOR,
        dict.fromkeys(Channel, (provider, None)),
        get_renderer(),
        Links("test-secret", "https://pay.example"),
        journeys,
    )


def rows(engine: Engine, *columns: Any) -> list[Any]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(*columns))]


def count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def test_clock_travel_runs_the_journey_day_by_day(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    outbox = tmp_path / "outbox"
    first, _ = tick(engine, START, outbox)
    assert first.enrolled == 3
    for day in range(1, 40):
        tick(engine, START + dt.timedelta(days=day), outbox)
    sends = rows(
        engine,
        OutboxRow.template,
        OutboxRow.channel,
        OutboxRow.status,
        OutboxRow.sent_at,
        OutboxRow.case_id,
    )
    by_template = Counter((t, c) for t, c, s, *_ in sends if s == "sent" and t != "flat_indemnity")
    # Alice (e-mail and mobile) and Bruno (mobile): the pre-due nudge on the first
    # channel; the reminders on every digital channel; Chris only by letter.
    assert by_template[("pre_due", "sms")] == 2
    assert by_template[("reminder_1", "email")] == 1 and by_template[("reminder_1", "sms")] == 2
    assert by_template[("reminder_1", "letter")] == 1
    assert ("pre_due", None) in {(t, c) for t, c, *_ in sends}  # Chris: no channel, skipped
    nudges = [at for t, c, s, at, _ in sends if t == "pre_due" and s == "sent"]
    assert all(at.date() == dt.date(2026, 12, 2) for at in nudges)  # due date - 3 days
    files = sorted(p.name for p in outbox.iterdir())
    assert len(files) == sum(by_template.values())
    assert {r[0] for r in rows(engine, EnrolmentRow.exit_reason)} == {"handed_over"}
    fees = rows(engine, OutboxRow.kind, OutboxRow.amount_minor, OutboxRow.status)
    assert sorted(a for k, a, s in fees if k == "fee") == [2_000, 2_000, 4_500]  # XIX.4 caps


def test_the_same_tick_twice_decides_and_sends_nothing_new(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    outbox = tmp_path / "outbox"
    for day in range(0, 6):
        tick(engine, START + dt.timedelta(days=day), outbox)
    before = (count(engine, OutboxRow), len(list(outbox.iterdir())))
    again, sent = tick(engine, START + dt.timedelta(days=5), outbox)
    assert again.outbox == 0 and not sent
    assert (count(engine, OutboxRow), len(list(outbox.iterdir()))) == before
    assert count(engine, PolicyLogRow) > 0


def test_a_payment_stops_the_journey_and_nothing_is_sent_after(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, tmp_path)
    outbox = tmp_path / "outbox"
    for day in range(0, 5):
        tick(engine, START + dt.timedelta(days=day), outbox)
    # The import's clock is 1 Dec (tests.conftest.NOW): the payment is dated that day.
    paid = run_import(
        engine,
        ImportKind.PAYMENTS,
        write_csv(tmp_path, "p.csv", "invoice_ref,amount,paid_at", ["F1,120.00,2026-12-01"]),
    )
    assert paid.stored and not paid.errors
    for day in range(5, 40):
        tick(engine, START + dt.timedelta(days=day), outbox)
    after = START + dt.timedelta(days=5)
    sent = rows(engine, OutboxRow.status, OutboxRow.sent_at, OutboxRow.channel)
    # Alice has the only e-mail address: no e-mail after her payment.
    assert not [r for r in sent if r[0] == "sent" and r[1] >= after and r[2] == "email"]
    assert "paid" in {r[0] for r in rows(engine, EnrolmentRow.exit_reason)}


def test_messages_wait_for_the_contact_window(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    outbox = tmp_path / "outbox"
    late = dt.datetime(2026, 12, 2, 21, 30, tzinfo=dt.UTC)  # 22:30 in Brussels
    tick(engine, late - dt.timedelta(days=1), outbox)
    result, sent = tick(engine, late, outbox)
    assert result.verdicts["delay"] >= 2 and not sent
    statuses = rows(
        engine, OutboxRow.status, OutboxRow.not_before, OutboxRow.reason, OutboxRow.attempt_id
    )
    delayed = [(nb, reason) for s, nb, reason, _ in statuses if s == "delayed"]
    # Spread over the first two hours of the next window (08:00 in Brussels) by each
    # attempt's own offset, not a burst. (Attempt ids hash random case ids: two of them
    # may share a minute, so the test checks each offset, not that they differ.)
    opening = dt.datetime(2026, 12, 3, 7, 0, tzinfo=dt.UTC)
    span = dt.timedelta(hours=2)
    assert all(nb == opening + _spread(aid, span) for s, nb, _, aid in statuses if s == "delayed")
    assert all("quiet hours" in reason for _, reason in delayed)
    _, sent = tick(engine, opening, outbox)
    assert sent["sent"] == sum(nb == opening for nb, _ in delayed)
    _, sent = tick(engine, opening + dt.timedelta(hours=2), outbox)
    assert sent["sent"] == sum(nb > opening for nb, _ in delayed)
    # Sent since, they keep what the gate decided when they were planned, and why.
    kept = rows(engine, OutboxRow.attempt_id, OutboxRow.plan_verdict, OutboxRow.plan_reason)
    by_attempt = {aid: (verdict, why) for aid, verdict, why in kept}
    waited = [by_attempt[aid] for s, _, _, aid in statuses if s == "delayed"]
    assert waited and all(v == "delay" and "quiet hours" in why for v, why in waited)


def test_the_plan_verdict_of_an_outbox_row_is_kept(engine: Engine, tmp_path: Path) -> None:
    """The database keeps each decision's verdict as planned (the audit record), and
    every outbox row, while its status and reason follow what happens next."""
    load(engine, tmp_path)
    for day in range(2):  # the pre-due messages go on the second day
        tick(engine, START + dt.timedelta(days=day), tmp_path / "outbox")
    verdicts = Counter(v for (v,) in rows(engine, OutboxRow.plan_verdict))
    assert verdicts["send"] >= 2 and None not in verdicts
    table = OutboxRow.__table__
    with engine.begin() as connection:
        connection.execute(table.update().values(status="failed", reason="test"))
    for change in ({"plan_verdict": "skip"}, {"plan_reason": "rewritten"}):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(table.update().values(**change))
    with pytest.raises(DBAPIError, match="kept"), engine.begin() as connection:
        connection.execute(table.delete())
    assert Counter(v for (v,) in rows(engine, OutboxRow.plan_verdict)) == verdicts
    assert {s for (s,) in rows(engine, OutboxRow.status)} == {"failed"}


def test_attempt_ids_follow_their_cases_creation_order() -> None:
    # UUIDv7 case ids, created in order: their attempts sort in the same order (what
    # keeps the unique index's inserts together), whatever the rest of the decision.
    cases = [str(uuid_utils.uuid7()) for _ in range(500)]
    ids = [attempt_id(c, f"j@{i % 3}", f"n{i % 7}", i % 5, "sms") for i, c in enumerate(cases)]
    assert all(len(a) == 32 and int(a, 16) >= 0 for a in ids)
    assert [a[:12] for a in ids] == [c.replace("-", "")[:12] for c in cases]
    assert sorted(ids, key=lambda a: a[:12]) == ids
    decisions = {(c, n, step, ch) for c in cases[:20] for n in "ab" for step in (0, 1)
                 for ch in ("sms", "email", None)}  # fmt: skip
    made = {attempt_id(c, "j@1", n, step, ch) for c, n, step, ch in decisions}
    assert len(made) == len(decisions)
    assert attempt_id(cases[0], "j@1", "a", 0, None) == attempt_id(cases[0], "j@1", "a", 0, None)


def test_quiet_hour_offsets_cover_the_whole_span() -> None:
    ids = [attempt_id(f"case-{i}", "j@1", "n", 0, "sms") for i in range(2000)]
    offsets = {_spread(aid, dt.timedelta(hours=2)) for aid in ids}
    assert offsets == {dt.timedelta(minutes=m) for m in range(120)}
    assert _spread(ids[0], dt.timedelta(0)) == dt.timedelta(0)


KILLER = """
import datetime as dt, os, signal, sys
from pathlib import Path
from parcours.channels.file import FileConfig, FileOutbox
from parcours.runtime.dispatch import dispatch
from parcours.store.db import connect
from parcours.store.uow import UnitOfWork
from tests.runtime.test_tick import channel_set, library

class Dying(FileOutbox):
    def send(self, content, rendered):
        written = super().send(content, rendered)
        os.kill(os.getpid(), signal.SIGKILL)  # dies after sending, before recording it
        return written

engine = connect(sys.argv[1])
with UnitOfWork(engine) as uow:
    creditor = uow.creditors.by_name("acme")
outbox = Path(sys.argv[2])
channels = channel_set(outbox, library(), Dying(FileConfig(directory=outbox)))
dispatch(engine, creditor.id, channels, dt.datetime.fromisoformat(sys.argv[3]))
"""


def test_a_process_killed_between_send_and_commit_sends_nothing_twice(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    load(engine, tmp_path)
    outbox = tmp_path / "outbox"
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        run_tick(uow.connection(), creditor.id, library(), START)
        uow.commit()
    at = START + dt.timedelta(days=1)
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        run_tick(uow.connection(), creditor.id, library(), at)
        uow.commit()
    engine.dispose()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(Path.cwd())}
    killed = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", KILLER, db_url, str(outbox), at.isoformat()],
        env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(list(outbox.iterdir())) == 1  # one message went out before the kill
    assert {r[0] for r in rows(engine, OutboxRow.status) if r[0] == "sent"} == set()
    # Once the dead dispatcher's claim has lapsed, the next one finds the message already
    # written: recorded as sent, not sent again.
    _, sent = tick(engine, at + dt.timedelta(minutes=11), outbox)
    attempts = [p.name.split(".")[0] for p in outbox.iterdir()]
    assert len(attempts) == len(set(attempts)) == sent["sent"]
    reasons = [r[1] for r in rows(engine, OutboxRow.status, OutboxRow.reason) if r[0] == "sent"]
    assert reasons.count("already written") == 1


def test_cases_stay_in_their_own_tenant(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    header = "debtor_ref,name,email,phone,language,country,street,postcode,city"
    run_import(
        engine,
        ImportKind.DEBTORS,
        write_csv(tmp_path, "o.csv", header, DEBTORS[:1]),
        creditor="other",
    )
    tick(engine, START, tmp_path / "outbox")
    with engine.connect() as connection:
        tenants = connection.execute(select(EnrolmentRow.creditor_id).distinct()).all()
    assert len(tenants) == 1


SECOND_FEE: dict[str, Any] = {
    "key": "second-fee",
    "version": 1,
    "persona": None,
    "description": "a reminder fee booked with the second reminder, in the same tick",
    "start": "after_due",
    "nodes": [
        {"id": "after_due", "type": "wait", "anchor": "due_date", "days": 1, "next": "first"},
        {"id": "first", "type": "send", "template": "reminder_1", "channels": ["email"], "next": "later"},
        {"id": "later", "type": "wait", "anchor": "entered", "days": 20, "next": "second"},
        {"id": "second", "type": "send", "template": "reminder_2", "channels": ["email"], "next": "fee"},
        {"id": "fee", "type": "fee", "kind": "reminder_fee", "next": "done"},
        {"id": "done", "type": "exit", "reason": "completed"},
    ],
}  # fmt: skip


def test_a_fee_sees_the_reminder_decided_in_the_same_tick(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    fees = Library([Journey.model_validate(SECOND_FEE)])
    outbox = tmp_path / "outbox"
    for day in range(0, 30):
        now = START + dt.timedelta(days=day)
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("acme")
            assert creditor is not None
            run_tick(uow.connection(), creditor.id, fees, now)
            uow.commit()
        dispatch(engine, creditor.id, channel_set(outbox, fees), now)
    charged = [
        r
        for r in rows(engine, OutboxRow.kind, OutboxRow.amount_minor, OutboxRow.status)
        if r[0] == "fee"
    ]
    # Alice has an e-mail address: her second reminder carries the EUR 7.50 fee. The
    # others had no reachable channel: no reminder went, so no fee either.
    assert sorted(charged) == [("fee", 0, "skipped"), ("fee", 0, "skipped"), ("fee", 750, "sent")]


def test_a_reminder_fee_after_a_letter_adds_the_postage(engine: Engine, tmp_path: Path) -> None:
    from parcours.journeys.law import LawConfig
    from parcours.journeys.policy import PolicyConfig

    load(engine, tmp_path)
    by_letter = copy.deepcopy(SECOND_FEE)
    for node in by_letter["nodes"]:
        if node["type"] == "send":
            node["channels"] = ["letter"]
    fees = Library([Journey.model_validate(by_letter)])
    policy = PolicyConfig(law=LawConfig(postage_minor=165))
    for day in range(0, 30):
        with UnitOfWork(engine) as uow:
            creditor = uow.creditors.by_name("acme")
            assert creditor is not None
            now = START + dt.timedelta(days=day)
            run_tick(uow.connection(), creditor.id, fees, now, policy=policy)
            uow.commit()
        dispatch(engine, creditor.id, channel_set(tmp_path / "out", fees), now, policy=policy)
    charged = sorted(
        amount
        for kind, amount in rows(engine, OutboxRow.kind, OutboxRow.amount_minor)
        if kind == "fee"
    )
    # Every debtor has a postal address: each second letter carries €7.50 + €1.65 postage.
    assert charged == [915, 915, 915]


QUIET: dict[str, Any] = {
    "key": "quiet",
    "version": 1,
    "persona": None,
    "description": "the challenger: one letter a week after the due date",
    "start": "wait",
    "nodes": [
        {"id": "wait", "type": "wait", "anchor": "due_date", "days": 7, "next": "letter"},
        {"id": "letter", "type": "send", "template": "reminder_1", "channels": ["letter"], "next": "done"},
        {"id": "done", "type": "exit", "reason": "completed"},
    ],
}  # fmt: skip


def test_an_experiment_draws_sticky_arms_at_enrolment_and_holds_out_some_cases(
    engine: Engine, tmp_path: Path
) -> None:
    import json as json_

    from parcours.domain.journey import Experiment

    debtors = [f"E{i},Name {i},e{i}@example.be,,fr,BE,Rue {i},1000,Bruxelles" for i in range(300)]
    invoices = [f"G{i},E{i},40.00,EUR,2026-11-05,2026-12-05" for i in range(300)]
    header = "debtor_ref,name,email,phone,language,country,street,postcode,city"
    run_import(engine, ImportKind.DEBTORS, write_csv(tmp_path, "d.csv", header, debtors))
    run_import(
        engine,
        ImportKind.INVOICES,
        write_csv(
            tmp_path,
            "i.csv",
            "invoice_ref,debtor_ref,amount,currency,issue_date,due_date",
            invoices,
        ),
    )
    experiment = Experiment.model_validate(
        {
            "key": "letters-vs-ladder",
            "description": "does the persona journey beat one letter?",
            "arms": [
                {"name": "champion", "weight": 45, "journey": "persona"},
                {"name": "challenger", "weight": 45, "journey": "quiet"},
                {"name": "holdout", "weight": 10, "journey": None},
            ],
        }
    )
    library = Library(
        [Journey.model_validate(UNIVERSAL), Journey.model_validate(QUIET)], [experiment]
    )
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        assert run_tick(uow.connection(), creditor.id, library, START).enrolled == 300
        uow.commit()
    enrolled = rows(
        engine,
        EnrolmentRow.case_id,
        EnrolmentRow.journey_key,
        EnrolmentRow.arms,
        EnrolmentRow.exit_reason,
    )
    arms = Counter(
        json_.loads(a)["letters-vs-ladder"] if isinstance(a, str) else a["letters-vs-ladder"]
        for _, _, a, _ in enrolled
    )
    assert arms["holdout"] < 60 and arms["champion"] > 100 and arms["challenger"] > 100
    journeys = {
        (a if isinstance(a, dict) else json_.loads(a))["letters-vs-ladder"]: k
        for _, k, a, _ in enrolled
    }
    assert journeys == {"champion": "ladder", "challenger": "quiet", "holdout": "holdout"}
    held = {c for c, k, _, reason in enrolled if k == "holdout" and reason == "holdout"}
    assert len(held) == arms["holdout"]
    for day in range(1, 30):
        tick(engine, START + dt.timedelta(days=day), tmp_path / "outbox", library)
    contacted = {r[0] for r in rows(engine, OutboxRow.case_id)}
    assert contacted and not held & contacted  # the holdout is never contacted


def test_a_reclassified_case_moves_to_the_equivalent_step_of_its_new_journey(
    engine: Engine, tmp_path: Path
) -> None:
    """Alice starts unclassified (the universal ladder); after her first reminder an
    operator makes her The Occasional: she continues on that journey after its first
    reminder — never gets a first reminder again — and her clock is kept."""
    from parcours.journeys.library import load_library
    from parcours.runtime.personas import assign_by_operator
    from parcours.store.schema import DebtorRow

    load(engine, tmp_path)
    journeys = load_library()
    outbox = tmp_path / "outbox"
    day = 0
    while True:
        tick(engine, START + dt.timedelta(days=day), outbox, journeys)
        sent = rows(engine, OutboxRow.template, OutboxRow.reminder, OutboxRow.sent_at)
        if any(reminder and at is not None for _, reminder, at in sent):
            break
        day += 1
        assert day < 40, "the universal ladder never sent a first reminder"
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        connection = uow.connection()
        alice = connection.execute(select(DebtorRow.id).where(DebtorRow.ref == "D1")).scalar_one()
        case = connection.execute(select(CaseRow.id).where(CaseRow.debtor_id == alice)).scalar_one()
        now = START + dt.timedelta(days=day, hours=2)
        assign_by_operator(connection, creditor.id, alice, "occasional", now, "test")
        uow.commit()

    def enrolment() -> tuple[Any, ...]:
        with engine.connect() as connection:
            e = EnrolmentRow
            found = connection.execute(
                select(e.journey_key, e.node_id, e.persona, e.wake_at).where(e.case_id == case)
            )
            return tuple(found.one())

    key, _, persona, wake = enrolment()
    assert persona is None and key == "universal"
    assert wake is not None and wake <= now  # made due at once
    before = {r[0] for r in rows(engine, OutboxRow.attempt_id)}
    result, _ = tick(engine, now + dt.timedelta(hours=1), outbox, journeys)
    assert result.reclassified == 1
    key, node, persona, _ = enrolment()
    assert key == "occasional" and persona == "occasional"
    occasional = journeys.latest("occasional")
    # After one reminder: the node after the Occasional's first reminder (its one-week
    # watch, which counts from when her reminder went, may already be over).
    assert node in {occasional.stage_entries()[1], *_next_ids(occasional, "watch_r1")}
    logged = rows(engine, PolicyLogRow.stage, PolicyLogRow.reason)
    assert any(stage == "move" and "universal" in reason for stage, reason in logged)
    for extra in range(1, 40):
        tick(engine, now + dt.timedelta(days=extra), outbox, journeys)
    new = rows(engine, OutboxRow.attempt_id, OutboxRow.template, OutboxRow.journey)
    occasional_rows = [t for a, t, j in new if a not in before and j.startswith("occasional")]
    assert occasional_rows, "the moved case is never contacted again"
    assert not {"pre_due", "reminder_1_phone", "reminder_1"} & set(occasional_rows)


def _next_ids(journey: Journey, node_id: str) -> set[str]:
    """Nodes one step after `node_id` (the watch may already have timed out)."""
    return {target for source, _, target in journey.edges() if source == node_id}


def test_dispatch_reads_the_queue_through_its_index(sqlite_template: Path, tmp_path: Path) -> None:
    """Every query for what waits to go (the dispatcher's claim, due agent tasks) can use
    the outbox's partial index of pending rows: SQLite uses a partial index only when the
    query repeats its condition, which a rewording would silently lose. (SQLite's query
    plans: PostgreSQL plans by its statistics.)"""
    shutil.copyfile(sqlite_template, tmp_path / "queue.db")
    engine = connect(f"sqlite:///{tmp_path / 'queue.db'}")
    load(engine, tmp_path)
    seen: list[str] = []  # as run, values in place (the stores use the driver's cursors)

    def trace(connection: Any, _record: Any) -> None:
        connection.set_trace_callback(seen.append)

    engine.dispose()
    event.listen(engine, "connect", trace)
    for day in range(3):
        tick(engine, START + dt.timedelta(days=day), tmp_path / "outbox")
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        due_tasks(uow.connection(), creditor.id, START, limit=10)
    event.remove(engine, "connect", trace)
    engine.dispose()
    queue = [s for s in seen if "FROM outbox" in s and "not_before <=" in s]
    assert any("SET claim" in s for s in queue) and any("kind = 'task'" in s for s in queue)
    with engine.connect() as connection:
        for statement in queue:
            query = statement[statement.index("SELECT") :].rstrip(")")
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}").all()
            assert any("ix_outbox_dispatch" in str(step) for step in plan), (query, plan)
    engine.dispose()
