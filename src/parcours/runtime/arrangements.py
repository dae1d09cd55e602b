"""Promises to pay, payment plans and disputes: made by the debtor (page), an agent or the
creditor (API), followed by every tick, and fed to the journeys as events.

- A promise is kept once the promised share of its amount has been paid since it was
  made; broken when its date plus the grace has passed without that.
- A plan's instalments are paid in order by whatever reaches the case after it began;
  an instalment unpaid after its grace is missed (the journey may remind), a plan with
  too many missed instalments is broken (the journey takes over again); while a plan
  runs without arrears, collection pauses.
- A dispute pauses every collection contact until an agent rules: upheld closes the case
  (or lowers what is owed by an adjustment), rejected lets the journey resume.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine

from parcours.channels.content import CreditorProfile
from parcours.domain.arrangements import (
    ArrangementRules,
    Instalment,
    plan_schedule,
    plan_state,
    promise_state,
    validate_promise,
)
from parcours.domain.errors import DomainError
from parcours.domain.structured_communication import StructuredCommunication
from parcours.payments.epc import EpcPayment, belgian_transfer
from parcours.runtime.payments import PaymentBooker
from parcours.store.bulk import Key
from parcours.store.payments import PaymentStore

__all__ = [
    "DEFAULT_RULES",
    "DISPUTE_REASONS",
    "CaseError",
    "PlanMade",
    "create_plan",
    "make_promise",
    "open_dispute",
    "resolve_dispute",
    "settle_arrangements",
]

DEFAULT_RULES: Final = ArrangementRules()
DISPUTE_REASONS: Final = (
    "not_mine",  # I never had this contract / invoice
    "already_paid",
    "amount_wrong",
    "service_not_delivered",
    "fees_contested",
    "other",
)
Source = Literal["debtor", "agent", "creditor"]


class CaseError(ValueError):
    """The case does not exist for this creditor, or is in no state for the action."""


@dataclass(frozen=True, slots=True)
class PlanMade:
    plan_id: str
    total_minor: int
    currency: str
    instalments: list[Instalment]
    communication: str | None  # the structured communication that pays every instalment

    def transfers(self, profile: CreditorProfile) -> list[EpcPayment]:
        """One transfer per instalment, for its EPC QR code (the creditor's account, the
        instalment's amount, the case's structured communication where banking apps read
        it); none without a communication."""
        if self.communication is None:
            return []
        ogm = StructuredCommunication.parse(self.communication)
        return [
            belgian_transfer(
                name=profile.name, iban=profile.iban, bic=profile.bic,
                amount_minor=i.amount_minor, communication=ogm,
                information=f"{i.number}/{len(self.instalments)}",
            )
            for i in self.instalments
        ]  # fmt: skip


def _case(store: PaymentStore, case_ref: str) -> tuple[Key, Key, int, str]:
    """(case, debtor, balance, currency) of an open case."""
    case = store.case_by_ref(case_ref)
    if case is None:
        raise CaseError(f"no case {case_ref!r} for this creditor")
    info = store.cases([case])[case]
    if info.balance_minor <= 0:
        raise CaseError(f"case {case_ref} owes nothing")
    return case, info.debtor, info.balance_minor, info.currency


def make_promise(
    engine: Engine,
    creditor_id: Any,
    case_ref: str,
    amount_minor: int,
    due_on: dt.date,
    now: dt.datetime,
    *,
    source: Source,
    actor: str,
    rules: ArrangementRules = DEFAULT_RULES,
) -> None:
    """Record a promise (it replaces a pending one) and tell the journey."""
    with engine.begin() as connection:
        store = PaymentStore(connection, creditor_id)
        case, debtor, balance, currency = _case(store, case_ref)
        try:
            validate_promise(amount_minor, due_on, now.date(), balance, rules)
        except DomainError as exc:
            raise CaseError(str(exc)) from exc
        store.cancel_pending_promises(case, now)
        store.add_promise(case, amount_minor, currency, due_on, now, source=source)
        payload = {"amount_minor": amount_minor, "due_on": due_on.isoformat(), "source": source}
        store.add_events([(case, debtor, "promise.made", now, payload)])
        store.audit(actor, "promise.made", case_ref, payload, now)


def create_plan(
    engine: Engine,
    creditor_id: Any,
    case_ref: str,
    count: int,
    first_on: dt.date,
    now: dt.datetime,
    *,
    source: Source,
    actor: str,
    every: Literal["month", "week", "fortnight"] = "month",
    rules: ArrangementRules = DEFAULT_RULES,
) -> PlanMade:
    """Split the case's balance into instalments within the creditor's limits."""
    with engine.begin() as connection:
        store = PaymentStore(connection, creditor_id)
        case, debtor, balance, currency = _case(store, case_ref)
        if store.running_plan(case):
            raise CaseError(f"case {case_ref} already has a running payment plan")
        try:
            schedule = plan_schedule(
                balance, count, first_on, every=every, limits=rules.plan, today=now.date()
            )
        except DomainError as exc:
            raise CaseError(str(exc)) from exc
        store.cancel_pending_promises(case, now)
        plan = store.add_plan(case, balance, currency, schedule, source, now)
        # The case's own communication when it has several invoices (given now if new).
        communication = store.message_facts([case])[case].paying_communication
        payload = {"plan": store.text(plan), "total_minor": balance, "instalments": count}
        store.add_events([(case, debtor, "plan.created", now, payload | {"source": source})])
        store.audit(actor, "plan.created", case_ref, payload, now)
        return PlanMade(store.text(plan), balance, currency, schedule, communication)


def open_dispute(
    engine: Engine,
    creditor_id: Any,
    case_ref: str,
    reason: str,
    evidence: str | None,
    now: dt.datetime,
    *,
    source: Source,
    actor: str,
) -> str:
    """Open a dispute: every collection contact pauses until it is resolved."""
    if reason not in DISPUTE_REASONS:
        raise CaseError(f"reason: {reason!r} is not one of {', '.join(DISPUTE_REASONS)}")
    with engine.begin() as connection:
        store = PaymentStore(connection, creditor_id)
        case = store.case_by_ref(case_ref)
        if case is None:
            raise CaseError(f"no case {case_ref!r} for this creditor")
        if store.open_dispute_of(case) is not None:
            raise CaseError(f"case {case_ref} already has an open dispute")
        debtor = store.cases([case])[case].debtor
        dispute = store.add_dispute(case, reason, evidence, source, now)
        payload = {"dispute": store.text(dispute), "reason": reason, "source": source}
        store.add_events([(case, debtor, "dispute.opened", now, payload)])
        store.audit(actor, "dispute.opened", case_ref, payload, now)
        return store.text(dispute)


def resolve_dispute(
    engine: Engine,
    creditor_id: Any,
    case_ref: str,
    outcome: Literal["upheld", "rejected"],
    now: dt.datetime,
    *,
    actor: str,
    note: str | None = None,
    adjustment_minor: int | None = None,
) -> str:
    """An agent rules on the open dispute of a case.

    Upheld without an adjustment closes the case (nothing is owed); upheld with one books
    that amount off the balance and lets the journey resume on what is left; rejected
    lets the journey resume as it was.
    """
    if adjustment_minor is not None and (adjustment_minor <= 0 or outcome != "upheld"):
        raise CaseError("adjustment: only an upheld dispute adjusts, by a positive amount")
    with engine.begin() as connection:
        store = PaymentStore(connection, creditor_id)
        case = store.case_by_ref(case_ref)
        if case is None:
            raise CaseError(f"no case {case_ref!r} for this creditor")
        dispute = store.open_dispute_of(case)
        if dispute is None:
            raise CaseError(f"case {case_ref} has no open dispute")
        info = store.cases([case])[case]
        if adjustment_minor is not None:
            if adjustment_minor > info.balance_minor:
                raise CaseError(
                    f"adjustment: {adjustment_minor} is more than the balance {info.balance_minor}"
                )
            booker = PaymentBooker(store, now)
            booker.book(
                info, adjustment_minor, info.currency, now,
                f"adjustment:{store.text(dispute)}", "manual", method="adjustment",
            )  # fmt: skip
            booker.flush()
        store.resolve_dispute(dispute, outcome, actor, note, adjustment_minor, now)
        if outcome == "upheld" and adjustment_minor is None:
            store.close_case(case, "disputed", now)
        payload: dict[str, Any] = {"dispute": store.text(dispute), "outcome": outcome}
        if adjustment_minor is not None:
            payload["adjustment_minor"] = adjustment_minor
        store.add_events([(case, info.debtor, "dispute.closed", now, payload)])
        store.audit(actor, "dispute.resolved", case_ref, payload, now)
        return outcome


def settle_arrangements(
    connection: Connection,
    creditor_id: Any,
    now: dt.datetime,
    rules: ArrangementRules = DEFAULT_RULES,
) -> dict[str, int]:
    """Find pending promises kept or broken and plans missed, broken or completed by the
    money received so far; each change is an event the journeys read. Run by every tick
    before it reads facts."""
    store = PaymentStore(connection, creditor_id)
    today = now.date()
    events: list[tuple[Key, Key, str, dt.datetime, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    promise_updates = []
    for promise, case, debtor, amount, due_on, paid in store.pending_promises():
        outcome = promise_state(amount, due_on, paid, today, rules)
        if outcome != "pending":
            promise_updates.append((outcome, promise))
            events.append((case, debtor, f"promise.{outcome}", now, {"amount_minor": amount}))
            counts[f"promise.{outcome}"] = counts.get(f"promise.{outcome}", 0) + 1
    store.settle_promises(promise_updates, now)
    plan_updates = []
    for plan, case, debtor, state, seen, instalments, paid in store.running_plans():
        status = plan_state(instalments, paid, today, rules.plan)
        if status.state != state or paid != seen:
            plan_updates.append((status.state, paid, plan))
        if status.state != state:
            kind = f"plan.{status.state}" if status.state != "active" else "plan.resumed"
            events.append((case, debtor, kind, now, {"missed": len(status.missed)}))
            counts[kind] = counts.get(kind, 0) + 1
    store.update_plans(plan_updates, now)
    store.add_events(events)
    return counts
