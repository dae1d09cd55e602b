"""The planner: a pure, deterministic function (enrolments, case facts, now) → (decisions,
new enrolments). No I/O, no clock, no randomness: the same inputs give the same output,
so production ticks, the simulator and tests with a fake clock all run this code.

Journeys are compiled into tables (one row per node of every journey) and cases are
evaluated as columns: each pass takes the due cases, groups them by node type and moves
each group with a few numpy operations. A case moves through as many instant nodes
(branch, split, send, task, fee) as it can in one tick and stops at a wait or an exit.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from parcours.domain.journey import (
    Anchor,
    BranchNode,
    ExitNode,
    ExitReason,
    FeeNode,
    Journey,
    SendNode,
    SplitNode,
    TaskNode,
    WaitEventNode,
    WaitNode,
)
from parcours.journeys.facts import CHANNEL_BITS, EVENT_INDEX, CaseFacts, PlanState
from parcours.journeys.guards import evaluate, validate_args

__all__ = [
    "NEVER",
    "Decisions",
    "Enrolments",
    "Kind",
    "Program",
    "compile_journeys",
    "plan",
]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
NEVER: Final = np.iinfo(np.int64).max  # wake_at of a case that waits for nothing
DAY: Final = 86_400
_MAX_PASSES: Final = 64


class NodeType(enum.IntEnum):
    WAIT = 0
    WAIT_EVENT = 1
    BRANCH = 2
    SPLIT = 3
    SEND = 4
    TASK = 5
    FEE = 6
    EXIT = 7


_TYPES: Final = {
    WaitNode: NodeType.WAIT,
    WaitEventNode: NodeType.WAIT_EVENT,
    BranchNode: NodeType.BRANCH,
    SplitNode: NodeType.SPLIT,
    SendNode: NodeType.SEND,
    TaskNode: NodeType.TASK,
    FeeNode: NodeType.FEE,
    ExitNode: NodeType.EXIT,
}
_ANCHORS: Final = {a: i for i, a in enumerate(Anchor)}
_EXITS: Final = list(ExitReason)


class Kind(enum.IntEnum):
    """What a decision asks for."""

    SEND = 0
    TASK = 1
    FEE = 2
    EXIT = 3
    ARM = 4  # the case drew an experiment arm


@dataclass(frozen=True)
class Program:
    """Journeys compiled to tables; node numbers are global across the journeys."""

    journeys: tuple[Journey, ...]
    start: I64  # per journey: its start node
    node_journey: I64
    node_id: tuple[str, ...]
    node_type: I64
    next_a: I64  # next / on_event / default
    next_b: I64  # on_timeout
    anchor: I64
    days: I64
    events: I64  # bit mask of JourneyEvent indices a wait_event waits for
    exit_reason: I64  # index in ExitReason, -1 for other nodes
    nodes: tuple[Any, ...]  # the node models, for parameters read per decision
    branches: dict[int, tuple[tuple[str, Any, int], ...]]  # node → (guard, args, target)
    splits: dict[int, tuple[str, I64, I64, tuple[str, ...]]]  # node → (exp, cum w, targets)

    def journey_index(self, key: str, version: int | None = None) -> int:
        matches = [
            i
            for i, j in enumerate(self.journeys)
            if j.key == key and (version is None or j.version == version)
        ]
        if not matches:
            raise KeyError(f"no journey {key}{'' if version is None else f'@{version}'}")
        return max(matches, key=lambda i: self.journeys[i].version)

    def node_index(self, journey: int, node_id: str) -> int:
        for g in np.flatnonzero(self.node_journey == journey).tolist():
            if self.node_id[g] == node_id:
                return int(g)
        raise KeyError(f"{self.journeys[journey].name} has no node {node_id!r}")


def compile_journeys(journeys: Sequence[Journey]) -> Program:
    """Tables for the planner; guard arguments are validated here (GuardError if bad)."""
    offsets, total = [], 0
    for journey in journeys:
        offsets.append(total)
        total += len(journey.nodes)
    index = {}
    for j, journey in enumerate(journeys):
        for k, node in enumerate(journey.nodes):
            index[(j, node.id)] = offsets[j] + k
    arrays = {
        name: np.full(total, -1, dtype=np.int64)
        for name in ("journey", "type", "a", "b", "anchor", "days", "events", "exit")
    }
    node_ids: list[str] = []
    nodes: list[Any] = []
    branches: dict[int, tuple[tuple[str, Any, int], ...]] = {}
    splits: dict[int, tuple[str, I64, I64, tuple[str, ...]]] = {}
    for j, journey in enumerate(journeys):
        for node in journey.nodes:
            g = index[(j, node.id)]
            node_ids.append(node.id)
            nodes.append(node)
            arrays["journey"][g] = j
            arrays["type"][g] = _TYPES[type(node)]

            def to(target: str, _j: int = j) -> int:
                return index[(_j, target)]

            if isinstance(node, WaitNode):
                arrays["a"][g] = to(node.next)
                arrays["anchor"][g] = _ANCHORS[node.anchor]
                arrays["days"][g] = node.days
            elif isinstance(node, WaitEventNode):
                arrays["a"][g], arrays["b"][g] = to(node.on_event), to(node.on_timeout)
                arrays["days"][g] = node.timeout_days
                arrays["events"][g] = sum(1 << EVENT_INDEX[e] for e in node.events)
            elif isinstance(node, BranchNode):
                arrays["a"][g] = to(node.default)
                branches[g] = tuple(
                    (c.guard, validate_args(c.guard, c.args), to(c.next)) for c in node.cases
                )
            elif isinstance(node, SplitNode):
                weights = np.array([a.weight for a in node.arms], dtype=np.int64)
                splits[g] = (
                    node.experiment,
                    np.cumsum(weights),
                    np.array([to(a.next) for a in node.arms], dtype=np.int64),
                    tuple(a.name for a in node.arms),
                )
            elif isinstance(node, ExitNode):
                arrays["exit"][g] = _EXITS.index(node.reason)
            else:
                arrays["a"][g] = to(node.next)
    return Program(
        journeys=tuple(journeys),
        start=np.array([index[(j, jr.start)] for j, jr in enumerate(journeys)], dtype=np.int64),
        node_journey=arrays["journey"],
        node_id=tuple(node_ids),
        node_type=arrays["type"],
        next_a=arrays["a"],
        next_b=arrays["b"],
        anchor=arrays["anchor"],
        days=arrays["days"],
        events=arrays["events"],
        exit_reason=arrays["exit"],
        nodes=tuple(nodes),
        branches=branches,
        splits=splits,
    )


@dataclass
class Enrolments:
    """Where each case stands in its journey (columns, aligned with the case facts)."""

    journey: I64
    node: I64  # global node number; the exit node once finished
    entered_at: I64  # when the case entered its current node (UTC seconds)
    enrolled_at: I64
    wake_at: I64  # when the planner must look at the case again (NEVER: only on events)
    step: I64  # nodes entered so far: makes attempt ids unique when a journey loops
    done: B

    def __len__(self) -> int:
        return len(self.node)

    @classmethod
    def start(cls, program: Program, journey: I64, now: int) -> Enrolments:
        n = len(journey)
        return cls(
            journey=journey.astype(np.int64),
            node=program.start[journey],
            entered_at=np.full(n, now, dtype=np.int64),
            enrolled_at=np.full(n, now, dtype=np.int64),
            wake_at=np.full(n, now, dtype=np.int64),
            step=np.zeros(n, dtype=np.int64),
            done=np.zeros(n, dtype=bool),
        )

    def copy(self) -> Enrolments:
        return Enrolments(
            self.journey.copy(),
            self.node.copy(),
            self.entered_at.copy(),
            self.enrolled_at.copy(),
            self.wake_at.copy(),
            self.step.copy(),
            self.done.copy(),
        )


@dataclass
class Decisions:
    """What the planner decided this tick, one row per decision (columns)."""

    row: list[int] = field(default_factory=list)  # index of the case
    kind: list[Kind] = field(default_factory=list)
    node: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    # SEND: channels in order; TASK: (kind, script); FEE: fee kind; EXIT: reason;
    # ARM: (experiment, arm name).
    detail: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.row)

    def add(self, rows: I64, kind: Kind, nodes: I64, steps: I64, details: Sequence[Any]) -> None:
        self.row.extend(rows.tolist())
        self.kind.extend([kind] * len(rows))
        self.node.extend(nodes.tolist())
        self.step.extend(steps.tolist())
        self.detail.extend(details)


class _Clock:
    """UTC instants of local midnights in the creditor's zone, cached per day."""

    def __init__(self, zone: str) -> None:
        self.zone = zoneinfo.ZoneInfo(zone)
        self.cache: dict[int, int] = {}

    def midnight(self, days: I64) -> I64:
        unique, inverse = np.unique(days, return_inverse=True)
        values = np.empty(len(unique), dtype=np.int64)
        for k, day in enumerate(unique.tolist()):
            value = self.cache.get(day)
            if value is None:
                local = dt.datetime.combine(
                    dt.date(1970, 1, 1) + dt.timedelta(days=day), dt.time(), self.zone
                )
                value = int(local.timestamp())
                self.cache[day] = value
            values[k] = value
        result: I64 = values[inverse]
        return result


