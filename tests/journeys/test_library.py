"""The journey library: every journey loads, fits its persona and is lawful by construction.

Two checkers run over each journey. A static walk follows every path of the graph and
keeps, per path, what is known for sure: the earliest and latest day relative to the due
date, the days that have certainly passed since the first Book XIX reminder, whether
digital contact has failed. A "silent debtor" run plays one case day by day (never
answers, reachable as told) and records what it receives and when. Mutated journeys show
that both checkers catch what they are meant to catch.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from parcours.domain.journey import (
    Anchor,
    BranchNode,
    ExitNode,
    ExitReason,
    FeeKind,
    FeeNode,
    Journey,
    JourneyEvent,
    SendNode,
    SplitNode,
    TaskKind,
    TaskNode,
    WaitEventNode,
    WaitNode,
)
from parcours.domain.persona import Persona
from parcours.journeys.facts import CHANNEL_BITS, EVENT_INDEX, CaseFacts, Delivery, PromiseCode
from parcours.journeys.guards import GUARDS, GuardError, validate_args
from parcours.journeys.law import LawConfig, allowed_fee
from parcours.journeys.library import builtin_library_dir, load_library
from parcours.journeys.planner import Enrolments, Kind, compile_journeys, plan
from parcours.personas.catalog import builtin_catalog_dir

LIBRARY = builtin_library_dir()
DIGITAL = frozenset({"email", "sms"})
DURABLE = frozenset({"email", "sms", "letter"})  # Book XIX: a reminder on a durable medium
# Book XIX: fees only after the first reminder and 14 days, counted from the day after an
# electronic reminder (so from day 15) or from the 3rd working day after a letter is posted
# (day 20 at worst across a weekend and a public holiday). One more day for an electronic
# reminder the policy gate defers (quiet hours), one more for a letter.
MIN_GAP_ELECTRONIC = 16
MIN_GAP_PAPER = 21
# The aim is about 25 nodes; the Occasional (an experiment, letter fallbacks at two steps,
# answers handled at three) needs 31.
MAX_NODES = 32


# -- loading ---------------------------------------------------------------------------------


def library_files() -> list[Path]:
    return sorted(LIBRARY.glob("*.yaml"))


@cache
def raw(key: str) -> dict[str, Any]:
    data = yaml.safe_load((LIBRARY / f"{key}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def raw_copy(key: str) -> dict[str, Any]:
    """A copy of a journey's YAML data, to mutate in a test."""
    return copy.deepcopy(raw(key))


@cache
def journey(key: str) -> Journey:
    return Journey.model_validate(raw(key))


@cache
def catalog() -> dict[str, Persona]:
    """The built-in personas (read directly: an operator directory must not change this)."""
    personas = {}
    for path in sorted(builtin_catalog_dir().glob("*.yaml")):
        persona = Persona.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        personas[persona.key] = persona
    return personas


def persona_of(j: Journey) -> Persona | None:
    return catalog()[j.persona] if j.persona else None


def raw_node(data: dict[str, Any], node_id: str) -> dict[str, Any]:
    node = next(n for n in data["nodes"] if n["id"] == node_id)
    assert isinstance(node, dict)
    return node


KEYS = sorted(p.stem for p in library_files())  # files: `{key}.yaml`, then `{key}_v{N}.yaml`


def latest_files() -> dict[str, str]:
    """The file of each journey key's newest version."""
    newest: dict[str, tuple[int, str]] = {}
    for stem in KEYS:
        j = journey(stem)
        if j.version > newest.get(j.key, (0, ""))[0]:
            newest[j.key] = (j.version, stem)
    return {key: stem for key, (_, stem) in newest.items()}


# -- the static walk -------------------------------------------------------------------------


@dataclass(frozen=True)
class PathState:
    """What is certain at a point of one path (days relative to the due date)."""

    t_min: float = -math.inf  # a case may be enrolled long before its due date...
    t_max: float = math.inf  # ... or long after it
    first: str | None = None  # the first reminder that counts on this path
    paper: bool = False  # that reminder may have gone by letter
    since_first: int = 0  # days certainly passed since it
    last_send_is_first: bool = False
    sent: bool = False  # some message was sent on this path already
    indemnities: int = 0
    failed: bool = False  # digital contact failed: a bounce, or neither email nor SMS
    asked: bool = False  # the debtor asked for reminders before due dates (their page)
    # Reminders on record for the guards and the gate, which read them when a tick starts,
    # and those sent since time last surely passed (not on record yet); reminder fees.
    counted: int = 0
    pending: int = 0
    reminder_fees: int = 0


def _clamp(state: PathState) -> PathState:
    """Forget what no check needs, so that the loops of a journey reach a fixed point: the
    checks only ask whether a day can be before the due date (t_min < 1, t_max < 0) and
    whether the legal wait has passed (since_first < MIN_GAP_PAPER). Forgetting only ever
    makes a bound weaker, never hides a problem."""
    return replace(
        state,
        t_min=min(state.t_min, 1),
        t_max=math.inf if state.t_max >= 0 else state.t_max,
        since_first=min(state.since_first, MIN_GAP_PAPER),
        counted=min(state.counted, 3),
        pending=min(state.pending, 3),
        reminder_fees=min(state.reminder_fees, 3),
        indemnities=min(state.indemnities, 2),
    )


def _later(state: PathState, at_least: int, at_most: float) -> PathState:
    """`state` after a wait of at least `at_least` and at most `at_most` days."""
    if at_least >= 1:  # a later tick: what was sent is on record
        state = replace(state, counted=state.counted + state.pending, pending=0)
    return replace(
        state,
        t_min=state.t_min + at_least,
        t_max=state.t_max + at_most,
        since_first=state.since_first + at_least,
    )


