"""The vetted registry of branch guards: named, typed, vectorised — never `eval`.

A guard reads case facts as columns and answers for many cases at once. Its arguments
are validated by a pydantic model when the journey is loaded, so a typo in a journey file
is an error naming the node, not a surprise at run time. Adding a guard means adding a
function here (and a test): the vocabulary follows Kill Bill's overdue conditions
(balance, age of the oldest unpaid, last outcome) plus promises, plans and personas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parcours.journeys.facts import CHANNEL_BITS, CaseFacts, Delivery, PlanState, PromiseCode

__all__ = ["GUARDS", "Guard", "GuardError", "evaluate", "validate_args"]

B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


class GuardError(ValueError):
    """A journey names an unknown guard or gives it bad arguments."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NoArgs(_Args):
    pass


class _Amount(_Args):
    euros: float = Field(ge=0)


class _Days(_Args):
    days: int = Field(ge=-365, le=3650)


class _Count(_Args):
    count: int = Field(ge=0)


class _Persona(_Args):
    persona: str


class _Channel(_Args):
    channel: Literal["email", "sms", "letter", "phone", "chat"]


class _Delivery(_Args):
    outcome: Literal["none", "sent", "delivered", "bounced", "opened", "clicked"]


class _Promise(_Args):
    state: Literal["none", "pending", "kept", "broken"]


class _Plan(_Args):
    state: Literal["none", "active", "missed", "broken"]


@dataclass(frozen=True)
class Guard:
    name: str
    description: str
    args: type[_Args]
    test: Callable[[CaseFacts, I64, Any, int], B]  # (facts, rows, args, today) -> mask


def _balance_at_least(f: CaseFacts, rows: I64, a: _Amount, today: int) -> B:
    return f.balance_minor[rows] >= round(a.euros * 100)


def _balance_below(f: CaseFacts, rows: I64, a: _Amount, today: int) -> B:
    return f.balance_minor[rows] < round(a.euros * 100)


def _days_past_due_at_least(f: CaseFacts, rows: I64, a: _Days, today: int) -> B:
    return today - f.due_day[rows] >= a.days


def _persona_is(f: CaseFacts, rows: I64, a: _Persona, today: int) -> B:
    return np.array([f.persona[i] == a.persona for i in rows.tolist()], dtype=bool)


def _reachable_by(f: CaseFacts, rows: I64, a: _Channel, today: int) -> B:
    mask: B = (f.reachable[rows] & CHANNEL_BITS[a.channel]) != 0
    return mask


def _last_delivery_is(f: CaseFacts, rows: I64, a: _Delivery, today: int) -> B:
    mask: B = f.last_delivery[rows] == Delivery[a.outcome.upper()]
    return mask


def _promise_is(f: CaseFacts, rows: I64, a: _Promise, today: int) -> B:
    mask: B = f.promise[rows] == PromiseCode[a.state.upper()]
    return mask


def _plan_is(f: CaseFacts, rows: I64, a: _Plan, today: int) -> B:
    mask: B = f.plan[rows] == PlanState[a.state.upper()]
    return mask


def _responded(f: CaseFacts, rows: I64, a: _NoArgs, today: int) -> B:
    return f.responses[rows] > 0


def _reminders_at_least(f: CaseFacts, rows: I64, a: _Count, today: int) -> B:
    return f.reminders_sent[rows] >= a.count


def _vulnerable(f: CaseFacts, rows: I64, a: _NoArgs, today: int) -> B:
    return f.vulnerable[rows].copy()


def _asked_for_pre_due(f: CaseFacts, rows: I64, a: _NoArgs, today: int) -> B:
    return f.pre_due_asked[rows].copy()


GUARDS: Final[dict[str, Guard]] = {
    g.name: g
    for g in (
        Guard("balance_at_least", "open balance ≥ `euros`", _Amount, _balance_at_least),
        Guard("balance_below", "open balance < `euros`", _Amount, _balance_below),
        Guard(
            "days_past_due_at_least",
            "the oldest open due date is at least `days` ago (negative: before it)",
            _Days,
            _days_past_due_at_least,
        ),
        Guard("persona_is", "the debtor's persona is `persona`", _Persona, _persona_is),
        Guard(
            "reachable_by",
            "a contact point for `channel` exists and is not opted out",
            _Channel,
            _reachable_by,
        ),
        Guard(
            "last_delivery_is",
            "what happened to the last message: none, sent, delivered, bounced, opened, clicked",
            _Delivery,
            _last_delivery_is,
        ),
        Guard("promise_is", "promise state: none, pending, kept, broken", _Promise, _promise_is),
        Guard("plan_is", "payment plan state: none, active, missed, broken", _Plan, _plan_is),
        Guard("responded", "the debtor replied or clicked since enrolment", _NoArgs, _responded),
        Guard(
            "reminders_at_least",
            "at least `count` reminders were sent",
            _Count,
            _reminders_at_least,
        ),
        Guard("vulnerable", "the debtor is flagged vulnerable", _NoArgs, _vulnerable),
        Guard(
            "asked_for_pre_due_reminder",
            "the debtor asked (on their page) to be reminded before due dates",
            _NoArgs,
            _asked_for_pre_due,
        ),
    )
}


def validate_args(name: str, args: dict[str, Any]) -> Any:
    """The guard's parsed arguments; raises GuardError naming what is wrong."""
    guard = GUARDS.get(name)
    if guard is None:
        raise GuardError(f"unknown guard {name!r} (known: {', '.join(sorted(GUARDS))})")
    try:
        return guard.args.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise GuardError(f"guard {name!r}: {problems}") from None


def evaluate(name: str, args: Any, facts: CaseFacts, rows: I64, today: int) -> B:
    """The guard's answer for the cases at `rows` (args as returned by validate_args)."""
    return GUARDS[name].test(facts, rows, args, today)