def _arm_draw(case_keys: Sequence[str], experiment: str) -> I64:
    """A sticky draw in [0, 10^9): the same case and experiment always draw the same."""
    out = np.empty(len(case_keys), dtype=np.int64)
    for i, key in enumerate(case_keys):
        digest = hashlib.blake2b(f"{experiment}:{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") % 1_000_000_000
    return out


def plan(
    program: Program,
    enrolments: Enrolments,
    facts: CaseFacts,
    now: dt.datetime,
    zone: str = "Europe/Brussels",
) -> tuple[Decisions, Enrolments]:
    """Advance every due case; returns the decisions and the new enrolment state.

    `facts` is aligned with `enrolments` (row i describes the case of enrolment i).
    """
    t = int(now.timestamp())
    today = (now.astimezone(zoneinfo.ZoneInfo(zone)).date() - dt.date(1970, 1, 1)).days
    clock = _Clock(zone)
    state = enrolments.copy()
    decisions = Decisions()
    active = ~state.done
    # A plan running without arrears, or a question waiting for an agent's answer,
    # pauses collection as a dispute or a hold does.
    paused = (
        facts.disputed
        | facts.legal_hold
        | facts.contact_objection
        | (facts.plan == PlanState.ACTIVE)
        | facts.question_open
    )
    paid = active & (facts.balance_minor <= 0)
    if paid.any():
        rows = np.flatnonzero(paid)
        decisions.add(
            rows, Kind.EXIT, state.node[rows], state.step[rows], [ExitReason.PAID] * len(rows)
        )
        state.done[rows] = True
        state.wake_at[rows] = NEVER
    woken = _woken_by_events(program, state, facts)
    due = np.flatnonzero(active & ~paid & ~paused & ((state.wake_at <= t) | woken))
    for _ in range(_MAX_PASSES):
        if due.size == 0:
            break
        due = _pass(program, state, facts, due, t, today, clock, decisions)
    # A case still moving after that many nodes loops through dates already past: it is
    # parked until tomorrow instead of holding up the whole tick.
    state.wake_at[due] = t + DAY
    return decisions, state