def _after_wait(node: WaitNode, state: PathState) -> PathState:
    if node.anchor == Anchor.ENTERED:
        return _later(state, node.days, node.days)
    if node.anchor == Anchor.DUE_DATE:
        # Until due + days, or at once if that is past: nothing certain about the time
        # since the first reminder (the case may have been enrolled late).
        return replace(state, t_min=max(state.t_min, node.days), t_max=max(state.t_max, node.days))
    # promise_date ("no promise: go on at once") and enrolled: no lower bound gained.
    return replace(state, t_max=math.inf)


def _guard_outcome(case: Any, state: PathState, *, holds: bool) -> PathState | None:
    """What a branch case holding (or not) tells about the path; None if it cannot hold.
    The walk assumes every send goes out, so it knows at most as many reminders as there
    are: `reminders_at_least` may fail where the walk expects it to hold, never the other
    way round."""
    if case.guard == "reminders_at_least" and holds and state.counted < case.args["count"]:
        return None
    if case.guard == "days_past_due_at_least":
        days = case.args["days"]
        if holds:
            return replace(state, t_min=max(state.t_min, days))
        return replace(state, t_max=min(state.t_max, days - 1))
    if case.guard == "asked_for_pre_due_reminder" and holds:
        return replace(state, asked=True)
    if case.guard == "last_delivery_is" and case.args.get("outcome") == "bounced" and holds:
        if state.last_send_is_first:
            # The first reminder never reached the debtor: the next one is the first.
            state = replace(state, first=None, paper=False, since_first=0)
        return replace(state, failed=True)
    return state


def _branch_edges(node: BranchNode, state: PathState) -> Iterator[tuple[str, PathState]]:
    negated = state
    unreachable: set[str] = set()
    for case in node.cases:
        holding = _guard_outcome(case, negated, holds=True)
        if holding is not None:
            yield case.next, holding
        negated = _guard_outcome(case, negated, holds=False) or negated
        if case.guard == "reachable_by":
            unreachable.add(case.args["channel"])
    if unreachable >= DIGITAL:
        negated = replace(negated, failed=True)
    yield node.default, negated


def _edges(node: Any, state: PathState) -> Iterator[tuple[str, PathState]]:
    if isinstance(node, WaitNode):
        yield node.next, _after_wait(node, state)
    elif isinstance(node, WaitEventNode):
        yield node.on_event, _later(state, 0, node.timeout_days)
        yield node.on_timeout, _later(state, node.timeout_days, node.timeout_days)
    elif isinstance(node, BranchNode):
        yield from _branch_edges(node, state)
    elif isinstance(node, SplitNode):
        for arm in node.arms:
            yield arm.next, state
    elif isinstance(node, SendNode):
        first = state.first is None and node.reminder
        after = replace(
            state,
            sent=True,
            last_send_is_first=first,
            pending=state.pending + node.reminder,
        )
        if first:
            paper = "letter" in (*node.channels, *node.fallback)
            after = replace(after, first=node.id, paper=paper, since_first=0)
        yield node.next, after
    elif isinstance(node, FeeNode):
        yield (
            node.next,
            replace(
                state,
                indemnities=state.indemnities + (node.kind == FeeKind.FLAT_INDEMNITY),
                reminder_fees=state.reminder_fees + (node.kind == FeeKind.REMINDER_FEE),
            ),
        )
    elif isinstance(node, TaskNode):
        yield node.next, state


@dataclass
class Walk:
    """Every state in which each node can be reached, from the start or a given node."""

    states: dict[str, set[PathState]] = field(default_factory=dict)

    def at(self, node_id: str) -> set[PathState]:
        return self.states.get(node_id, set())


def walk(j: Journey, start: str | None = None, state: PathState | None = None) -> Walk:
    by_id = {n.id: n for n in j.nodes}
    result = Walk()
    todo = [(start or j.start, state or PathState())]
    while todo:
        node_id, current = todo.pop()
        current = _clamp(current)
        seen = result.states.setdefault(node_id, set())
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_edges(by_id[node_id], current))
    return result


def fee_problems(j: Journey) -> list[str]:
    """Fees before the first reminder or too soon after it, a second indemnity, reminder
    fees the gate would refuse, and reminders counted before the due date.

    The gate allows one reminder fee per further reminder on record when the tick starts:
    a fee decided in the same tick as its reminder does not see it, so a reminder fee comes
    at least a tick after the further reminder it is for."""
    problems: set[str] = set()
    w = walk(j)
    for node in j.nodes:
        for s in w.at(node.id):
            if isinstance(node, SendNode) and node.reminder and s.t_min < 1:
                problems.add(f"{node.id}: a Book XIX reminder that can go out before the due date")
            if not isinstance(node, FeeNode):
                continue
            if s.first is None:
                problems.add(f"{node.id}: a fee before the first reminder")
                continue
            gap = MIN_GAP_PAPER if s.paper else MIN_GAP_ELECTRONIC
            if s.since_first < gap:
                problems.add(
                    f"{node.id}: a fee only {s.since_first} days after the first reminder "
                    f"{s.first} (at least {gap} needed)"
                )
            if node.kind == FeeKind.FLAT_INDEMNITY and s.indemnities >= 1:
                problems.add(f"{node.id}: a second flat indemnity on the same path")
            if node.kind == FeeKind.REMINDER_FEE and s.counted - 1 <= s.reminder_fees:
                problems.add(
                    f"{node.id}: a reminder fee the gate refuses: {s.counted} reminder(s) on "
                    f"record, {s.reminder_fees} fee(s) already"
                )
    return sorted(problems)


def _is_ordered_subset(channels: tuple[str, ...], ranking: tuple[str, ...]) -> bool:
    return set(channels) <= set(ranking) and sorted(channels, key=ranking.index) == list(channels)


