"""The planner: clock-travel scenarios and invariants (hypothesis) on compiled journeys."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parcours.domain.journey import Journey, JourneyEvent
from parcours.journeys.facts import CHANNEL_BITS, EVENT_INDEX, CaseFacts
from parcours.journeys.library import JourneyError, load_journey
from parcours.journeys.planner import Decisions, Enrolments, Kind, Program, compile_journeys, plan

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
DUE = dt.date(2026, 12, 10)
EPOCH = dt.date(1970, 1, 1)
DIGITAL = CHANNEL_BITS["email"] | CHANNEL_BITS["sms"]

LADDER: dict[str, Any] = {
    "key": "ladder",
    "version": 1,
    "description": "pre-due SMS, reminder, letter when digital fails, hand over",
    "start": "pre_due",
    "nodes": [
        {"id": "pre_due", "type": "wait", "anchor": "due_date", "days": -3, "next": "nudge"},
        {
            "id": "nudge",
            "type": "send",
            "template": "pre_due",
            "channels": ["sms", "email"],
            "reminder": False,
            "next": "after_due",
        },
        {"id": "after_due", "type": "wait", "anchor": "due_date", "days": 7, "next": "digital"},
        {
            "id": "digital",
            "type": "branch",
            "cases": [
                {"guard": "last_delivery_is", "args": {"outcome": "bounced"}, "next": "letter"},
                {"guard": "reachable_by", "args": {"channel": "email"}, "next": "reminder"},
            ],
            "default": "letter",
        },
        {
            "id": "reminder",
            "type": "send",
            "template": "reminder_1",
            "channels": ["email", "sms"],
            "mode": "all",
            "next": "listen",
        },
        {
            "id": "letter",
            "type": "send",
            "template": "reminder_1",
            "channels": ["letter"],
            "next": "listen",
        },
        {
            "id": "listen",
            "type": "wait_event",
            "events": ["payment", "promise_made"],
            "timeout_days": 10,
            "on_event": "answered",
            "on_timeout": "call",
        },
        {"id": "call", "type": "task", "kind": "call", "next": "fee"},
        {"id": "fee", "type": "fee", "kind": "flat_indemnity", "next": "handover"},
        {"id": "answered", "type": "exit", "reason": "completed"},
        {"id": "handover", "type": "exit", "reason": "handed_over"},
    ],
}

SPLIT: dict[str, Any] = {
    "key": "split",
    "version": 1,
    "description": "an experiment with a holdout",
    "start": "draw",
    "nodes": [
        {
            "id": "draw",
            "type": "split",
            "experiment": "exp-1",
            "arms": [
                {"name": "a", "weight": 45, "next": "send_a"},
                {"name": "b", "weight": 45, "next": "send_b"},
                {"name": "holdout", "weight": 10, "next": "held"},
            ],
        },
        {"id": "send_a", "type": "send", "template": "a", "channels": ["email"], "next": "done"},
        {"id": "send_b", "type": "send", "template": "b", "channels": ["email"], "next": "done"},
        {"id": "done", "type": "exit", "reason": "completed"},
        {"id": "held", "type": "exit", "reason": "holdout"},
    ],
}


def program_of(*specs: dict[str, Any]) -> Program:
    return compile_journeys([Journey.model_validate(s) for s in specs])


def facts_for(n: int, *, reachable: int = DIGITAL, balance: int = 12_000) -> CaseFacts:
    facts = CaseFacts.empty([f"case-{i}" for i in range(n)])
    facts.due_day[:] = (DUE - EPOCH).days
    facts.balance_minor[:] = balance
    facts.reachable[:] = reachable
    return facts


def enrol(program: Program, n: int, at: dt.datetime = START) -> Enrolments:
    return Enrolments.start(program, np.zeros(n, dtype=np.int64), int(at.timestamp()))


def travel(
    program: Program,
    facts: CaseFacts,
    days: int,
    *,
    on_day: dict[int, Any] | None = None,
    enrolments: Enrolments | None = None,
) -> list[tuple[dt.date, str, str, str, Any]]:
    """Run one tick a day; (date, case, kind, node, detail) for every decision."""
    state = enrolments or enrol(program, len(facts))
    seen = []
    for day in range(days):
        now = START + dt.timedelta(days=day)
        if on_day and day in on_day:
            on_day[day](facts, now)
        decisions, state = plan(program, state, facts, now)
        for row, kind, node, detail in zip(
            decisions.row, decisions.kind, decisions.node, decisions.detail, strict=True
        ):
            seen.append((now.date(), facts.case_key[row], kind.name, program.node_id[node], detail))
    return seen


def test_the_ladder_sends_before_the_due_date_then_reminds_and_hands_over() -> None:
    program = program_of(LADDER)
    seen = travel(program, facts_for(1), 40)
    assert seen == [
        (dt.date(2026, 12, 7), "case-0", "SEND", "nudge", ("sms",)),
        (dt.date(2026, 12, 17), "case-0", "SEND", "reminder", ("email", "sms")),
        (dt.date(2026, 12, 27), "case-0", "TASK", "call", (program.nodes[7].kind, None)),
        (dt.date(2026, 12, 27), "case-0", "FEE", "fee", program.nodes[8].kind),
        (dt.date(2026, 12, 27), "case-0", "EXIT", "handover", "handed_over"),
    ]


def test_a_bounce_or_no_email_sends_a_letter_and_no_channel_sends_nothing() -> None:
    program = program_of(LADDER)
    facts = facts_for(3)
    facts.reachable[0] = DIGITAL | CHANNEL_BITS["letter"]
    facts.reachable[1] = CHANNEL_BITS["letter"]
    facts.reachable[2] = 0

    def bounce(f: CaseFacts, now: dt.datetime) -> None:
        f.last_delivery[0] = 3  # Delivery.BOUNCED

    seen = travel(program, facts, 18, on_day={10: bounce})
    sends = {(case, node): detail for _, case, kind, node, detail in seen if kind == "SEND"}
    assert sends[("case-0", "letter")] == ("letter",)
    assert sends[("case-1", "nudge")] == ()  # nothing reachable for the pre-due SMS
    assert sends[("case-1", "letter")] == ("letter",)
    assert sends[("case-2", "letter")] == ()


def test_a_payment_ends_the_journey_at_once_and_nothing_follows() -> None:
    program = program_of(LADDER)
    facts = facts_for(1)

    def pay(f: CaseFacts, now: dt.datetime) -> None:
        f.balance_minor[0] = 0

    seen = travel(program, facts, 40, on_day={12: pay})
    assert seen[-1][2:] == ("EXIT", "after_due", "paid")
    assert [s[2] for s in seen] == ["SEND", "EXIT"]


def test_an_event_while_waiting_takes_the_event_branch() -> None:
    program = program_of(LADDER)
    facts = facts_for(1)

    def promise(f: CaseFacts, now: dt.datetime) -> None:
        f.event_at[0, EVENT_INDEX[JourneyEvent.PROMISE_MADE]] = int(now.timestamp())

    seen = travel(program, facts, 40, on_day={20: promise})
    assert seen[-1][:4] == (dt.date(2026, 12, 21), "case-0", "EXIT", "answered")


def test_an_event_from_before_the_wait_does_not_count() -> None:
    program = program_of(LADDER)
    facts = facts_for(1)
    facts.event_at[0, EVENT_INDEX[JourneyEvent.PAYMENT]] = int(START.timestamp())
    seen = travel(program, facts, 40)
    assert seen[-1][3] == "handover"


def test_disputed_held_or_objecting_cases_are_paused_then_resume() -> None:
    program = program_of(LADDER)
    facts = facts_for(3)
    facts.disputed[0] = facts.legal_hold[1] = facts.contact_objection[2] = True

    def resolve(f: CaseFacts, now: dt.datetime) -> None:
        f.disputed[:] = f.legal_hold[:] = f.contact_objection[:] = False

    seen = travel(program, facts, 40, on_day={20: resolve})
    assert all(day >= dt.date(2026, 12, 21) for day, *_ in seen)
    # On resumption the missed steps run, not the whole past: one reminder each.
    assert sum(1 for s in seen if s[3] == "reminder") == 3


def test_splits_are_sticky_weighted_and_recorded() -> None:
    program = program_of(SPLIT)
    n = 20_000
    facts = facts_for(n)
    decisions, _ = plan(program, enrol(program, n), facts, START)
    arms = [d for k, d in zip(decisions.kind, decisions.detail, strict=True) if k is Kind.ARM]
    shares = {name: sum(1 for _, a in arms if a == name) / n for name in ("a", "b", "holdout")}
    assert shares["a"] == pytest.approx(0.45, abs=0.02)
    assert shares["holdout"] == pytest.approx(0.10, abs=0.01)
    # The same cases in another batch, in reverse order, draw the same arms.
    reverse = np.arange(n)[::-1].copy()
    again, _ = plan(program, enrol(program, n), facts.take(reverse), START)
    arms_again = [d for k, d in zip(again.kind, again.detail, strict=True) if k is Kind.ARM]
    assert arms_again == arms[::-1]
    holdout = {
        facts.case_key[r]
        for r, d in zip(decisions.row, decisions.detail, strict=True)
        if d == "holdout"
    }
    sent = {
        facts.case_key[r]
        for r, k in zip(decisions.row, decisions.kind, strict=True)
        if k is Kind.SEND
    }
    assert holdout and not holdout & sent


def test_journey_errors_name_the_file_node_and_field(tmp_path: Path) -> None:
    import yaml

    bad = dict(LADDER)
    bad["nodes"] = [dict(n) for n in LADDER["nodes"]]
    bad["nodes"][1]["channels"] = ["pigeon"]
    cases = [dict(c) for c in bad["nodes"][3]["cases"]]
    cases[0] = {"guard": "balance_at_least", "args": {"euro": 5}, "next": "letter"}
    bad["nodes"][3] = {**bad["nodes"][3], "cases": cases}
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(JourneyError) as error:
        load_journey(path)
    assert any("ladder.yaml: node 'nudge'.channels.0" in p for p in error.value.problems)
    bad["nodes"][1]["channels"] = ["sms"]
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(
        JourneyError, match=r"node 'digital'.cases.0: guard 'balance_at_least': euro"
    ):
        load_journey(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n: n[1].update(next="nowhere"), "nodes.nudge.next: no node 'nowhere'"),
        (
            lambda n: n.append({"id": "orphan", "type": "exit", "reason": "completed"}),
            "unreachable from start: orphan",
        ),
        (lambda n: n[8].update(next="call"), "call -> fee -> call loops without a wait"),
        (lambda n: n.append(dict(n[0])), "id(s) used twice: pre_due"),
    ],
)
def test_broken_graphs_are_refused(change: Any, message: str) -> None:
    spec = dict(LADDER)
    spec["nodes"] = [dict(n) for n in LADDER["nodes"]]
    change(spec["nodes"])
    with pytest.raises(ValueError, match=re.escape(message)):
        Journey.model_validate(spec)


# -- invariants -------------------------------------------------------------------------------


def _random_facts(data: st.DataObject, n: int) -> CaseFacts:
    facts = facts_for(n)
    for i in range(n):
        facts.reachable[i] = data.draw(st.integers(0, 31))
        facts.due_day[i] = (DUE - EPOCH).days + data.draw(st.integers(-20, 20))
        facts.last_delivery[i] = data.draw(st.integers(0, 5))
    return facts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_nothing_is_decided_for_a_case_after_it_paid_or_while_paused(data: st.DataObject) -> None:
    program = program_of(LADDER)
    n = data.draw(st.integers(1, 6))
    facts = _random_facts(data, n)
    pay_day = {i: data.draw(st.integers(0, 45)) for i in range(n)}
    pause = {i: data.draw(st.sampled_from([None, (5, 15), (0, 60)])) for i in range(n)}
    state = enrol(program, n)
    for day in range(50):
        finished = set(np.flatnonzero(state.done).tolist())
        now = START + dt.timedelta(hours=day * 24 + data.draw(st.integers(0, 23)))
        for i in range(n):
            facts.balance_minor[i] = 0 if day >= pay_day[i] else 12_000
            window = pause[i]
            facts.disputed[i] = window is not None and window[0] <= day < window[1]
        decisions, state = plan(program, state, facts, now)
        for row, kind in zip(decisions.row, decisions.kind, strict=True):
            if facts.disputed[row] or day >= pay_day[row]:
                assert kind is Kind.EXIT  # leaving because it is paid: no contact
        assert not finished & set(decisions.row)  # a finished case never decides again


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_planning_cases_together_equals_planning_each_alone(data: st.DataObject) -> None:
    program = program_of(LADDER, SPLIT)
    n = data.draw(st.integers(2, 8))
    facts = _random_facts(data, n)
    journeys = np.array([data.draw(st.integers(0, 1)) for _ in range(n)], dtype=np.int64)
    state = Enrolments.start(program, journeys, int(START.timestamp()))
    now = START + dt.timedelta(days=data.draw(st.integers(0, 30)))
    together, state_all = plan(program, state, facts, now)
    for i in range(n):
        one = np.array([i])
        alone, state_one = plan(program, _take(state, one), facts.take(one), now)
        mine = _rows(together, i)
        assert mine == _rows(alone, 0)
        assert state_one.node.tolist() == state_all.node[one].tolist()
        assert state_one.wake_at.tolist() == state_all.wake_at[one].tolist()
    again, _ = plan(program, state, facts, now)
    assert (again.row, again.kind, again.node, again.detail) == (
        together.row, together.kind, together.node, together.detail,
    )  # fmt: skip


def _take(state: Enrolments, rows: np.ndarray[Any, Any]) -> Enrolments:
    return Enrolments(
        state.journey[rows], state.node[rows], state.entered_at[rows], state.enrolled_at[rows],
        state.wake_at[rows], state.step[rows], state.done[rows],
    )  # fmt: skip


def _rows(decisions: Decisions, row: int) -> list[tuple[Any, ...]]:
    return sorted(
        (k.value, n, s, repr(d))
        for r, k, n, s, d in zip(
            decisions.row, decisions.kind, decisions.node, decisions.step, decisions.detail,
            strict=True,
        )
        if r == row
    )  # fmt: skip


def test_a_case_waits_until_its_wake_time_and_not_a_tick_longer() -> None:
    program = program_of(LADDER)
    facts = facts_for(1)
    state = enrol(program, 1)
    _, state = plan(program, state, facts, START)
    wake = dt.datetime.fromtimestamp(int(state.wake_at[0]), dt.UTC)
    assert wake == dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC)  # 7 Dec 00:00 in Brussels
    early, _ = plan(program, state, facts, wake - dt.timedelta(seconds=1))
    on_time, _ = plan(program, state, facts, wake)
    assert len(early) == 0 and len(on_time) == 1


def test_an_event_counts_only_if_it_happened_after_the_wait_began() -> None:
    program = program_of(LADDER)
    facts = facts_for(1)
    state = enrol(program, 1)
    at = START + dt.timedelta(days=16)  # the reminder goes out; the case starts listening
    _, state = plan(program, state, facts, at)
    assert program.node_id[int(state.node[0])] == "listen"
    column = EVENT_INDEX[JourneyEvent.PAYMENT]
    facts.event_at[0, column] = int(at.timestamp())  # the same second: known before
    same, _ = plan(program, state, facts, at + dt.timedelta(hours=1))
    assert len(same) == 0
    facts.event_at[0, column] = int(at.timestamp()) + 1
    later, after = plan(program, state, facts, at + dt.timedelta(hours=1))
    assert [k.name for k in later.kind] == ["EXIT"] and after.done[0]
