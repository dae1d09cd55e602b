"""One tick of a creditor's journeys: enrol, read facts, plan, gate, write — then dispatch.

`run_tick` is one transaction: new open cases enter their debtor's persona journey (the
universal one for objectors and the unclassified), the due cases' facts are read in bulk,
the pure planner decides, the policy gate judges every message (send now, delay, skip or
agent review) and fees, and decisions land in the outbox under their deterministic
attempt id, with every gate verdict in the append-only policy log.

`dispatch` runs after commit: each queued message whose time has come is checked by the
gate again against live facts and handed to the provider with its attempt id as the
idempotency key; the file outbox (the embedded default) writes the message once, by
attempt id, so a crash between writing and committing never makes a second message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import psycopg
import sqlalchemy.exc
from sqlalchemy import Connection

from parcours.domain.journey import Experiment, ExperimentArm, FeeKind, Journey, JourneyEvent
from parcours.journeys.facts import (
    CHANNEL_BITS,
    EVENT_INDEX,
    CaseFacts,
    Delivery,
    PromiseCode,
)
from parcours.journeys.library import Library
from parcours.journeys.planner import NEVER, Enrolments, Kind, compile_journeys, plan
from parcours.journeys.policy import (
    DEFAULT_POLICY,
    ContactFacts,
    PolicyConfig,
    check_fee,
    check_send,
)
from parcours.personas.features import is_mobile
from parcours.store.bulk import Key
from parcours.store.journeys import DueCase, JourneyStore, OutboxEntry

__all__ = ["CONFLICTS", "TickResult", "dispatch", "run_tick"]

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
    "message.replied": JourneyEvent.REPLIED,
    "message.clicked": JourneyEvent.CLICKED,
}


@dataclass
class TickResult:
    enrolled: int = 0
    due: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    outbox: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "due": self.due,
            "decisions": dict(self.decisions),
            "verdicts": dict(self.verdicts),
            "exits": dict(self.exits),
            "outbox_rows": self.outbox,
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
    """Deterministic: the same decision always has the same id (the idempotency key)."""
    raw = f"{case_text}|{journey}|{node}|{step}|{channel or ''}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def run_tick(
    connection: Connection,
    creditor_id: Any,
    library: Library,
    now: dt.datetime,
    *,
    zone: str = "Europe/Brussels",
    policy: PolicyConfig = DEFAULT_POLICY,
) -> TickResult:
    """Plan and gate one tick for a creditor, inside the caller's transaction."""
    result = TickResult()
    store = JourneyStore(connection, creditor_id)
    since = store.last_tick()

    chosen: dict[tuple[str | None, bool], Journey] = {}
    experiment = library.active_experiment()
    new, held_out = [], []
    for case, persona, objected in store.unenrolled_cases():
        arms: dict[str, str] = {}
        journey_key: str | None = "persona"
        if experiment is not None:
            arm = draw_arm(experiment, store.text(case))
            arms = {experiment.key: arm.name}
            journey_key = arm.journey
        if journey_key is None:  # a holdout arm: recorded, never contacted
            held_out.append((case, persona, arms))
            continue
        if journey_key == "persona":
            journey = chosen.get((persona, objected))
            if journey is None:
                journey = chosen[(persona, objected)] = _journey_for(library, persona, objected)
        else:
            journey = library.latest(journey_key)
        who = None if objected else persona
        new.append((case, journey.key, journey.version, who, journey.start, arms))
    result.enrolled = store.enrol(new, now) + store.enrol_holdout(held_out, now)

    due = store.due(now, since)
    result.due = len(due)
    if due:
        _plan_and_gate(store, library, due, now, zone, policy, result)
    store.record_tick(now)
    return result