def channel_problems(j: Journey, persona: Persona | None) -> list[str]:
    """Channels the persona does not prefer (or avoids) outside a digital-failure fallback,
    and reminders on a medium that is not durable."""
    problems = []
    w = walk(j)
    for node in j.nodes:
        if not isinstance(node, SendNode):
            continue
        if node.reminder and not {*node.channels, *node.fallback} <= DURABLE:
            problems.append(f"{node.id}: a reminder must go on a durable medium")
        if persona is None:
            continue
        behind_failure = all(s.failed for s in w.at(node.id))
        if all(s.asked for s in w.at(node.id)):
            continue  # what the debtor asked for on their page, not the persona's way
        preferred = tuple(str(c) for c in persona.preferred_channels)
        avoided = {str(c) for c in persona.avoid_channels}
        if not behind_failure and not _is_ordered_subset(node.channels, preferred):
            problems.append(
                f"{node.id}: channels {list(node.channels)} are not in the persona's "
                f"preferred order {list(preferred)}"
            )
        if not behind_failure and avoided & set(node.fallback):
            problems.append(f"{node.id}: falls back on an avoided channel before digital failure")
    return problems


def _instant_targets(node: Any) -> list[str]:
    """Where a case can go from `node` without any time passing."""
    if isinstance(node, WaitNode) and node.anchor == Anchor.ENTERED and node.days >= 1:
        return []
    if isinstance(node, WaitEventNode):
        return [node.on_event]  # only the timeout is sure to take time
    return _next_ids(node)


def cycle_problems(j: Journey) -> list[str]:
    """Cycles in which no time need pass. Stricter than the model, which accepts a cycle
    through any wait or wait_event: a wait until the due date (or the promise date) + N is
    passed at once when that date is behind, and a wait_event re-entered within a tick is
    woken again by an event stamped with the tick's own time (the planner compares
    `event_at >= entered_at`). Such a cycle spins until the planner gives up on the tick."""
    by_id = {n.id: n for n in j.nodes}
    state: dict[str, int] = {}
    problems = []

    def visit(node_id: str) -> None:
        state[node_id] = 1
        for target in _instant_targets(by_id[node_id]):
            if state.get(target) == 1:
                problems.append(f"{node_id} -> {target}: a cycle that can take no time")
            elif target not in state:
                visit(target)
        state[node_id] = 2

    for node_id in by_id:
        if node_id not in state:
            visit(node_id)
    return problems


def _next_ids(node: Any) -> list[str]:
    if isinstance(node, WaitEventNode):
        return [node.on_event, node.on_timeout]
    if isinstance(node, BranchNode):
        return [*(c.next for c in node.cases), node.default]
    if isinstance(node, SplitNode):
        return [a.next for a in node.arms]
    if isinstance(node, ExitNode):
        return []
    return [node.next]


def guard_problems(j: Journey) -> list[str]:
    problems = []
    for node in j.nodes:
        if isinstance(node, BranchNode):
            for case in node.cases:
                try:
                    validate_args(case.guard, case.args)
                except GuardError as exc:
                    problems.append(f"{node.id}: {exc}")
    return problems


def pre_due_sends(j: Journey, *, asked: bool = True) -> list[str]:
    """Sends that can only go out before the due date (with `asked=False`, those that do
    not wait for the debtor to ask for them)."""
    w = walk(j)
    return [
        n.id
        for n in j.nodes
        if isinstance(n, SendNode)
        and w.at(n.id)
        and all(s.t_max < 0 for s in w.at(n.id))
        and (asked or not all(s.asked for s in w.at(n.id)))
    ]


# -- the silent debtor -----------------------------------------------------------------------


@dataclass(frozen=True)
class Debtor:
    """A case that never answers nor pays: only the journey and the clock move."""

    enrolled: int = -10  # day relative to the due date
    reachable: frozenset[str] = frozenset({"email", "sms", "letter", "phone"})
    vulnerable: bool = False
    balance_euros: float = 240.0
    asked_pre_due: bool = False  # said yes to reminders before due dates on their page


@dataclass(frozen=True)
class Step:
    day: int
    node: str
    channels: tuple[str, ...] = ()
    granted_minor: int | None = None  # fees: what the law lets the gate charge


def _holds(guard: str, args: dict[str, Any], j: Journey, d: Debtor, day: int, sent: int) -> bool:
    if guard == "balance_at_least":
        return bool(d.balance_euros >= args["euros"])
    if guard == "balance_below":
        return bool(d.balance_euros < args["euros"])
    if guard == "days_past_due_at_least":
        return bool(day >= args["days"])
    if guard == "persona_is":
        return bool(j.persona == args["persona"])
    if guard == "reachable_by":
        return bool(args["channel"] in d.reachable)
    if guard == "last_delivery_is":
        return bool(args["outcome"] == ("delivered" if sent else "none"))
    if guard in ("promise_is", "plan_is"):
        return bool(args["state"] == "none")
    if guard == "responded":
        return False
    if guard == "reminders_at_least":
        return bool(sent >= args["count"])
    if guard == "vulnerable":
        return d.vulnerable
    if guard == "asked_for_pre_due_reminder":
        return d.asked_pre_due
    raise AssertionError(f"no silent-debtor rule for guard {guard!r}")


def _channels(node: SendNode, d: Debtor) -> tuple[str, ...]:
    usable = [c for c in node.channels if c in d.reachable]
    if usable and node.mode == "first":
        return (usable[0],)
    if usable:
        return tuple(usable)
    return tuple(c for c in node.fallback if c in d.reachable)[:1]


