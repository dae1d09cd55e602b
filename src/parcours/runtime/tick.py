"""One tick of a creditor's journeys: enrol, read facts, plan, gate, write — then dispatch.

`run_tick` is one transaction: new open cases enter their debtor's persona journey (the
universal one for objectors and the unclassified), the due cases' facts are read in bulk,
the pure planner decides, the policy gate judges every message (send now, delay, skip or
agent review) and fees, and decisions land in the outbox under their deterministic
attempt id, each with the gate's verdict and its reason (kept: the audit record of the
decision); moves between journeys go to the append-only policy log.

Sending happens after commit, in `runtime.dispatch`: the gate checks each message again
against live facts, and the provider gets the attempt id as its idempotency key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import psycopg
import sqlalchemy.exc
from sqlalchemy import Connection

from parcours.domain.arrangements import ArrangementRules
from parcours.domain.journey import (
    ChannelName,
    ExitReason,
    Experiment,
    ExperimentArm,
    FeeKind,
    Journey,
    JourneyEvent,
)
from parcours.journeys.facts import (
    CHANNEL_BITS,
    EVENT_INDEX,
    CaseFacts,
    Delivery,
    PlanState,
    PromiseCode,
)
from parcours.journeys.library import Library
from parcours.journeys.planner import (
    NEVER,
    Decisions,
    Enrolments,
    Kind,
    Program,
    compile_journeys,
    plan,
)
from parcours.journeys.policy import (
    DEFAULT_POLICY,
    WRITTEN_CHANNELS,
    ContactFacts,
    GateDecision,
    PolicyConfig,
    check_fee,
    check_send,
)
from parcours.personas.features import is_mobile
from parcours.runtime.arrangements import DEFAULT_RULES, settle_arrangements
from parcours.runtime.batch import Stopwatch, beside, cycle_collection_paused
from parcours.store.bulk import Key
from parcours.store.db import checkpoint_in_background
from parcours.store.journeys import DueBatch, JourneyStore, OutboxEntry

__all__ = ["CONFLICTS", "GateFacts", "TickResult", "attempt_id", "run_tick"]

EPOCH: Final = dt.date(1970, 1, 1)
# What a tick raises when another process recorded the same decisions first (the bulk
# writers use the drivers directly, so their own exceptions can surface).
CONFLICTS: Final = (
    sqlalchemy.exc.IntegrityError,
    sqlite3.IntegrityError,
    psycopg.errors.IntegrityError,
)
_EVENTS: Final = {
    "payment.booked": JourneyEvent.PAYMENT,
    "promise.made": JourneyEvent.PROMISE_MADE,
    "promise.broken": JourneyEvent.PROMISE_BROKEN,
    "message.replied": JourneyEvent.REPLIED,
    "message.clicked": JourneyEvent.CLICKED,
    "message.bounced": JourneyEvent.BOUNCED,
}
# A journey ending for one of these leaves no call to make: the agent tasks it planned
# before are dropped (a journey that simply ran out of steps keeps its last ones).
_NO_MORE_CONTACT: Final = frozenset(
    {ExitReason.PAID, ExitReason.DISPUTED, ExitReason.OBJECTION, ExitReason.LEGAL_HOLD}
)
_PROMISES: Final = {
    "pending": PromiseCode.PENDING,
    "kept": PromiseCode.KEPT,
    "broken": PromiseCode.BROKEN,
    "cancelled": PromiseCode.NONE,
}
_PLANS: Final = {"active": PlanState.ACTIVE, "missed": PlanState.MISSED, "broken": PlanState.BROKEN}
# What happened to the last message, from the carriers' reports (later reports win).
_DELIVERIES: Final = {
    "message.delivered": Delivery.DELIVERED,
    "message.bounced": Delivery.BOUNCED,
    "message.opened": Delivery.OPENED,
    "message.clicked": Delivery.CLICKED,
}


@dataclass
class TickResult:
    enrolled: int = 0
    due: int = 0
    tasks_dropped: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    outbox: int = 0
    reclassified: int = 0
    arrangements: dict[str, int] = field(default_factory=dict)
    # Seconds spent in each part of the tick (settle, enrol, due, read_facts, plan, gate,
    # write): for benchmarks and logs, not part of `as_dict` (not deterministic).
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "due": self.due,
            "decisions": dict(self.decisions),
            "verdicts": dict(self.verdicts),
            "exits": dict(self.exits),
            "outbox_rows": self.outbox,
            "reclassified": self.reclassified,
            "arrangements": self.arrangements,
        }


def _journey_for(library: Library, persona: str | None, objected: bool) -> Journey:
    if not objected and persona is not None:
        made = library.for_persona(persona)
        if made is not None:
            return made
    universal = library.for_persona(None)
    if universal is None:
        raise LookupError("the journey library has no universal journey (persona: null)")
    return universal


def draw_arm(experiment: Experiment, case_text: str) -> ExperimentArm:
    """Sticky: the same case always draws the same arm of the same experiment."""
    digest = hashlib.blake2b(f"{experiment.key}:{case_text}".encode(), digest_size=8).digest()
    total = sum(a.weight for a in experiment.arms)
    point = int.from_bytes(digest, "big") % total
    for arm in experiment.arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    raise AssertionError("unreachable: the weights add up to total")


def attempt_id(case_text: str, journey: str, node: str, step: int, channel: str | None) -> str:
    """Deterministic: the same decision always has the same id (the idempotency key).

    32 hex digits: the first 12 of the case id, then 80 bits of a hash of the decision.
    The case ids are UUIDv7, which lead with their creation time: a tick's attempts,
    written in the order of their cases' debtors (created with them), go into the unique
    index in order rather than at random (224,000 attempts into 1.25 million on SQLite:
    2.2 -> 1.3 s). Two attempts share an id only if their cases share those 48 bits (the
    same millisecond) and the 80 bits of their hashes; the unique index refuses it then.
    """
    raw = f"{case_text}|{journey}|{node}|{step}|{channel or ''}"
    digest = hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()
    if len(case_text) == 36 and case_text[8] == "-":  # a UUID's text, as stored
        return f"{case_text[:8]}{case_text[9:13]}{digest}"
    return hashlib.blake2b(case_text.encode(), digest_size=6).hexdigest() + digest


def run_tick(
    connection: Connection,
    creditor_id: Any,
    library: Library,
    now: dt.datetime,
    *,
    zone: str = "Europe/Brussels",
    policy: PolicyConfig = DEFAULT_POLICY,
    rules: ArrangementRules = DEFAULT_RULES,
) -> TickResult:
    """Plan and gate one tick for a creditor, inside the caller's transaction.

    Promises and plans are settled first: what they became (kept, broken, missed) is an
    event of this tick that wakes its case. On SQLite the commit leaves the copy of its
    pages from the write-ahead log to the database file to a background thread."""
    checkpoint_in_background(connection)
    with cycle_collection_paused():
        return _tick(connection, creditor_id, library, now, zone, policy, rules)


def _tick(
    connection: Connection,
    creditor_id: Any,
    library: Library,
    now: dt.datetime,
    zone: str,
    policy: PolicyConfig,
    rules: ArrangementRules,
) -> TickResult:
    result = TickResult()
    clock = Stopwatch(result.timings)
    result.arrangements = settle_arrangements(connection, creditor_id, now, rules)
    clock.lap("settle")
    store = JourneyStore(connection, creditor_id)
    since = store.last_tick()

    chosen: dict[tuple[str | None, bool], Journey] = {}
    experiment = library.active_experiment()
    new, held_out = [], []
    for case, debtor, persona, objected in store.unenrolled_cases():
        arms: dict[str, str] = {}
        journey_key: str | None = "persona"
        if experiment is not None:
            arm = draw_arm(experiment, store.text(case))
            arms = {experiment.key: arm.name}
            journey_key = arm.journey
        if journey_key is None:  # a holdout arm: recorded, never contacted
            held_out.append((case, debtor, persona, arms))
            continue
        if journey_key == "persona":
            journey = chosen.get((persona, objected))
            if journey is None:
                journey = chosen[(persona, objected)] = _journey_for(library, persona, objected)
        else:
            journey = library.latest(journey_key)
        who = None if objected else persona
        new.append((case, debtor, journey.key, journey.version, who, journey.start, arms))
    result.enrolled = store.enrol(new, now) + store.enrol_holdout(held_out, now)
    clock.lap("enrol")

    due = store.due(now, since)
    result.due = len(due)
    clock.lap("due")
    if len(due):
        _plan_and_gate(store, library, due, now, zone, policy, result, clock)
    store.record_tick(now)
    clock.lap("write")
    return result


_FEE_FIELDS: Final = {
    FeeKind.REMINDER_FEE: "fees_charged_minor",
    FeeKind.FLAT_INDEMNITY: "indemnity_charged_minor",
    FeeKind.LATE_INTEREST: "interest_charged_minor",
}
_REACHABLE: Final = [
    frozenset(c for c, bit in CHANNEL_BITS.items() if mask & bit)
    for mask in range(2 ** len(CHANNEL_BITS))
]


def _spread(attempt: str, span: dt.timedelta) -> dt.timedelta:
    """A stable offset in [0, span) drawn from the attempt id's hash (whole minutes; its
    head is the case's creation time, shared by the cases of one import)."""
    minutes = int(span.total_seconds()) // 60
    return dt.timedelta(minutes=int(attempt[-8:], 16) % minutes) if minutes else dt.timedelta(0)


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@dataclass
class GateFacts:
    """The gate's facts of a tick's cases, as columns beside the planner's.

    `ContactFacts` (what `check_send` and `check_fee` judge) is built only for the cases
    that need one: a message to a person whose recent messages leave the contact cap
    open is judged once per kind of case (channel, paid, vulnerable, reachable, time
    zone, country) — `check_send` reads nothing else — and the verdict shared. What this
    tick decides (a reminder queued, a fee booked) is noted here at once, so later nodes
    of the tick see it. The case facts are read when the gate facts are made: they do
    not change after.
    """

    facts: CaseFacts
    zone: list[str | None]
    country: list[str | None]
    reminders: dict[int, list[tuple[int, str]]]  # row → (sent at, channel), oldest first
    charged: dict[int, Counter[str]]  # row → fee kind → minor units
    calls: dict[int, list[int]] = field(default_factory=dict)  # row → call attempts' times
    conversation: dict[int, int] = field(default_factory=dict)  # row → last conversation
    # debtor → (channel, sent at) of the written window's messages to that person
    recent: dict[Key, list[tuple[str, dt.datetime]]] = field(default_factory=dict)
    _memo: dict[tuple[Any, ...], GateDecision] = field(default_factory=dict)
    # Per row, as Python values read once (numpy scalars cost more per read): whether
    # the case has a fact the shared verdict does not cover, and the verdict's key.
    _own: list[bool] = field(init=False, repr=False)
    _kind: list[tuple[bool, bool, str | None, str | None]] = field(init=False, repr=False)
    _reach: list[int] = field(init=False, repr=False)
    _seconds: dict[dt.datetime, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        f = self.facts
        self._own = (
            f.disputed
            | f.legal_hold
            | f.contact_objection
            | (f.plan == PlanState.ACTIVE)
            | f.question_open
            | f.pre_due_declined
        ).tolist()
        self._kind = list(
            zip(
                (f.balance_minor <= 0).tolist(),
                f.vulnerable.tolist(),
                self.zone,
                self.country,
                strict=True,
            )
        )
        self._reach = f.reachable.tolist()

    def contact(self, row: int, recent: tuple[tuple[str, dt.datetime], ...] = ()) -> ContactFacts:
        facts = self.facts
        reminders = self.reminders.get(row, ())
        charged = self.charged.get(row) or Counter()
        first = reminders[0] if reminders else None
        return ContactFacts(
            balance_minor=int(facts.balance_minor[row]),
            disputed=bool(facts.disputed[row]),
            legal_hold=bool(facts.legal_hold[row]),
            contact_objection=bool(facts.contact_objection[row]),
            plan_running=bool(facts.plan[row] == PlanState.ACTIVE),
            question_open=bool(facts.question_open[row]),
            pre_due_declined=bool(facts.pre_due_declined[row]),
            due_on=EPOCH + dt.timedelta(days=int(facts.due_day[row])),
            vulnerable=bool(facts.vulnerable[row]),
            timezone=self.zone[row],
            country=self.country[row],
            reachable=_REACHABLE[int(facts.reachable[row])],
            recent_contacts=recent,
            recent_calls=tuple(_utc(t) for t in self.calls.get(row, ())),
            last_conversation_at=_utc(self.conversation[row]) if row in self.conversation else None,
            reminders_sent=len(reminders),
            first_reminder=(_utc(first[0]), first[1] != "letter") if first else None,
            fees_charged_minor=charged[FeeKind.REMINDER_FEE],
            indemnity_charged_minor=charged[FeeKind.FLAT_INDEMNITY],
            interest_charged_minor=charged[FeeKind.LATE_INTEREST],
        )

    def check_send(
        self,
        row: int,
        channel: ChannelName,
        recent: list[tuple[str, dt.datetime]],
        now: dt.datetime,
        policy: PolicyConfig,
    ) -> GateDecision:
        # The shared verdict covers a case with none of these (check_send reads them),
        # and whose person's recent written messages leave the cap open: check_send
        # reads those only for the cap, and only on written channels.
        if (
            self._own[row]
            or (channel == "phone" and (row in self.calls or row in self.conversation))
            or (recent and channel in WRITTEN_CHANNELS and _capped(recent, now, policy))
        ):
            return check_send(self.contact(row, tuple(recent)), channel, now, policy)
        paid, vulnerable, zone, country = self._kind[row]
        reachable = bool(self._reach[row] & CHANNEL_BITS[channel])
        key = (channel, paid, vulnerable, reachable, zone, country)
        decision = self._memo.get(key)
        if decision is None:
            typical = ContactFacts(
                balance_minor=0 if paid else 1,
                vulnerable=vulnerable,
                timezone=zone,
                country=country,
                reachable=frozenset({channel}) if reachable else frozenset(),
            )
            decision = self._memo[key] = check_send(typical, channel, now, policy)
        return decision

    def note_reminder(self, row: int, at: dt.datetime, channel: str) -> None:
        seconds = self._seconds.get(at)
        if seconds is None:  # a tick's reminders share a few instants
            seconds = self._seconds[at] = int(at.timestamp())
        self.reminders.setdefault(row, []).append((seconds, channel))

    def note_fee(self, row: int, kind: FeeKind, amount_minor: int) -> None:
        self.charged.setdefault(row, Counter())[kind] += amount_minor


def _capped(recent: list[tuple[str, dt.datetime]], now: dt.datetime, policy: PolicyConfig) -> bool:
    """Whether these messages fill the person's written cap at `now` (as check_send
    counts them: the cap's `max_written`-th newest written message still counts)."""
    limit = policy.max_written
    if len(recent) < limit:
        return False
    written = [when for channel, when in recent if channel in WRITTEN_CHANNELS]
    if len(written) < limit:
        return False
    written.sort(reverse=True)
    return written[limit - 1] + policy.written_window > now


def _read_facts(
    store: JourneyStore,
    cases: list[Key],
    debtors: list[Key],
    texts: list[str],
    now: dt.datetime,
    policy: PolicyConfig = DEFAULT_POLICY,
    *,
    staged: bool = False,
) -> GateFacts:
    """The planner's columns and the gate's facts of `cases` (each once; `debtors[i]`
    is the debtor of `cases[i]`), read in bulk, with what each debtor was sent within
    the policy's written window (`GateFacts.recent`). `staged`: the due cases of the
    store's last `due` (see `JourneyStore.facts`).

    The store returns each kind of fact as rows led by the case's position in `cases`,
    so most columns are filled by numpy at once."""
    raw = store.facts(cases, debtors, now - policy.written_window, staged=staged)
    n = len(cases)
    facts = CaseFacts.empty(texts)
    today = (now.date() - EPOCH).days
    facts.due_day[:] = today
    balance = raw["balance"]
    if balance:
        rows = np.array([r[0] for r in balance], dtype=np.int64)
        facts.balance_minor[rows] = [int(r[1]) for r in balance]  # PostgreSQL: numeric
        facts.due_day[rows] = [today if r[2] is None else int(r[2]) for r in balance]
    zone: list[str | None] = [None] * n
    country: list[str | None] = [None] * n
    debtor = raw["debtor"]
    if debtor:
        rows = np.array([r[0] for r in debtor], dtype=np.int64)
        sms_bit = CHANNEL_BITS["sms"]
        # Reachable channels but SMS come as bits; SMS needs a mobile number (phone bit).
        facts.reachable[rows] = [
            bits | sms_bit if phone and is_mobile(phone) else bits for _, bits, phone, *_ in debtor
        ]
        facts.vulnerable[rows] = [bool(r[3]) for r in debtor]
        facts.preferred[rows] = [CHANNEL_BITS.get(r[7], 0) if r[7] else 0 for r in debtor]
        facts.pre_due_declined[rows] = [r[8] is not None and not r[8] for r in debtor]
        facts.pre_due_asked[rows] = [bool(r[8]) for r in debtor]
        people = facts.persona
        for i, _, _, _, tz, land, persona, *_ in debtor:
            people[i], zone[i], country[i] = persona, tz, land
    for i, state, promised in raw["promise"]:
        facts.promise[i] = _PROMISES[state]
        if state == "pending" and promised is not None:
            facts.promise_day[i] = int(promised)
    for i, state in raw["plan"]:
        facts.plan[i] = _PLANS.get(state, PlanState.NONE)
    reminders: dict[int, list[tuple[int, str]]] = {}
    charged: dict[int, Counter[str]] = {}
    delivery_at = np.full(n, -1, dtype=np.int64)  # when the last delivery fact happened
    calls: dict[int, list[int]] = {}
    conversation: dict[int, int] = {}
    sent_at: dict[int, int] = {}  # row → latest send (or 0 when none had a time)
    # A debtor's messages come once per case of theirs in `cases`: their first case's
    # rows tell what the debtor was sent.
    lead = dict(zip(reversed(debtors), range(n - 1, -1, -1), strict=True))
    once = len(lead) == n  # one case per debtor: every row leads
    leads = set(lead.values())
    recent: dict[Key, list[tuple[str, dt.datetime]]] = {}
    instants: dict[int, dt.datetime] = {}
    for i, own, channel, when, reminder, kind, amount, fee, written in raw["sent"]:
        if kind == "send":
            if written and (once or i in leads):
                at = instants.get(when)
                if at is None:
                    at = instants[when] = dt.datetime.fromtimestamp(when, dt.UTC)
                sent = recent.get(debtors[i])
                if sent is None:
                    recent[debtors[i]] = [(channel, at)]
                else:
                    sent.append((channel, at))
            if not own:
                continue
            if (when or 0) > sent_at.get(i, -1):
                sent_at[i] = when or 0
            if reminder and when is not None:
                got = reminders.get(i)
                if got is None:
                    reminders[i] = [(int(when), channel)]
                else:
                    got.append((int(when), channel))
        elif not own:
            continue
        elif kind == "fee":
            charged.setdefault(i, Counter())[fee] += amount or 0
        elif kind == "task" and channel == "phone" and when is not None:
            calls.setdefault(i, []).append(int(when))
    for got in reminders.values():  # messages sent at one instant, in a fixed order
        got.sort()
    if sent_at:
        rows = np.fromiter(sent_at, dtype=np.int64, count=len(sent_at))
        facts.last_delivery[rows] = Delivery.SENT
        delivery_at[rows] = np.fromiter(sent_at.values(), dtype=np.int64, count=len(sent_at))
    if reminders:
        rows = np.fromiter(reminders, dtype=np.int64, count=len(reminders))
        facts.reminders_sent[rows] = [len(r) for r in reminders.values()]
    events: dict[int, list[tuple[str, int | None]]] = {}
    for i, event_type, when in raw["events"]:
        events.setdefault(i, []).append((event_type, when))
    for i, happened in events.items():
        asked = answered = 0
        # By time, then by type: the same order whatever order the database returned.
        for event_type, when in sorted(happened, key=lambda e: (e[1] or 0, e[0])):
            if when is None:
                continue
            if event_type in _EVENTS:
                facts.event_at[i, EVENT_INDEX[_EVENTS[event_type]]] = int(when)
            if event_type in _DELIVERIES and when >= delivery_at[i]:
                facts.last_delivery[i] = _DELIVERIES[event_type]
                delivery_at[i] = when
            if event_type == "call.conversation":
                conversation[i] = int(when)
            elif event_type == "dispute.opened":  # until a later close: collection pauses
                facts.disputed[i] = True
            elif event_type == "dispute.closed":
                facts.disputed[i] = False
            elif event_type == "legal_hold.set":  # until lifted: no collection at all
                facts.legal_hold[i] = True
            elif event_type == "legal_hold.lifted":
                facts.legal_hold[i] = False
            elif event_type == "contact_objection":  # the debtor asked not to be contacted
                facts.contact_objection[i] = True
            elif event_type == "vulnerability.flagged":  # an agent reviews each contact
                facts.vulnerable[i] = True
            elif event_type == "question.asked":
                asked = int(when)
            elif event_type == "question.answered":
                answered = int(when)
        # A chat question pauses collection while its latest asking is newer than its
        # latest answer (the same second counts as answered: an answer follows a question).
        if asked:
            facts.question_open[i] = asked > answered
    return GateFacts(facts, zone, country, reminders, charged, calls, conversation, recent)


def _plan_and_gate(
    store: JourneyStore,
    library: Library,
    due: DueBatch,
    now: dt.datetime,
    zone: str,
    policy: PolicyConfig,
    result: TickResult,
    clock: Stopwatch,
) -> None:
    journeys = list(library)
    program = compile_journeys(journeys)
    index = {(j.key, j.version): k for k, j in enumerate(journeys)}
    journey_of = np.array([index[j] for j in due.journey], dtype=np.int64)
    node_number = {
        (int(j), node_id): g
        for g, (j, node_id) in enumerate(
            zip(program.node_journey.tolist(), program.node_id, strict=True)
        )
    }
    node_of = np.array(
        [node_number[key] for key in zip(journey_of.tolist(), due.node_id, strict=True)],
        dtype=np.int64,
    )
    t = int(now.timestamp())
    state = Enrolments(
        journey=journey_of,
        node=node_of,
        entered_at=due.entered_at,
        enrolled_at=due.enrolled_at,
        wake_at=np.where(due.wake_at < 0, t, due.wake_at),
        step=due.step,
        done=np.zeros(len(due), dtype=bool),
    )
    gate = _read_facts(store, due.case, due.debtor, due.case_text, now, policy, staged=True)
    clock.lap("read_facts")
    moved = _reclassify(program, library, due, state, gate, t)
    result.reclassified = len(moved)
    decisions, after = plan(program, state, gate.facts, now, zone)
    clock.lap("plan")
    arm_kind, exit_kind = Kind.ARM, Kind.EXIT
    arms: dict[int, dict[str, str]] = {}
    exits: dict[int, str] = {}
    for row, kind, detail in zip(decisions.row, decisions.kind, decisions.detail, strict=True):
        if kind is arm_kind:
            arms.setdefault(row, json.loads(due.arms[row]))[detail[0]] = detail[1]
        elif kind is exit_kind:
            exits[row] = str(detail)
            result.exits[str(detail)] += 1
    staged = _stage_enrolments(store, program, due, state, after, arms, exits, moved)
    clock.lap("enrolments")
    # The database writes the enrolments while the gate judges the decisions.
    with beside(store.connection, store.apply_enrolments if staged else None):
        outbox = _gate(program, due, journeys, journey_of, gate, decisions, now, policy, result)
        rows = store.outbox_rows(outbox, now)
        clock.lap("gate")
    clock.lap("enrolments_wait")
    store.insert_outbox(rows)
    result.outbox = len(rows)
    clock.lap("outbox")
    store.log_policy(
        [
            (
                due.case[row],
                attempt_id(due.case_text[row], "reclassified", reason, int(due.step[row]), None),
                "move", "move", None, reason,
            )
            for row, reason in moved.items()
        ],
        now,
    )  # fmt: skip
    clock.lap("policy_log")
    ended = [
        (due.case[row], due.debtor[row], reason)
        for row, reason in exits.items()
        if reason in _NO_MORE_CONTACT
    ]
    result.tasks_dropped = store.drop_tasks(ended, now)


def _gate(
    program: Program,
    due: DueBatch,
    journeys: list[Journey],
    journey_of: npt.NDArray[np.int64],
    gate: GateFacts,
    decisions: Decisions,
    now: dt.datetime,
    policy: PolicyConfig,
    result: TickResult,
) -> list[OutboxEntry]:
    """The outbox entries of the planner's messages, tasks and fees, each judged by the
    gate (arms and exits are the enrolments'). No database work: it runs beside the
    enrolments' UPDATE."""
    recent = gate.recent
    planned: dict[Key, list[tuple[str, dt.datetime]]] = {}
    outbox: list[OutboxEntry] = []
    journey_names = [f"{j.key}@{j.version}" for j in journeys]
    statuses = {"send": "queued", "delay": "delayed", "skip": "skipped", "review": "review"}
    no_contacts: list[tuple[str, dt.datetime]] = []
    for kind, n in Counter(decisions.kind).items():
        result.decisions[kind.name.lower()] += n
    # The loop below runs once per decision: what it reads is bound to locals first.
    send_kind, task_kind_, arm_kind, exit_kind = Kind.SEND, Kind.TASK, Kind.ARM, Kind.EXIT
    journey_at = [journey_names[j] for j in journey_of.tolist()]
    cases, debtors, texts = due.case, due.debtor, due.case_text
    node_ids, node_models = program.node_id, program.nodes
    verdicts, check, spread = result.verdicts, gate.check_send, policy.spread_after_quiet_hours
    add = outbox.append
    for row, kind, node, step, detail in zip(
        decisions.row, decisions.kind, decisions.node, decisions.step, decisions.detail, strict=True
    ):
        if kind is arm_kind or kind is exit_kind:
            continue
        case, debtor, text = cases[row], debtors[row], texts[row]
        journey, node_id = journey_at[row], node_ids[node]
        # What the person already got and what this tick already plans for them. What
        # they got is never changed in place (`contacts` is rebound when it grows); what
        # is planned is, below: copied.
        got, more = recent.get(debtor), planned.get(debtor)
        contacts = (got + more if more else got) if got else (more[:] if more else no_contacts)
        if kind is send_kind:
            node_model = node_models[node]
            template, reminder = node_model.template, node_model.reminder
            reminded = False
            for channel in detail or (None,):
                aid = attempt_id(text, journey, node_id, step, channel)
                if channel is None:
                    verdict, not_before, reason = "skip", now, "no reachable channel"
                else:
                    decision = check(row, channel, contacts, now, policy)
                    verdict, reason = decision.verdict, decision.reason
                    not_before = decision.not_before or now
                    if verdict == "delay" and reason.startswith("quiet hours"):
                        not_before += _spread(aid, spread)
                    if verdict == "send" or verdict == "delay":
                        planned.setdefault(debtor, []).append((channel, not_before))
                        contacts = [*contacts, (channel, not_before)]
                        if reminder and not reminded:
                            # A later fee node of this tick must know this reminder went.
                            reminded = True
                            gate.note_reminder(row, not_before, channel)
                verdicts[verdict] += 1
                add(
                    OutboxEntry(
                        aid, case, debtor, journey, node_id, step, "send", channel, template,
                        reminder, None, statuses[verdict], not_before, reason, None, verdict,
                    )
                )  # fmt: skip
            continue
        aid = attempt_id(text, journey, node_id, step, None)
        if kind is task_kind_:
            task_kind, script = detail
            status, not_before, reason = "queued", now, f"agent task: {task_kind}"
            channel, verdict, why = None, "queued", None
            if task_kind == "call":  # calls obey the gate too: caps, conversations, holds
                channel = "phone"
                decision = check(row, "phone", contacts, now, policy)
                verdict, why = decision.verdict, decision.reason
                if verdict != "send":
                    status, reason = statuses[verdict], why
                    not_before = decision.not_before or now
            add(
                OutboxEntry(
                    aid, case, debtor, journey, node_id, step, "task", channel, script,
                    False, None, status, not_before, reason, None, verdict, why,
                )
            )  # fmt: skip
            continue
        fee_kind = FeeKind(detail)
        # Postage is added to a reminder fee when the reminder it follows went by post.
        reminders = gate.reminders.get(row)
        by_post = reminders is not None and reminders[-1][1] == "letter"
        fee = check_fee(gate.contact(row, tuple(contacts)), fee_kind, now, policy, by_post=by_post)
        booked = fee.amount_minor > 0  # a fee takes effect when decided
        verdicts["fee" if booked else "fee_refused"] += 1
        if booked:  # what the law still allows shrinks at once, within this tick too
            gate.note_fee(row, fee_kind, fee.amount_minor)
        add(
            OutboxEntry(
                aid, case, debtor, journey, node_id, step, "fee", None, str(detail),
                False, fee.amount_minor, "sent" if booked else "skipped", now, fee.reason,
                now if booked else None, "fee" if booked else "skip",
            )
        )  # fmt: skip
    return outbox


def _reclassify(
    program: Program,
    library: Library,
    due: DueBatch,
    state: Enrolments,
    gate: GateFacts,
    now: int,
) -> dict[int, str]:
    """Move the due cases whose debtor changed persona to the new persona's journey.

    Only cases that follow their persona move (an experiment arm that pinned another
    journey keeps it). The case continues at the equivalent step — after as many Book XIX
    reminders as it already had (`Journey.stage_entries`) — with its clock: the node is
    entered when its last reminder went (when it was enrolled, if none), so a wait counts
    from there; caps need nothing, they are read from what was sent. Returns row → reason.
    """
    moved: dict[int, str] = {}
    current = gate.facts.persona
    for row in range(len(due)):
        old, new = due.persona[row], current[row]
        if old == new:
            continue
        key, _ = due.journey[row]
        if key != _journey_for(library, old, False).key:
            due.persona[row] = new  # pinned by an experiment arm: recorded, not moved
            moved[row] = f"persona {old} -> {new}: stays on {key} (experiment arm)"
            continue
        target = _journey_for(library, new, False)
        due.persona[row] = new
        if target.key == key:
            moved[row] = f"persona {old} -> {new}: same journey {key}"
            continue
        reminders = gate.reminders.get(row, [])
        entries = target.stage_entries()
        node = entries[min(len(reminders), len(entries) - 1)]
        j = program.journey_index(target.key, target.version)
        state.journey[row] = j
        state.node[row] = program.node_index(j, node)
        state.entered_at[row] = reminders[-1][0] if reminders else due.enrolled_at[row]
        state.wake_at[row] = now
        due.journey[row] = (target.key, target.version)
        moved[row] = (
            f"persona {old} -> {new}: {key}@{due.journey[row][1]} -> {target.name} "
            f"at {node} after {len(reminders)} reminder(s)"
        )
    return moved


def _stage_enrolments(
    store: JourneyStore,
    program: Program,
    due: DueBatch,
    before: Enrolments,
    after: Enrolments,
    arms: dict[int, dict[str, str]],
    exits: dict[int, str],
    reclassified: dict[int, str],
) -> bool:
    """Stage where the cases that moved (or drew an arm, or changed persona) now stand
    (`JourneyStore.stage_enrolments`); False when none did."""
    moved = (
        (after.step != before.step)
        | after.done
        | (after.wake_at != before.wake_at)
        | (after.entered_at != before.entered_at)
    )
    moved[[*arms, *reclassified]] = True
    rows = np.flatnonzero(moved)
    if not len(rows):
        return False
    wake = np.where(after.done[rows] | (after.wake_at[rows] == NEVER), -1, after.wake_at[rows])
    node_ids = program.node_id
    updates = [
        (
            *due.journey[row], due.persona[row], node_ids[node], entered_at, wake_at, step,
            done, exits.get(row), json.dumps(arms[row]) if row in arms else due.arms[row],
            due.stored[row],
        )
        for row, node, entered_at, wake_at, step, done in zip(
            rows.tolist(), after.node[rows].tolist(), after.entered_at[rows].tolist(),
            wake.tolist(), after.step[rows].tolist(), after.done[rows].tolist(), strict=True,
        )
    ]  # fmt: skip
    store.stage_enrolments(updates)
    return True


def contact_facts(
    connection: Connection,
    creditor_id: Any,
    case_id: Any,
    debtor_id: Any,
    now: dt.datetime,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> ContactFacts:
    """The gate's facts for one case now (for `parcours policy explain`)."""
    store = JourneyStore(connection, creditor_id)
    case_key = case_id.bytes if store.sqlite else str(case_id)
    debtor_key = debtor_id.bytes if store.sqlite else str(debtor_id)
    gate = _read_facts(store, [case_key], [debtor_key], [str(case_id)], now, policy)
    return gate.contact(0, tuple(gate.recent.get(debtor_key, [])))