def _read_facts(
    store: JourneyStore, cases: list[Key], texts: list[str], now: dt.datetime
) -> tuple[CaseFacts, list[ContactFacts]]:
    """The planner's columns and the gate's facts (contacts not yet filled) of `cases`."""
    raw = store.facts(cases)
    facts = CaseFacts.empty(texts)
    today = (now.date() - EPOCH).days
    contacts = []
    for i, case in enumerate(cases):
        balance = raw["balance"].get(case)
        facts.balance_minor[i] = int(balance[0]) if balance else 0
        facts.due_day[i] = int(balance[1]) if balance and balance[1] is not None else today
        debtor = raw["debtor"].get(case)
        zone = country = None
        if debtor is not None:
            email, phone, post, vulnerable, zone, country, persona, number = debtor
            bits = (CHANNEL_BITS["email"] if email else 0) | (CHANNEL_BITS["letter"] if post else 0)
            if phone:
                bits |= CHANNEL_BITS["phone"]
                if is_mobile(number):
                    bits |= CHANNEL_BITS["sms"]
            facts.reachable[i] = bits
            facts.vulnerable[i] = bool(vulnerable)
            facts.persona[i] = persona
        promise = raw["promise"].get(case)
        if promise is not None and promise[0] is not None:
            facts.promise_day[i] = int(promise[0])
            facts.promise[i] = PromiseCode.PENDING
        for event_type, at in raw["events"].get(case, ()):
            when = store.utc(at)
            if event_type in _EVENTS and when is not None:
                facts.event_at[i, EVENT_INDEX[_EVENTS[event_type]]] = int(when.timestamp())
        sent = raw["sent"].get(case, ())
        reminders = [
            (when, channel)
            for channel, at, reminder, kind, _, _ in sent
            if kind == "send" and reminder and (when := store.utc(at)) is not None
        ]
        facts.reminders_sent[i] = len(reminders)
        if any(kind == "send" for _, _, _, kind, _, _ in sent):
            facts.last_delivery[i] = Delivery.SENT
        charged: Counter[str] = Counter()
        for _, _, _, kind, amount, fee in sent:
            if kind == "fee":
                charged[fee] += amount or 0
        contacts.append(
            ContactFacts(
                balance_minor=int(facts.balance_minor[i]),
                vulnerable=bool(facts.vulnerable[i]),
                timezone=zone,
                country=country,
                reachable=frozenset(
                    c for c, bit in CHANNEL_BITS.items() if facts.reachable[i] & bit
                ),
                reminders_sent=len(reminders),
                first_reminder=(reminders[0][0], reminders[0][1] != "letter")
                if reminders
                else None,
                fees_charged_minor=charged[FeeKind.REMINDER_FEE],
                indemnity_charged_minor=charged[FeeKind.FLAT_INDEMNITY],
                interest_charged_minor=charged[FeeKind.LATE_INTEREST],
            )
        )
    return facts, contacts


def _now_facts(
    base: ContactFacts,
    recent: dict[Key, list[tuple[str, dt.datetime]]],
    planned: dict[Key, list[tuple[str, dt.datetime]]],
    due: DueCase,
) -> ContactFacts:
    """A case's gate facts with the person's recent contacts and this tick's plans."""
    contacts = recent.get(due.debtor_id, []) + planned.get(due.debtor_id, [])
    if not contacts and not base.recent_contacts:
        return base  # most cases: nothing to add, no copy to validate
    return replace(base, recent_contacts=tuple(contacts))