def silent_run(j: Journey, debtor: Debtor | None = None, arm: str | None = None) -> list[Step]:
    """What the debtor receives and when, until the journey exits (skipped sends have no
    channels and do not count as reminders)."""
    debtor = debtor or Debtor()
    day, reminders, node_id, log = debtor.enrolled, 0, j.start, []
    for _ in range(500):
        node = j.node(node_id)
        if isinstance(node, WaitNode):
            if node.anchor == Anchor.DUE_DATE:
                day = max(day, node.days)
            elif node.anchor == Anchor.ENTERED:
                day += node.days
            elif node.anchor == Anchor.ENROLLED:
                day = max(day, debtor.enrolled + node.days)
            node_id = node.next  # promise_date: no promise, go on at once
        elif isinstance(node, WaitEventNode):
            day += node.timeout_days
            node_id = node.on_timeout
        elif isinstance(node, BranchNode):
            node_id = next(
                (c.next for c in node.cases if _holds(c.guard, c.args, j, debtor, day, reminders)),
                node.default,
            )
        elif isinstance(node, SplitNode):
            node_id = next(a.next for a in node.arms if arm in (None, a.name))
        elif isinstance(node, SendNode):
            channels = _channels(node, debtor)
            reminders += bool(channels) and node.reminder
            log.append(Step(day, node.id, channels))
            node_id = node.next
        elif isinstance(node, FeeNode | TaskNode):
            log.append(Step(day, node.id))
            node_id = node.next
        else:
            assert isinstance(node, ExitNode)
            log.append(Step(day, node.id))
            return log
    raise AssertionError(f"{j.key}: the silent debtor never leaves the journey")


def timeline(steps: list[Step]) -> list[tuple[int, str]]:
    return [(s.day, s.node) for s in steps]


def run_problems(j: Journey, steps: list[Step]) -> list[str]:
    """The Book XIX rules checked on one run, the way the policy gate will check them."""
    problems, first = [], None
    for step in steps:
        node = j.node(step.node)
        if isinstance(node, SendNode) and node.reminder and step.channels:
            if step.day < 1:
                problems.append(f"day {step.day}: reminder {node.id} before the due date")
            if first is None:
                first = (step.day, "letter" in step.channels)
        if isinstance(node, FeeNode):
            if first is None:
                problems.append(f"day {step.day}: {node.id} before any reminder reached the debtor")
                continue
            gap = MIN_GAP_PAPER if first[1] else MIN_GAP_ELECTRONIC
            if step.day - first[0] < gap:
                problems.append(f"day {step.day}: {node.id} {step.day - first[0]} days after it")
    return problems


# -- the library as a whole ------------------------------------------------------------------


def test_every_file_is_a_valid_journey_named_after_its_key_and_version() -> None:
    assert library_files(), f"no journey in {LIBRARY}"
    for path in library_files():
        j = journey(path.stem)
        assert path.stem == (j.key if j.version == 1 else f"{j.key}_v{j.version}")
        assert j.description.strip()
    # Versions of a key follow each other from 1, each for the same persona.
    for key in latest_files():
        versions = sorted(journey(s).version for s in KEYS if journey(s).key == key)
        assert versions == list(range(1, len(versions) + 1))
        assert len({journey(s).persona for s in KEYS if journey(s).key == key}) == 1


def test_one_journey_per_catalog_persona_plus_the_universal_one() -> None:
    latest = latest_files()
    by_persona = {journey(stem).persona: key for key, stem in latest.items()}
    assert len(by_persona) == len(latest), "two journeys for the same persona"
    assert set(by_persona) == {*catalog(), None}
    assert by_persona[None] == "universal"
    for key in catalog():
        assert by_persona[key] == key


@pytest.mark.parametrize("key", KEYS)
def test_every_node_is_explained_and_the_journey_stays_small(key: str) -> None:
    j = journey(key)
    assert len(j.nodes) <= MAX_NODES
    unexplained = [n.id for n in j.nodes if not (n.note and n.note.strip())]
    assert unexplained == []


@pytest.mark.parametrize("key", KEYS)
def test_branch_guards_exist_and_their_arguments_validate(key: str) -> None:
    j = journey(key)
    assert guard_problems(j) == []
    used = {c.guard for n in j.nodes if isinstance(n, BranchNode) for c in n.cases}
    assert used <= set(GUARDS)


@pytest.mark.parametrize("key", KEYS)
def test_no_fee_before_the_first_reminder_nor_within_the_legal_wait(key: str) -> None:
    assert fee_problems(journey(key)) == []


@pytest.mark.parametrize("key", KEYS)
def test_sends_use_the_personas_channels_and_reminders_a_durable_medium(key: str) -> None:
    j = journey(key)
    assert channel_problems(j, persona_of(j)) == []


@pytest.mark.parametrize("key", KEYS)
def test_every_cycle_lets_time_pass(key: str) -> None:
    assert cycle_problems(journey(key)) == []


@pytest.mark.parametrize("key", KEYS)
def test_a_message_before_the_due_date_exactly_for_personas_who_want_one(key: str) -> None:
    j = journey(key)
    persona = persona_of(j)
    early = pre_due_sends(j)
    for node_id in early:
        node = j.node(node_id)
        assert node.reminder is False, node_id
        assert set(node.channels) <= DIGITAL, node_id
    if persona is not None:
        assert bool(pre_due_sends(j, asked=False)) == persona.reminder_before_due


@pytest.mark.parametrize("key", KEYS)
def test_every_journey_ends_with_a_hand_over(key: str) -> None:
    reasons = {n.reason for n in journey(key).nodes if isinstance(n, ExitNode)}
    assert ExitReason.HANDED_OVER in reasons


# -- silent debtors: the timelines people read in the notes ----------------------------------

