"""Journey definitions: versioned data (YAML) validated by these models.

A journey is a small graph of nodes keyed by id, entered once per case. Node vocabulary
(after Dittofeed, PostHog Workflows and Kill Bill's overdue states):

- `wait`: until a date relative to an anchor (the oldest open due date, the promise date,
  the enrolment or the moment the node was entered), e.g. due date - 3 days;
- `wait_event`: until one of some events happens, or a timeout;
- `branch`: the first case whose guard holds (guards are named functions from a vetted
  registry, with typed arguments — never `eval`), else `default`;
- `split`: an experiment; each case draws an arm once, stickily (hash of case and
  experiment), by weight; a holdout arm is just an arm;
- `send`: one message on one or several channels, with a template and a fallback order;
- `task`: work for an agent (a call, a follow-up);
- `fee`: charge a fee the law allows at that point (the policy gate checks it);
- `exit`: leave the journey with a reason.

Whatever the node, a case whose balance is paid leaves the journey ("paid"), and a case
that is disputed, on legal hold or objects to contact is paused: no decision is taken
for it until that ends. These are not nodes: no journey can forget them.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "Anchor",
    "Arm",
    "BranchCase",
    "BranchNode",
    "ExitNode",
    "ExitReason",
    "Experiment",
    "ExperimentArm",
    "FeeKind",
    "FeeNode",
    "Journey",
    "JourneyEvent",
    "Node",
    "SendNode",
    "SplitNode",
    "TaskKind",
    "TaskNode",
    "WaitEventNode",
    "WaitNode",
]

NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")]
ChannelName = Literal["email", "sms", "letter", "phone", "chat"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Anchor(enum.StrEnum):
    DUE_DATE = "due_date"  # the oldest open due date of the case
    PROMISE_DATE = "promise_date"  # the pending promise's date (no promise: go on at once)
    ENROLLED = "enrolled"  # when the case entered the journey
    ENTERED = "entered"  # when the case entered this node (a plain duration)


class JourneyEvent(enum.StrEnum):
    """What a `wait_event` node can wait for (facts the store derives from events)."""

    PAYMENT = "payment"  # any payment since the node was entered (partial included)
    PROMISE_MADE = "promise_made"
    PROMISE_BROKEN = "promise_broken"
    REPLIED = "replied"  # an answer by message, chat or form
    CLICKED = "clicked"  # the pay link or page was opened
    BOUNCED = "bounced"  # the last message could not be delivered
    SURVEY_ANSWERED = "survey_answered"


class ExitReason(enum.StrEnum):
    PAID = "paid"
    DISPUTED = "disputed"
    OBJECTION = "objection"
    LEGAL_HOLD = "legal_hold"
    HANDED_OVER = "handed_over"  # to a bailiff, lawyer or an agent's own follow-up
    COMPLETED = "completed"  # the journey ran out of steps
    HOLDOUT = "holdout"  # an experiment's holdout arm: deliberately not contacted


class TaskKind(enum.StrEnum):
    CALL = "call"
    FOLLOW_UP = "follow_up"


class FeeKind(enum.StrEnum):
    REMINDER_FEE = "reminder_fee"  # Book XIX: at most €7.50 + postage, never the first
    FLAT_INDEMNITY = "flat_indemnity"  # art. XIX.4 bands, after the 14-day wait
    LATE_INTEREST = "late_interest"  # reference rate + 8 points at most


class _Node(_Strict):
    id: NodeId
    note: str | None = None  # a line for people reading the journey


class WaitNode(_Node):
    type: Literal["wait"]
    anchor: Anchor
    days: int = Field(ge=-60, le=365)
    next: NodeId

    @model_validator(mode="after")
    def _duration_forward(self) -> WaitNode:
        if self.anchor in (Anchor.ENTERED, Anchor.ENROLLED) and self.days < 0:
            raise ValueError(f"days: a wait from '{self.anchor}' cannot go back in time")
        return self


class WaitEventNode(_Node):
    type: Literal["wait_event"]
    events: tuple[JourneyEvent, ...] = Field(min_length=1)
    timeout_days: int = Field(ge=1, le=365)
    on_event: NodeId
    on_timeout: NodeId


class BranchCase(_Strict):
    guard: Key
    args: dict[str, Any] = Field(default_factory=dict)
    next: NodeId


class BranchNode(_Node):
    type: Literal["branch"]
    cases: tuple[BranchCase, ...] = Field(min_length=1)
    default: NodeId


class Arm(_Strict):
    name: Key
    weight: int = Field(ge=0, le=10_000)
    next: NodeId


def _check_arms(arms: tuple[Arm, ...] | tuple[ExperimentArm, ...]) -> None:
    """A split's or an experiment's arms: distinct names, some weight to draw from."""
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError("arms: two arms have the same name")
    if sum(a.weight for a in arms) <= 0:
        raise ValueError("arms: the weights add up to zero")


class SplitNode(_Node):
    type: Literal["split"]
    experiment: Key
    arms: tuple[Arm, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _arms(self) -> SplitNode:
        _check_arms(self.arms)
        return self


class SendNode(_Node):
    type: Literal["send"]
    template: Key
    channels: tuple[ChannelName, ...] = Field(min_length=1)
    # "first": the first channel the debtor can be reached on, in `channels` then
    # `fallback` order; "all": every reachable channel of `channels` (fallback if none).
    mode: Literal["first", "all"] = "first"
    fallback: tuple[ChannelName, ...] = ()
    # A reminder in the sense of Book XIX (the first one is free and starts the 14 days).
    reminder: bool = True
    next: NodeId

    @model_validator(mode="after")
    def _distinct(self) -> SendNode:
        every = [*self.channels, *self.fallback]
        if len(set(every)) != len(every):
            raise ValueError("channels and fallback list a channel twice")
        return self


class TaskNode(_Node):
    type: Literal["task"]
    kind: TaskKind
    script: Key | None = None
    next: NodeId


class FeeNode(_Node):
    type: Literal["fee"]
    kind: FeeKind
    next: NodeId


class ExitNode(_Node):
    type: Literal["exit"]
    reason: ExitReason


Node = Annotated[
    WaitNode | WaitEventNode | BranchNode | SplitNode | SendNode | TaskNode | FeeNode | ExitNode,
    Field(discriminator="type"),
]


def _targets(node: Any) -> list[tuple[str, str]]:
    """(field, target node id) of every edge leaving `node`."""
    if isinstance(node, WaitEventNode):
        return [("on_event", node.on_event), ("on_timeout", node.on_timeout)]
    if isinstance(node, BranchNode):
        out = [(f"cases.{i}.next", c.next) for i, c in enumerate(node.cases)]
        return [*out, ("default", node.default)]
    if isinstance(node, SplitNode):
        return [(f"arms.{i}.next", a.next) for i, a in enumerate(node.arms)]
    if isinstance(node, ExitNode):
        return []
    return [("next", node.next)]


def _instant_loop(by_id: dict[str, Any]) -> list[str]:
    """A cycle made only of nodes that take no time (it would spin forever), or [].

    Only a wait for an event or a plain duration of a day or more takes time for sure: a
    wait until a date (due, promise, enrolment) is instant once that date has passed.
    """
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def takes_time(node: Any) -> bool:
        if isinstance(node, WaitEventNode):
            return True
        return isinstance(node, WaitNode) and node.anchor is Anchor.ENTERED and node.days >= 1

    def visit(node_id: str, path: list[str]) -> list[str]:
        state[node_id] = 1
        node = by_id[node_id]
        if not takes_time(node):
            for _, target in _targets(node):
                if state.get(target) == 1:
                    return [*path[path.index(target) :], target] if target in path else [target]
                if target not in state:
                    found = visit(target, [*path, target])
                    if found:
                        return found
        state[node_id] = 2
        return []

    for node_id in by_id:
        if node_id not in state:
            found = visit(node_id, [node_id])
            if found:
                return found
    return []


class Journey(_Strict):
    """One version of a journey."""

    key: Key
    version: int = Field(ge=1)
    persona: Key | None = None  # None: the universal / default journey
    description: str
    start: NodeId
    nodes: tuple[Node, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph(self) -> Journey:
        ids = [n.id for n in self.nodes]
        doubles = sorted({i for i in ids if ids.count(i) > 1})
        if doubles:
            raise ValueError(f"nodes: id(s) used twice: {', '.join(doubles)}")
        known = set(ids)
        problems = [] if self.start in known else [f"start: no node {self.start!r}"]
        for node in self.nodes:
            for where, target in _targets(node):
                if target not in known:
                    problems.append(f"nodes.{node.id}.{where}: no node {target!r}")
        if problems:  # the checks below walk the graph: its edges must exist
            raise ValueError("; ".join(problems))
        reachable, todo = set(), [self.start]
        by_id = {n.id: n for n in self.nodes}
        while todo:
            current = todo.pop()
            if current in reachable:
                continue
            reachable.add(current)
            todo.extend(t for _, t in _targets(by_id[current]))
        unreachable = [i for i in ids if i not in reachable]
        if unreachable:
            problems.append(f"nodes: unreachable from start: {', '.join(unreachable)}")
        if not any(isinstance(n, ExitNode) for n in self.nodes):
            problems.append("nodes: a journey needs at least one exit node")
        loop = _instant_loop(by_id)
        if loop:
            problems.append(f"nodes: {' -> '.join(loop)} loops without a wait or wait_event node")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def node(self, node_id: str) -> Any:
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def name(self) -> str:
        return f"{self.key}@{self.version}"

    def edges(self) -> list[tuple[str, str, str]]:
        """(from, label, to) for every edge, for diagrams."""
        return [(n.id, where, target) for n in self.nodes for where, target in _targets(n)]

    def stage_entries(self) -> tuple[str, ...]:
        """Where a case continues on this journey after `r` Book XIX reminders: entry `r`
        is the start for 0, else the node after the earliest `r`-th reminder.

        "Earliest" is by fewest reminders, then breadth-first from the start in node
        order, so the answer is deterministic. Used to move a reclassified case to the
        equivalent step of its new persona's journey: it neither gets its first reminder
        again nor skips one.
        """
        by_id = {n.id: n for n in self.nodes}
        depth = {self.start: 0}  # fewest reminders sent before reaching a node
        entries = [self.start]
        frontier = [self.start]
        while frontier:  # one breadth-first pass per reminder count
            queue, after = list(frontier), []
            while queue:
                node = by_id[queue.pop(0)]
                reminder = isinstance(node, SendNode) and node.reminder
                for _, target in _targets(node):
                    if reminder:
                        after.append(target)
                    elif target not in depth:
                        depth[target] = depth[node.id]
                        queue.append(target)
            frontier = list(dict.fromkeys(t for t in after if t not in depth))
            for target in frontier:
                depth[target] = len(entries)
            if frontier:
                entries.append(frontier[0])
        return tuple(entries)


class ExperimentArm(_Strict):
    name: Key
    weight: int = Field(ge=0, le=10_000)
    # "persona": the debtor's persona journey; a journey key; or None: a holdout arm,
    # whose cases are enrolled, recorded and never contacted by a journey.
    journey: Key | None


class Experiment(_Strict):
    """A champion/challenger test at enrolment: each new case draws an arm once
    (sticky: a hash of case and experiment), recorded on its enrolment with its persona
    (the stratum the results are read by)."""

    key: Key
    description: str
    active: bool = True
    arms: tuple[ExperimentArm, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _arms(self) -> Experiment:
        _check_arms(self.arms)
        return self