def _plan_and_gate(
    store: JourneyStore,
    library: Library,
    due: list[DueCase],
    now: dt.datetime,
    zone: str,
    policy: PolicyConfig,
    result: TickResult,
) -> None:
    journeys = list(library)
    program = compile_journeys(journeys)
    index = {(j.key, j.version): k for k, j in enumerate(journeys)}
    journey_of = np.array([index[(d.journey_key, d.journey_version)] for d in due], dtype=np.int64)
    node_number = {
        (int(j), node_id): g
        for g, (j, node_id) in enumerate(
            zip(program.node_journey.tolist(), program.node_id, strict=True)
        )
    }
    node_of = np.array(
        [node_number[(j, d.node_id)] for j, d in zip(journey_of.tolist(), due, strict=True)],
        dtype=np.int64,
    )
    t = int(now.timestamp())
    state = Enrolments(
        journey=journey_of,
        node=node_of,
        entered_at=np.array([int(d.entered_at.timestamp()) for d in due], dtype=np.int64),
        enrolled_at=np.array([int(d.enrolled_at.timestamp()) for d in due], dtype=np.int64),
        wake_at=np.array(
            [int(d.wake_at.timestamp()) if d.wake_at else t for d in due], dtype=np.int64
        ),
        step=np.array([d.step for d in due], dtype=np.int64),
        done=np.zeros(len(due), dtype=bool),
    )
    facts, contacts = _read_facts(store, [d.case_id for d in due], [d.case_text for d in due], now)
    decisions, after = plan(program, state, facts, now, zone)
    recent = store.recent_written(
        sorted({d.debtor_id for d in due}, key=str), now - policy.written_window
    )
    sent_now: dict[Key, list[tuple[str, dt.datetime]]] = {}
    outbox: list[OutboxEntry] = []
    log: list[tuple[Key, str, str, str, str | None, str]] = []
    arms: dict[int, dict[str, str]] = {}
    exits: dict[int, str] = {}
    for row, kind, node, step, detail in zip(
        decisions.row, decisions.kind, decisions.node, decisions.step, decisions.detail, strict=True
    ):
        d = due[row]
        journey = f"{d.journey_key}@{d.journey_version}"
        node_id = program.node_id[node]
        result.decisions[kind.name.lower()] += 1
        if kind is Kind.ARM:
            arms.setdefault(row, dict(d.arms))[detail[0]] = detail[1]
            continue
        if kind is Kind.EXIT:
            exits[row] = str(detail)
            result.exits[str(detail)] += 1
            continue
        if kind is Kind.SEND:
            node_model = program.nodes[node]
            reminded = False
            for channel in detail or (None,):
                aid = attempt_id(d.case_text, journey, node_id, step, channel)
                if channel is None:
                    verdict, not_before, reason = "skip", now, "no reachable channel"
                else:
                    # Seen by the gate with what this tick already planned for the person.
                    gate = check_send(
                        _now_facts(contacts[row], recent, sent_now, d), channel, now, policy
                    )
                    verdict, reason = gate.verdict, gate.reason
                    not_before = gate.not_before or now
                    if verdict in ("send", "delay"):
                        sent_now.setdefault(d.debtor_id, []).append((channel, not_before))
                        if node_model.reminder and not reminded:
                            # A later fee node of this tick must know this reminder went.
                            reminded = True
                            before = contacts[row]
                            contacts[row] = replace(
                                before,
                                reminders_sent=before.reminders_sent + 1,
                                first_reminder=before.first_reminder
                                or (not_before, channel != "letter"),
                            )
                status = {
                    "send": "queued",
                    "delay": "delayed",
                    "skip": "skipped",
                    "review": "review",
                }[verdict]
                result.verdicts[verdict] += 1
                outbox.append(
                    OutboxEntry(
                        aid, d.case_id, d.debtor_id, journey, node_id, step, "send", channel,
                        node_model.template, node_model.reminder, None, status, not_before, reason,
                    )
                )  # fmt: skip
                log.append((d.case_id, aid, "plan", verdict, channel, reason))
            continue
        contact = _now_facts(contacts[row], recent, sent_now, d)
        if kind is Kind.TASK:
            aid = attempt_id(d.case_text, journey, node_id, step, None)
            task_kind, script = detail
            channel = "phone" if task_kind == "call" else None
            outbox.append(
                OutboxEntry(
                    aid, d.case_id, d.debtor_id, journey, node_id, step, "task", channel, script,
                    False, None, "queued", now, f"agent task: {task_kind}",
                )
            )  # fmt: skip
        else:
            aid = attempt_id(d.case_text, journey, node_id, step, None)
            fee = check_fee(contact, FeeKind(detail), now, policy)
            booked = fee.amount_minor > 0  # a fee takes effect when decided
            result.verdicts["fee" if booked else "fee_refused"] += 1
            if booked:  # what the law still allows shrinks at once, within this tick too
                field_name = {
                    FeeKind.REMINDER_FEE: "fees_charged_minor",
                    FeeKind.FLAT_INDEMNITY: "indemnity_charged_minor",
                    FeeKind.LATE_INTEREST: "interest_charged_minor",
                }[FeeKind(detail)]
                before = contacts[row]
                contacts[row] = replace(
                    before, **{field_name: getattr(before, field_name) + fee.amount_minor}
                )
            outbox.append(
                OutboxEntry(
                    aid, d.case_id, d.debtor_id, journey, node_id, step, "fee", None, str(detail),
                    False, fee.amount_minor, "sent" if booked else "skipped", now, fee.reason,
                    now if booked else None,
                )
            )  # fmt: skip
            log.append(
                (d.case_id, aid, "plan", "fee" if fee.amount_minor else "skip", None, fee.reason)
            )
    result.outbox = store.add_outbox(outbox, now)
    store.log_policy(log, now)
    updates = []
    w = store.writer
    for row, d in enumerate(due):
        if (
            after.step[row] == state.step[row]
            and not after.done[row]
            and after.wake_at[row] == state.wake_at[row]
        ):
            continue
        wake = (
            None
            if after.done[row] or after.wake_at[row] == NEVER
            else dt.datetime.fromtimestamp(int(after.wake_at[row]), dt.UTC)
        )
        updates.append(
            (
                program.node_id[int(after.node[row])],
                w.timestamp(dt.datetime.fromtimestamp(int(after.entered_at[row]), dt.UTC)),
                w.timestamp(wake) if wake else None,
                int(after.step[row]),
                bool(after.done[row]),
                exits.get(row),
                json.dumps(arms.get(row, d.arms)),
                d.case_id,
            )
        )
    store.update_enrolments(updates)


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
    _, contacts = _read_facts(store, [case_key], [str(case_id)], now)
    recent = store.recent_written([debtor_key], now - policy.written_window)
    return replace(contacts[0], recent_contacts=tuple(recent.get(debtor_key, [])))