SILENT_TIMELINES = {
    "universal": [
        (7, "send_r1"),
        (21, "send_r2"),
        (35, "indemnity"),
        (35, "send_notice"),
        (60, "handover"),
    ],
    "occasional": [
        (-3, "send_pre_due"),
        (1, "send_r1"),
        (5, "send_f1"),
        (9, "send_chat"),
        (17, "fee_notice"),
        (17, "send_notice"),
        (31, "handover"),
    ],
    "struggling": [
        (-5, "send_pre_due"),
        (5, "send_r1"),
        (12, "call"),
        (30, "send_r2"),
        (60, "send_r3"),
        (90, "handover"),
    ],
    "problem_payer": [
        (5, "send_r1"),
        (8, "call"),
        (29, "send_r2"),
        (36, "fee_r2"),
        (36, "indemnity"),
        (36, "send_notice"),
        (45, "handover"),
    ],
    "engaged": [
        (-3, "send_pre_due"),
        (3, "send_r1"),
        (14, "send_r2"),
        (28, "fee_r3"),
        (28, "send_r3"),
        (42, "handover"),
    ],
    "nonchalant": [
        (1, "send_r1"),
        (5, "send_chat"),
        (17, "send_r2"),
        (27, "fee_r2"),
        (27, "indemnity"),
        (27, "send_notice"),
        (40, "handover"),
    ],
}


@pytest.mark.parametrize("key", KEYS)
def test_a_silent_debtor_gets_the_documented_timeline(key: str) -> None:
    j = journey(key)
    steps = silent_run(j, Debtor(enrolled=-10), arm="pre_due")
    assert timeline(steps) == SILENT_TIMELINES[j.key]
    assert run_problems(j, steps) == []


@pytest.mark.parametrize("key", latest_files())
@pytest.mark.parametrize("arm", ["pre_due", "no_pre_due"])
def test_a_debtor_who_asked_gets_one_message_before_the_due_date_on_every_journey(
    key: str, arm: str
) -> None:
    """The newest version of every journey: who asked on their page for reminders before
    due dates gets one message a few days before, not a Book XIX reminder, then the
    timeline of a silent debtor as before."""
    j = journey(latest_files()[key])
    steps = silent_run(j, Debtor(enrolled=-10, asked_pre_due=True), arm=arm)
    early = [s for s in steps if s.day < 0 and s.channels]
    assert len(early) == 1 and -7 <= early[0].day <= -1
    node = j.node(early[0].node)
    assert isinstance(node, SendNode) and not node.reminder
    assert set(early[0].channels) <= DIGITAL
    assert timeline(steps)[1:] == [e for e in SILENT_TIMELINES[key] if e[0] >= 0]
    assert run_problems(j, steps) == []


def test_the_occasional_without_the_pre_due_arm_starts_at_the_first_reminder() -> None:
    j = journey("occasional")
    steps = silent_run(j, arm="no_pre_due")
    assert timeline(steps)[0] == (1, "send_r1")
    assert "send_pre_due" not in {s.node for s in steps}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("enrolled", [-1, 0, 3, 20, 45, 80])
def test_a_case_enrolled_late_still_gets_the_legal_wait_and_no_pre_due_message(
    key: str, enrolled: int
) -> None:
    j = journey(key)
    steps = silent_run(j, Debtor(enrolled=enrolled), arm="pre_due")
    assert run_problems(j, steps) == []
    for s in steps:
        node = j.node(s.node)
        if isinstance(node, SendNode) and not node.reminder and s.node in pre_due_sends(j):
            assert s.day < 0
    assert isinstance(j.node(steps[-1].node), ExitNode)


@pytest.mark.parametrize("key", KEYS)
def test_a_vulnerable_debtor_is_never_charged_and_goes_to_an_agent(key: str) -> None:
    j = journey(key)
    steps = silent_run(j, Debtor(vulnerable=True), arm="pre_due")
    assert not any(isinstance(j.node(s.node), FeeNode) for s in steps)
    tasks = [j.node(s.node) for s in steps if isinstance(j.node(s.node), TaskNode)]
    assert tasks and tasks[-1].kind == TaskKind.FOLLOW_UP
    assert j.node(steps[-1].node).reason == ExitReason.HANDED_OVER


def test_struggling_payers_are_never_charged_anything() -> None:
    assert not any(isinstance(n, FeeNode) for n in journey("struggling").nodes)


# -- the Occasional, as the seed describes him ------------------------------------------------


def test_the_occasional_experiment_draws_pre_due_against_none_with_a_holdout() -> None:
    j = journey("occasional")
    split = j.node(j.start)
    assert isinstance(split, SplitNode)
    assert split.experiment == "occasional-pre-due-2026"
    assert {a.name: a.weight for a in split.arms} == {
        "pre_due": 45,
        "no_pre_due": 45,
        "holdout": 10,
    }
    holdout = next(a for a in split.arms if a.name == "holdout")
    exit_node = j.node(holdout.next)
    assert isinstance(exit_node, ExitNode) and exit_node.reason == ExitReason.HOLDOUT
    pre_due_arm = next(a for a in split.arms if a.name == "pre_due")
    no_pre_due_arm = next(a for a in split.arms if a.name == "no_pre_due")
    assert "send_pre_due" in walk(j, pre_due_arm.next).states
    assert "send_pre_due" not in walk(j, no_pre_due_arm.next).states


def test_the_occasional_first_message_comes_before_the_due_date_by_email_or_sms() -> None:
    j = journey("occasional")
    w = walk(j)
    node = j.node("send_pre_due")
    assert node.template == "pre_due" and node.reminder is False
    assert set(node.channels) <= DIGITAL and not node.fallback
    for s in w.at("send_pre_due"):
        assert not s.sent, "the courtesy message must be the first one"
        assert -math.inf < s.t_min < 0, "a wait until a date before the due date comes first"
        assert s.t_max < 0, "it must never go out on or after the due date"
    # Nothing else can go out before the due date.
    for n in j.nodes:
        if isinstance(n, SendNode) and n.id != "send_pre_due":
            assert all(s.t_min >= 1 for s in w.at(n.id)), n.id


