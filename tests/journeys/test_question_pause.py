"""A debtor's question pauses escalation until an agent answers it: in the planner, in the
policy gate (planned and at send time), and in clock-travel ticks on SQLite and
PostgreSQL; and the gate's rules for service messages, which a question does not stop."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from parcours.domain.journey import FeeKind
from parcours.journeys.facts import CaseFacts
from parcours.journeys.planner import Kind, plan
from parcours.journeys.policy import ContactFacts, GateDecision, check_fee, check_send
from parcours.journeys.policy import check_service as service
from parcours.runtime.chat import agent_says, debtor_says
from parcours.runtime.dispatch import dispatch
from parcours.runtime.tick import run_tick
from parcours.store.messages import MessageStore
from parcours.store.schema import CaseRow, OutboxRow
from parcours.store.uow import UnitOfWork
from tests.journeys.test_planner import LADDER, START, enrol, facts_for, program_of, travel
from tests.runtime.test_tick import channel_set, library, load

DAY = dt.timedelta(days=1)
NOON = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)  # 12:00 in Brussels, a Tuesday
QUESTION = "question waiting for an answer"

# -- the planner ---------------------------------------------------------------------------


def test_a_waiting_question_pauses_the_journey_and_the_answer_resumes_it() -> None:
    program = program_of(LADDER)
    facts = facts_for(2)
    facts.question_open[0] = True  # case-0 asked before its first message; case-1 did not

    def answer(f: CaseFacts, now: dt.datetime) -> None:
        f.question_open[:] = False

    seen = travel(program, facts, 40, on_day={20: answer})
    asking = [s for s in seen if s[1] == "case-0"]
    assert asking and all(day >= dt.date(2026, 12, 21) for day, *_ in asking)
    # The other case went on meanwhile: its nudge came before the due date.
    assert any(day < dt.date(2026, 12, 10) for day, case, *_ in seen if case == "case-1")
    # On resumption the missed steps run once, not the whole past: one reminder.
    assert sum(1 for s in asking if s[3] == "reminder") == 1


def test_a_payment_still_ends_a_journey_paused_by_a_question() -> None:
    program = program_of(LADDER)
    facts = facts_for(1)
    facts.question_open[0] = True
    facts.balance_minor[0] = 0
    decisions, after = plan(program, enrol(program, 1), facts, START)
    assert [(k, d) for k, d in zip(decisions.kind, decisions.detail, strict=True)] == [
        (Kind.EXIT, "paid")
    ]
    assert after.done[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_nothing_is_decided_while_a_question_waits(data: st.DataObject) -> None:
    program = program_of(LADDER)
    n = data.draw(st.integers(1, 5))
    facts = facts_for(n)
    windows = [data.draw(st.sampled_from([None, (0, 10), (3, 25), (0, 60)])) for _ in range(n)]
    state = enrol(program, n)
    for day in range(50):
        for i, window in enumerate(windows):
            facts.question_open[i] = window is not None and window[0] <= day < window[1]
        decisions, state = plan(program, state, facts, START + day * DAY)
        assert not [r for r in decisions.row if facts.question_open[r]]


# -- the gate ------------------------------------------------------------------------------


def facts(**changes: Any) -> ContactFacts:
    values: dict[str, Any] = {"balance_minor": 12_000, "reachable": frozenset({"email", "sms"})}
    return ContactFacts(**(values | changes))


def test_the_gate_holds_collection_while_a_question_waits() -> None:
    asked = facts(question_open=True)
    assert check_send(asked, "email", NOON) == GateDecision("skip", None, QUESTION)
    assert check_send(facts(), "email", NOON).verdict == "send"
    refused = check_fee(asked, FeeKind.FLAT_INDEMNITY, NOON)
    assert refused.amount_minor == 0 and refused.reason == QUESTION
    both = check_send(facts(question_open=True, disputed=True), "sms", NOON)
    assert both.reason == f"disputed: collection paused; {QUESTION}"


@pytest.mark.parametrize(
    "change",
    [
        {"question_open": True},
        {"balance_minor": 0},
        {"paid": True},
        {"disputed": True},
        {"plan_running": True},
        {"vulnerable": True},
        {"recent_contacts": tuple(("email", NOON - dt.timedelta(hours=h)) for h in (1, 2, 3))},
    ],
)
def test_a_service_message_is_not_stopped_by_what_stops_collection(change: dict[str, Any]) -> None:
    assert service(facts(**change), "email", NOON) == GateDecision(
        "send", None, "allowed (service message)"
    )


def test_a_service_message_keeps_what_protects_the_person() -> None:
    assert service(facts(legal_hold=True), "email", NOON).reason == "legal hold"
    assert service(facts(contact_objection=True), "sms", NOON).verdict == "skip"
    assert service(facts(reachable=frozenset({"sms"})), "email", NOON) == GateDecision(
        "skip", None, "no consent or contact point for email"
    )
    night = dt.datetime(2026, 12, 1, 21, 30, tzinfo=dt.UTC)  # 22:30 in Brussels
    delayed = service(facts(), "email", night)
    assert delayed.verdict == "delay"
    assert delayed.not_before == dt.datetime(2026, 12, 2, 7, 0, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="aware"):
        service(facts(), "email", night.replace(tzinfo=None))


# -- clock travel through real ticks -------------------------------------------------------


def _creditor(engine: Engine) -> Any:
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        return creditor.id


def _case(engine: Engine, ref: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(CaseRow.id).where(CaseRow.ref == ref)).scalar_one()


def _plan(engine: Engine, now: dt.datetime) -> None:
    with UnitOfWork(engine) as uow:
        run_tick(uow.connection(), _creditor(engine), library(), now)
        uow.commit()


def _dispatch(engine: Engine, outbox: Path, now: dt.datetime) -> Any:
    return dispatch(engine, _creditor(engine), channel_set(outbox, library()), now)


def _sends(engine: Engine, ref: str) -> list[tuple[str, str, dt.datetime, str | None]]:
    """(template, status, not_before, reason) of the case's collection messages."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(OutboxRow.template, OutboxRow.status, OutboxRow.not_before, OutboxRow.reason)
            .join(CaseRow, (CaseRow.id == OutboxRow.case_id))
            .where(CaseRow.ref == ref, OutboxRow.kind == "send", OutboxRow.journey != "chat")
            .order_by(OutboxRow.not_before)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_ticks_send_nothing_while_a_question_waits_and_resume_after_the_answer(
    engine: Engine, tmp_path: Path
) -> None:
    load(engine, tmp_path)  # Alice (e-mail, mobile), Bruno (mobile), Chris (letter)
    outbox = tmp_path / "outbox"
    creditor = _creditor(engine)
    _plan(engine, START)
    asked = debtor_says(engine, creditor, _case(engine, "C-D1"), "Is this mine?", NOON)
    answered_on = START + 12 * DAY
    for day in range(1, 12):
        _plan(engine, START + day * DAY)
        _dispatch(engine, outbox, START + day * DAY)
    assert _sends(engine, "C-D1") == []
    assert {t for t, s, *_ in _sends(engine, "C-D2") if s == "sent"} >= {"pre_due", "reminder_1"}
    agent_says(engine, creditor, asked.conversation.id, None, "Yes.", answered_on, True)
    for day in range(12, 16):
        _plan(engine, START + day * DAY)
        _dispatch(engine, outbox, START + day * DAY)
    resumed = _sends(engine, "C-D1")
    assert resumed and all(at >= answered_on for _, _, at, _ in resumed)
    assert "reminder_1" in {t for t, s, *_ in resumed if s == "sent"}