def _woken_by_events(program: Program, state: Enrolments, facts: CaseFacts) -> B:
    """Cases waiting for an event that happened after they started waiting: due now,
    whatever their wake time (the store need not rewrite wake times when events land)."""
    wanted = program.events[state.node]
    if len(state) == 0 or not (wanted > 0).any():
        return np.zeros(len(state), dtype=bool)
    return _heard(wanted, facts.event_at, state.entered_at)


def _heard(wanted: I64, event_at: I64, since: I64) -> B:
    """Which rows saw one of their `wanted` events (bit masks) strictly after `since`."""
    heard = np.zeros(len(wanted), dtype=bool)
    for column in EVENT_INDEX.values():
        listens = ((wanted >> column) & 1) == 1
        if listens.any():
            heard |= listens & (event_at[:, column] > since)
    return heard


def _move(state: Enrolments, rows: I64, targets: I64, t: int) -> None:
    state.node[rows] = targets
    state.entered_at[rows] = t
    state.step[rows] += 1
    state.wake_at[rows] = t


def _pass(
    program: Program,
    state: Enrolments,
    facts: CaseFacts,
    due: I64,
    t: int,
    today: int,
    clock: _Clock,
    decisions: Decisions,
) -> I64:
    """One step for every due case; returns the cases that moved (still due)."""
    nodes = state.node[due]
    types = program.node_type[nodes]
    order = np.argsort(types, kind="stable")
    due, nodes, types = due[order], nodes[order], types[order]
    bounds = np.searchsorted(types, np.arange(len(NodeType) + 1))
    moved: list[I64] = []
    for kind in NodeType:
        rows = due[bounds[kind] : bounds[kind + 1]]
        if rows.size == 0:
            continue
        at = nodes[bounds[kind] : bounds[kind + 1]]
        if kind is NodeType.WAIT:
            moved.append(_wait(program, state, facts, rows, at, t, clock))
        elif kind is NodeType.WAIT_EVENT:
            moved.append(_wait_event(program, state, facts, rows, at, t))
        elif kind is NodeType.BRANCH:
            moved.append(_branch(program, state, facts, rows, at, t, today))
        elif kind is NodeType.SPLIT:
            moved.append(_split(program, state, facts, rows, at, t, decisions))
        elif kind is NodeType.EXIT:
            reasons = [_EXITS[r] for r in program.exit_reason[at].tolist()]
            decisions.add(rows, Kind.EXIT, at, state.step[rows], reasons)
            state.done[rows] = True
            state.wake_at[rows] = NEVER
        else:
            _act(program, state, facts, rows, at, kind, decisions)
            _move(state, rows, program.next_a[at], t)
            moved.append(rows)
    return np.concatenate(moved) if moved else np.zeros(0, dtype=np.int64)