def test_the_occasional_gets_a_letter_only_after_digital_contact_failed() -> None:
    j = journey("occasional")
    w = walk(j)
    letters = [
        n.id for n in j.nodes if isinstance(n, SendNode) and "letter" in (*n.channels, *n.fallback)
    ]
    assert letters == ["send_r1_letter", "send_notice_letter"]
    for node_id in letters:
        assert all(s.failed for s in w.at(node_id)), node_id
    first = j.node("send_r1")
    assert first.template == "reminder_1_phone" and first.mode == "all"
    assert set(first.channels) == DIGITAL
    invite = j.node("send_chat")
    assert invite.template == "chat_invite" and invite.reminder is False


def test_the_occasional_without_email_or_sms_is_chased_by_letter_within_the_law() -> None:
    j = journey("occasional")
    steps = silent_run(j, Debtor(reachable=frozenset({"letter"})), arm="no_pre_due")
    received = [(s.day, s.node) for s in steps if s.channels]
    assert received == [(1, "send_r1_letter"), (22, "send_notice_letter")]
    assert run_problems(j, steps) == []


def test_the_occasional_is_charged_only_the_reminder_fee_on_the_formal_notice() -> None:
    fees = {n.kind for n in journey("occasional").nodes if isinstance(n, FeeNode)}
    assert fees == {FeeKind.REMINDER_FEE}


# -- the checkers catch what they are for ----------------------------------------------------


def test_the_walk_catches_a_fee_before_the_first_reminder() -> None:
    data = raw_copy("universal")
    data["nodes"].insert(
        0, {"id": "early_fee", "type": "fee", "kind": "reminder_fee", "next": "wait_r1"}
    )
    data["start"] = "early_fee"
    problems = fee_problems(Journey.model_validate(data))
    assert problems == ["early_fee: a fee before the first reminder"]


def test_the_walk_catches_an_indemnity_within_the_14_days() -> None:
    data = raw_copy("universal")
    raw_node(data, "wait_r2")["days"] = 3
    raw_node(data, "wait_notice")["days"] = 3
    problems = fee_problems(Journey.model_validate(data))
    assert problems == [
        "indemnity: a fee only 6 days after the first reminder send_r1 (at least 21 needed)"
    ]


def test_a_ladder_on_due_date_anchors_is_unlawful_for_cases_enrolled_late() -> None:
    """The textbook ladder (letters at due + 7, + 21, indemnity at + 35) charges the
    indemnity the day a case enrolled at due + 40 receives its first reminder."""
    data = raw_copy("universal")
    for node_id, days in (("wait_r2", 21), ("wait_notice", 35), ("wait_handover", 60)):
        raw_node(data, node_id).update(anchor="due_date", days=days)
    j = Journey.model_validate(data)
    assert fee_problems(j) == [
        "indemnity: a fee only 0 days after the first reminder send_r1 (at least 21 needed)"
    ]
    assert run_problems(j, silent_run(j)) == []  # on time it looks fine...
    late = silent_run(j, Debtor(enrolled=40))
    assert run_problems(j, late) == ["day 40: indemnity 0 days after it"]  # ... but not late


def test_the_walk_catches_a_second_flat_indemnity() -> None:
    data = raw_copy("problem_payer")
    raw_node(data, "plan_check_late")["default"] = "gate_notice"
    problems = fee_problems(Journey.model_validate(data))
    assert "indemnity: a second flat indemnity on the same path" in problems


def test_the_walk_catches_a_reminder_fee_when_no_further_reminder_went_out() -> None:
    data = raw_copy("nonchalant")
    raw_node(data, "send_r2")["reminder"] = False
    problems = fee_problems(Journey.model_validate(data))
    assert problems == [
        "fee_r2: a reminder fee the gate refuses: 1 reminder(s) on record, 0 fee(s) already"
    ]


def test_the_walk_catches_a_reminder_fee_decided_with_its_own_reminder() -> None:
    """A fee node right before (or after) the second reminder is decided in the same tick:
    the gate sees one reminder on record and refuses it as the first one's."""
    data = raw_copy("problem_payer")
    raw_node(data, "gate_r2")["default"] = "fee_early"
    raw_node(data, "promise_r2")["on_event"] = "fee_early"
    data["nodes"].append(
        {"id": "fee_early", "type": "fee", "kind": "reminder_fee", "next": "send_r2"}
    )
    problems = fee_problems(Journey.model_validate(data))
    assert (
        "fee_early: a reminder fee the gate refuses: 1 reminder(s) on record, 0 fee(s) already"
        in problems
    )


def test_the_walk_catches_a_reminder_before_the_due_date() -> None:
    data = raw_copy("engaged")
    raw_node(data, "send_pre_due")["reminder"] = True
    problems = fee_problems(Journey.model_validate(data))
    assert problems == ["send_pre_due: a Book XIX reminder that can go out before the due date"]


def test_the_channel_check_catches_a_letter_for_the_occasional_before_digital_failure() -> None:
    data = raw_copy("occasional")
    raw_node(data, "send_f1")["fallback"] = ["letter"]
    j = Journey.model_validate(data)
    assert channel_problems(j, persona_of(j)) == [
        "send_f1: falls back on an avoided channel before digital failure"
    ]
    data = raw_copy("occasional")
    raw_node(data, "check_digital")["default"] = "send_r1"
    raw_node(data, "r1_outcome")["cases"][0]["next"] = "promise_r1"
    raw_node(data, "send_r1")["channels"] = ["letter"]
    data["nodes"] = [n for n in data["nodes"] if n["id"] not in ("send_r1_letter", "letter_wait")]
    j = Journey.model_validate(data)
    assert channel_problems(j, persona_of(j)) == [
        "send_r1: channels ['letter'] are not in the persona's preferred order "
        "['email', 'sms', 'chat']"
    ]