@pytest.mark.parametrize(
    ("hold", "reason"), [("question", QUESTION), ("legal_hold.set", "legal hold")]
)
def test_a_message_planned_before_the_hold_is_not_sent_after_it(
    engine: Engine, tmp_path: Path, hold: str, reason: str
) -> None:
    """The gate judges again at send time: a reminder queued before the debtor asked (or
    before a legal hold) is skipped, not sent."""
    load(engine, tmp_path)
    outbox = tmp_path / "outbox"
    creditor = _creditor(engine)
    night = dt.datetime(2026, 12, 2, 21, 30, tzinfo=dt.UTC)  # the nudge waits for 08:00
    _plan(engine, START)
    _plan(engine, night)
    assert {s for _, s, *_ in _sends(engine, "C-D1")} == {"delayed"}
    case = _case(engine, "C-D1")
    if hold == "question":
        debtor_says(engine, creditor, case, "Before you remind me: is this mine?", night)
    else:
        with engine.begin() as connection:
            store = MessageStore(connection, creditor)
            found = store.case_debtor(str(case))
            assert found is not None
            store.add_event(found[0], found[1], hold, night, {})
    _dispatch(engine, outbox, night + 12 * dt.timedelta(hours=1))
    assert [(s, why) for _, s, _, why in _sends(engine, "C-D1")] == [("skipped", reason)]
    assert {s for _, s, *_ in _sends(engine, "C-D2")} == {"sent"}  # others go out