def _wait(
    program: Program, state: Enrolments, facts: CaseFacts, rows: I64, at: I64, t: int, clock: _Clock
) -> I64:
    anchor = program.anchor[at]
    days = program.days[at]
    target = np.full(len(rows), t, dtype=np.int64)
    on_date = anchor == _ANCHORS[Anchor.DUE_DATE]
    if on_date.any():
        target[on_date] = clock.midnight(facts.due_day[rows[on_date]] + days[on_date])
    promised = (anchor == _ANCHORS[Anchor.PROMISE_DATE]) & (facts.promise_day[rows] >= 0)
    if promised.any():
        target[promised] = clock.midnight(facts.promise_day[rows[promised]] + days[promised])
    enrolled = anchor == _ANCHORS[Anchor.ENROLLED]
    target[enrolled] = state.enrolled_at[rows[enrolled]] + days[enrolled] * DAY
    entered = anchor == _ANCHORS[Anchor.ENTERED]
    target[entered] = state.entered_at[rows[entered]] + days[entered] * DAY
    ready = target <= t
    waiting = rows[~ready]
    state.wake_at[waiting] = target[~ready]
    go = rows[ready]
    _move(state, go, program.next_a[at[ready]], t)
    return go


def _wait_event(
    program: Program, state: Enrolments, facts: CaseFacts, rows: I64, at: I64, t: int
) -> I64:
    entered = state.entered_at[rows]
    happened = _heard(program.events[at], facts.event_at[rows], entered)
    deadline = entered + program.days[at] * DAY
    timed_out = ~happened & (deadline <= t)
    _move(state, rows[happened], program.next_a[at[happened]], t)
    _move(state, rows[timed_out], program.next_b[at[timed_out]], t)
    still = ~happened & ~timed_out
    state.wake_at[rows[still]] = deadline[still]  # an event wakes it earlier (the store)
    return rows[happened | timed_out]


def _branch(
    program: Program,
    state: Enrolments,
    facts: CaseFacts,
    rows: I64,
    at: I64,
    t: int,
    today: int,
) -> I64:
    for g in np.unique(at).tolist():
        mine = rows[at == g]
        target = np.full(len(mine), program.next_a[g], dtype=np.int64)
        open_ = np.ones(len(mine), dtype=bool)
        for guard, args, to in program.branches[g]:
            if not open_.any():
                break
            hit = np.zeros(len(mine), dtype=bool)
            hit[open_] = evaluate(guard, args, facts, mine[open_], today)
            target[hit] = to
            open_ &= ~hit
        _move(state, mine, target, t)
    return rows


def _split(
    program: Program,
    state: Enrolments,
    facts: CaseFacts,
    rows: I64,
    at: I64,
    t: int,
    decisions: Decisions,
) -> I64:
    for g in np.unique(at).tolist():
        mine = rows[at == g]
        experiment, cumulative, targets, names = program.splits[g]
        draw = _arm_draw([facts.case_key[i] for i in mine.tolist()], experiment)
        arm = np.searchsorted(cumulative, draw % cumulative[-1], side="right")
        decisions.add(
            mine,
            Kind.ARM,
            np.full(len(mine), g, dtype=np.int64),
            state.step[mine],
            [(experiment, names[a]) for a in arm.tolist()],
        )
        _move(state, mine, targets[arm], t)
    return rows


def _act(
    program: Program,
    state: Enrolments,
    facts: CaseFacts,
    rows: I64,
    at: I64,
    kind: NodeType,
    decisions: Decisions,
) -> None:
    steps = state.step[rows]
    if kind is NodeType.SEND:
        details = [
            _channels(program.nodes[g], int(r), int(p))
            for g, r, p in zip(
                at.tolist(),
                facts.reachable[rows].tolist(),
                facts.preferred[rows].tolist(),
                strict=True,
            )
        ]
        decisions.add(rows, Kind.SEND, at, steps, details)
    elif kind is NodeType.TASK:
        details = [(program.nodes[g].kind, program.nodes[g].script) for g in at.tolist()]
        decisions.add(rows, Kind.TASK, at, steps, details)
    else:
        decisions.add(rows, Kind.FEE, at, steps, [program.nodes[g].kind for g in at.tolist()])


def _channels(node: SendNode, reachable: int, preferred: int = 0) -> tuple[str, ...]:
    """The channels to send on, given what is reachable; () when none is.

    A step that sends on one channel tries first the one the debtor chose (`preferred`,
    a CHANNEL_BITS value) when the step offers it, as a channel or a fallback."""
    usable = [c for c in node.channels if reachable & CHANNEL_BITS[c]]
    if node.mode == "all" and usable:
        return tuple(usable)
    if preferred & reachable:
        chosen = [c for c in (*node.channels, *node.fallback) if CHANNEL_BITS[c] == preferred]
        if chosen:
            return (chosen[0],)
    if usable:
        return (usable[0],)
    fallback = [c for c in node.fallback if reachable & CHANNEL_BITS[c]]
    return (fallback[0],) if fallback else ()