def test_the_channel_check_catches_the_catalog_order_reversed() -> None:
    data = raw_copy("struggling")
    raw_node(data, "send_r1")["channels"] = ["email", "letter"]
    j = Journey.model_validate(data)
    assert channel_problems(j, persona_of(j)) == [
        "send_r1: channels ['email', 'letter'] are not in the persona's preferred order "
        "['letter', 'phone', 'email']"
    ]


def test_the_pre_due_checks_catch_a_courtesy_message_sent_after_the_due_date() -> None:
    data = raw_copy("occasional")
    raw_node(data, "wait_pre_due")["next"] = "send_pre_due"
    data["nodes"] = [n for n in data["nodes"] if n["id"] != "before_due"]
    j = Journey.model_validate(data)
    assert pre_due_sends(j) == []  # enrolled late, the "pre-due" message goes out late
    steps = silent_run(j, Debtor(enrolled=10), arm="pre_due")
    assert (10, "send_pre_due") in timeline(steps)


def test_a_loop_through_a_wait_on_a_past_date_is_refused_by_the_model() -> None:
    data = raw_copy("struggling")
    raw_node(data, "plan_running").update(anchor="due_date", days=14)
    # Once the due date + 14 has passed, that wait takes no time: the loop would spin.
    with pytest.raises(ValueError, match=r"situation -> plan_running -> situation loops"):
        Journey.model_validate(data)


def test_the_cycle_check_catches_an_answer_that_returns_to_its_wait_within_the_tick() -> None:
    """Without the day's pause, an answer stamped with the tick's time wakes the watch
    again as soon as the case comes back to it (the planner then fails the whole tick)."""
    data = raw_copy("nonchalant")
    raw_node(data, "watch_r1")["on_event"] = "promise_r1"
    data["nodes"] = [n for n in data["nodes"] if n["id"] != "pause_r1"]
    j = Journey.model_validate(data)  # the model is satisfied: the loop has a wait_event
    assert cycle_problems(j) == ["promise_r1 -> watch_r1: a cycle that can take no time"]


def test_the_guard_check_catches_an_unknown_guard_and_bad_arguments() -> None:
    data = raw_copy("struggling")
    raw_node(data, "situation")["cases"][0]["guard"] = "vulnerabel"
    raw_node(data, "promise_outcome")["cases"][0]["args"] = {"state": "forgotten"}
    problems = guard_problems(Journey.model_validate(data))
    assert len(problems) == 2
    assert problems[0].startswith("situation: unknown guard 'vulnerabel'")
    assert problems[1].startswith("promise_outcome: guard 'promise_is': state:")


def test_the_silent_run_catches_a_fee_before_any_reminder_reached_the_debtor() -> None:
    j = journey("nonchalant")
    steps = [Step(1, "send_r1", ()), Step(17, "fee_r2"), Step(17, "send_r2", ("sms",))]
    assert run_problems(j, steps) == ["day 17: fee_r2 before any reminder reached the debtor"]


# -- the real planner, one tick a day ---------------------------------------------------------

DUE = dt.date(2026, 12, 10)
EPOCH = dt.date(1970, 1, 1)
TICK = dt.time(9, 0)


def _tick_at(day: int) -> dt.datetime:
    """09:00 UTC on the given day relative to the due date (the same date in Brussels)."""
    return dt.datetime.combine(DUE + dt.timedelta(days=day), TICK, dt.UTC)


def planner_run(
    j: Journey,
    n: int = 1,
    *,
    enrolled: int = -10,
    days: int = 130,
    reachable: frozenset[str] = Debtor().reachable,
    on_day: dict[int, Any] | None = None,
) -> tuple[list[list[Step]], list[str | None]]:
    """Each case's steps and experiment arm when the planner runs once a day. Between ticks
    the facts change as the store would change them (a reminder that went out counts, a
    fee the law allows is booked), and each fee is put to the law as the gate puts it."""
    program = compile_journeys([j])
    facts = CaseFacts.empty([f"case-{i}" for i in range(n)])
    facts.due_day[:] = (DUE - EPOCH).days
    facts.balance_minor[:] = 24_000
    facts.reachable[:] = sum(CHANNEL_BITS[c] for c in reachable)
    state = Enrolments.start(
        program, np.zeros(n, dtype=np.int64), int(_tick_at(enrolled).timestamp())
    )
    steps: list[list[Step]] = [[] for _ in range(n)]
    arms: list[str | None] = [None] * n
    first: list[tuple[dt.datetime, bool] | None] = [None] * n
    charged: list[dict[FeeKind, int]] = [dict.fromkeys(FeeKind, 0) for _ in range(n)]
    for day in range(enrolled, enrolled + days):
        now = _tick_at(day)
        if on_day and day in on_day:
            on_day[day](facts, now)
        decisions, state = plan(program, state, facts, now)
        on_record = facts.reminders_sent.copy()  # what the gate reads during this tick
        seen = set()
        for row, kind, node, detail in zip(
            decisions.row, decisions.kind, decisions.node, decisions.detail, strict=True
        ):
            node_id = program.node_id[node]
            assert (row, node_id) not in seen, f"{node_id} decided twice in one tick"
            seen.add((row, node_id))
            if kind is Kind.ARM:
                arms[row] = detail[1]
                continue
            channels = tuple(detail) if kind is Kind.SEND else ()
            granted = None
            if kind is Kind.FEE:
                granted = allowed_fee(
                    FeeKind(detail),
                    balance_minor=int(facts.balance_minor[row]),
                    reminders_sent=int(on_record[row]),
                    first_reminder=first[row],
                    fees_charged_minor=charged[row][FeeKind.REMINDER_FEE],
                    indemnity_charged_minor=charged[row][FeeKind.FLAT_INDEMNITY],
                    now=now,
                    zone=ZoneInfo("Europe/Brussels"),
                    config=LawConfig(),
                ).amount_minor
                charged[row][FeeKind(detail)] += granted
            steps[row].append(Step(day, node_id, channels, granted))
            if kind is Kind.SEND and channels:
                facts.last_delivery[row] = Delivery.SENT
                if j.node(node_id).reminder:
                    facts.reminders_sent[row] += 1
                    first[row] = first[row] or (now, "letter" not in channels)
    return steps, arms