# -- dispatch ------------------------------------------------------------------------------


class FileOutbox:
    """The embedded provider: one JSON file per message, named by its attempt id.

    Creating the file is atomic and exclusive (`O_EXCL`): a message already written is
    never written again, whatever crashed in between — the attempt id is the
    idempotency key. Real rendering (e-mail, SMS, PDF letters) comes with the channels.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, attempt: str, message: dict[str, Any]) -> bool:
        """True when written now, False when it already existed (sent before)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{attempt}.json"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(message, handle, ensure_ascii=False, indent=2)
        return True


def dispatch(
    connection: Connection,
    creditor_id: Any,
    provider: FileOutbox,
    now: dt.datetime,
    *,
    policy: PolicyConfig = DEFAULT_POLICY,
    limit: int = 10_000,
) -> Counter[str]:
    """Send the queued messages whose time has come; the gate checks live facts again."""
    store = JourneyStore(connection, creditor_id)
    rows = store.dispatchable(now, limit)
    done: Counter[str] = Counter()
    if not rows:
        return done
    _, contacts = _read_facts(store, [r[2] for r in rows], [store.text(r[2]) for r in rows], now)
    debtors = sorted({r[3] for r in rows}, key=str)
    recent = store.recent_written(debtors, now - policy.written_window)
    log = []
    for row, (
        outbox_id,
        attempt,
        case_key,
        debtor_key,
        channel,
        template,
        journey,
        node,
        reminder,
    ) in enumerate(rows):
        contact = replace(contacts[row], recent_contacts=tuple(recent.get(debtor_key, [])))
        gate = check_send(contact, channel, now, policy)
        log.append((case_key, attempt, "send", gate.verdict, channel, gate.reason))
        if gate.verdict == "send":
            message = {
                "attempt_id": attempt,
                "case": store.text(case_key),
                "channel": channel,
                "template": template,
                "journey": journey,
                "node": node,
                "reminder": bool(reminder),
                "at": now.isoformat(),
            }
            written = provider.send(attempt, message)
            store.set_status(outbox_id, "sent", None if written else "already written", now)
            recent.setdefault(debtor_key, []).append((channel, now))
            done["sent"] += 1
        elif gate.verdict == "delay":
            store.set_status(outbox_id, "delayed", gate.reason, None, gate.not_before)
            done["delayed"] += 1
        else:
            store.set_status(
                outbox_id, "skipped" if gate.verdict == "skip" else "review", gate.reason, None
            )
            done[gate.verdict] += 1
    store.log_policy(log, now)
    return done