@pytest.mark.parametrize("key", KEYS)
def test_the_planner_gives_a_silent_debtor_the_documented_timeline(key: str) -> None:
    j = journey(key)
    steps, arms = planner_run(j, 40)
    expected = {
        "pre_due": SILENT_TIMELINES[j.key],
        "no_pre_due": [e for e in SILENT_TIMELINES[j.key] if e[1] != "send_pre_due"],
        "holdout": [(-10, "holdout")],
        None: SILENT_TIMELINES[j.key],
    }
    for case_steps, arm in zip(steps, arms, strict=True):
        assert timeline(case_steps) == expected[arm], arm
        assert run_problems(j, case_steps) == []
        refused = [s.node for s in case_steps if s.granted_minor == 0]
        assert refused == [], "the law refuses these fees"
    if key == "occasional":
        assert set(arms) == {"pre_due", "no_pre_due", "holdout"}


@pytest.mark.parametrize("key", KEYS)
def test_a_debtor_who_answers_every_day_never_makes_the_planner_spin(key: str) -> None:
    """Events stamped with the tick's own time wake a wait_event again if the journey
    returns to it within the tick; every journey puts a day between."""

    def answer(f: CaseFacts, now: dt.datetime) -> None:
        for event in (JourneyEvent.REPLIED, JourneyEvent.PAYMENT, JourneyEvent.CLICKED):
            f.event_at[:, EVENT_INDEX[event]] = int(now.timestamp())

    steps, _ = planner_run(journey(key), 40, on_day=dict.fromkeys(range(-10, 120), answer))
    for case_steps in steps:
        assert run_problems(journey(key), case_steps) == []


def test_the_occasional_waits_for_his_promise_then_nudges_him() -> None:
    """He promises on due + 2 to pay on due + 12 and does not: nothing is sent meanwhile,
    and the chasing resumes four days after the promise broke."""
    j = journey("occasional")

    def promise(f: CaseFacts, now: dt.datetime) -> None:
        f.event_at[:, EVENT_INDEX[JourneyEvent.PROMISE_MADE]] = int(now.timestamp())
        f.promise[:] = PromiseCode.PENDING
        f.promise_day[:] = (DUE - EPOCH).days + 12

    def broken(f: CaseFacts, now: dt.datetime) -> None:
        f.promise[:] = PromiseCode.BROKEN
        f.promise_day[:] = -1

    steps, arms = planner_run(j, 40, on_day={2: promise, 14: broken})
    for case_steps, arm in zip(steps, arms, strict=True):
        if arm == "holdout":
            continue
        sent = [(s.day, s.node) for s in case_steps if s.channels]
        after_due = [e for e in sent if e[0] >= 1]
        assert after_due[:2] == [(1, "send_r1"), (18, "send_f1")], arm
        assert run_problems(j, case_steps) == []


def test_the_struggling_payer_is_left_alone_while_her_plan_runs() -> None:
    """She agrees a plan after the first reminder; nothing is sent while it runs (the
    planner pauses a case whose plan runs without arrears). When it breaks, the ladder
    resumes with the second reminder at the next tick, not at the journey's next
    fortnightly look: a paused case's timers have passed meanwhile."""
    j = journey("struggling")

    def plan_agreed(f: CaseFacts, now: dt.datetime) -> None:
        f.plan[:] = 1  # PlanState.ACTIVE
        f.event_at[:, EVENT_INDEX[JourneyEvent.REPLIED]] = int(now.timestamp())

    def plan_broken(f: CaseFacts, now: dt.datetime) -> None:
        f.plan[:] = 3  # PlanState.BROKEN

    (steps,), _ = planner_run(j, on_day={8: plan_agreed, 70: plan_broken})
    assert [(s.day, s.node) for s in steps if 8 <= s.day < 70] == []
    assert [(s.day, s.node) for s in steps if s.day >= 70][:1] == [(71, "send_r2")]


def test_the_library_loader_reads_every_journey_and_finds_one_per_persona() -> None:
    library = load_library(personas=list(catalog()))
    latest = latest_files()
    assert library.journey_keys() == sorted(latest)
    assert library.for_persona(None) == journey(latest["universal"])
    for key in catalog():
        assert library.for_persona(key) == journey(latest[key])


@pytest.mark.parametrize("journey", list(load_library()), ids=lambda j: j.key)
def test_stage_entries_follow_the_reminders_of_each_journey(journey: Journey) -> None:
    """Entry 0 is the start; entry r is reached only through a reminder send, and no path
    from the start reaches it with fewer than r reminders."""
    entries = journey.stage_entries()
    assert entries[0] == journey.start
    reminders = [n for n in journey.nodes if isinstance(n, SendNode) and n.reminder]
    assert len(entries) - 1 <= len(reminders)
    after_reminder = {n.next for n in reminders}
    by_id = {n.id: n for n in journey.nodes}
    for r, entry in enumerate(entries[1:], start=1):
        assert entry in after_reminder
        # Fewest reminders on any path from the start to `entry` (0-1 breadth-first).
        fewest = {journey.start: 0}
        todo = [journey.start]
        while todo:
            node = by_id[todo.pop(0)]
            cost = int(isinstance(node, SendNode) and node.reminder)
            for source, _, target in journey.edges():
                if source == node.id and fewest[node.id] + cost < fewest.get(target, 99):
                    fewest[target] = fewest[node.id] + cost
                    todo.append(target)
        assert fewest[entry] == r
