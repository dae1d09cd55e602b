"""Arrangements a debtor makes: promises to pay and payment plans, as pure rules on ints and dates.

The creditor's limits decide which plans the debtor page may offer; the same functions then
judge, day after day, whether a promise was kept or a plan is on track. They run for every
case in a tick, so they use plain integers and dates and no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final, Literal

from parcours.domain.errors import DomainError

__all__ = [
    "ArrangementError",
    "ArrangementRules",
    "Frequency",
    "Instalment",
    "InvalidArrangementRules",
    "InvalidPlan",
    "InvalidPromise",
    "PlanLimits",
    "PlanOutsideLimits",
    "PlanStateName",
    "PlanStatus",
    "PromiseOutcome",
    "add_months",
    "plan_schedule",
    "plan_state",
    "promise_kept_threshold",
    "promise_state",
    "propose_plans",
    "validate_promise",
]

Frequency = Literal["month", "week", "fortnight"]
PromiseOutcome = Literal["pending", "kept", "broken"]
PlanStateName = Literal["active", "missed", "completed", "broken"]

_DAYS_APART: Final = {"week": 7, "fortnight": 14}
# The counts the debtor page offers first; the longest plan the limits allow is added.
_PROPOSED_COUNTS: Final = (2, 3, 6, 12)
_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class ArrangementError(DomainError):
    """A promise or plan breaks a rule; `field` names the input or the limit concerned."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call __init__ with the formatted text only.
        return (type(self), (self.field, self.message))


class InvalidArrangementRules(ArrangementError):
    """The creditor's configured limits are not usable (a negative number of days, …)."""


class InvalidPlan(ArrangementError):
    """The plan asked for is malformed (no instalments, a non-positive total, …)."""


class PlanOutsideLimits(InvalidPlan):
    """A well-formed plan breaks one of the creditor's limits, named by `field`."""


class InvalidPromise(ArrangementError):
    """A promise the debtor cannot make: `field` is `amount_minor` or `due_on`."""


def _check_count(owner: str, name: str, value: object, minimum: int) -> None:
    # bool is an int subclass; True as "12 months" is a configuration mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArrangementRules(
            f"{owner}.{name}", f"must be a whole number ≥ {minimum}, got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """What a creditor accepts as a payment plan, and when a plan counts as missed or broken.

    An instalment is *missed* once `grace_days` have passed after its date without it being
    paid; the plan is *broken* after `missed_to_break` missed instalments, or as soon as a
    missed one is more than `break_after_days` late (counted from its date).
    """

    max_months: int = 12
    min_instalment_minor: int = 2500
    max_instalments: int = 12
    first_within_days: int = 30
    grace_days: int = 5
    missed_to_break: int = 2
    break_after_days: int = 30
    # Derived once so that plan_state does no timedelta arithmetic per instalment.
    _grace: dt.timedelta = field(init=False, repr=False, compare=False)
    _break_after: dt.timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_count("plan", "max_months", self.max_months, 1)
        _check_count("plan", "min_instalment_minor", self.min_instalment_minor, 1)
        _check_count("plan", "max_instalments", self.max_instalments, 1)
        _check_count("plan", "first_within_days", self.first_within_days, 0)
        _check_count("plan", "grace_days", self.grace_days, 0)
        _check_count("plan", "missed_to_break", self.missed_to_break, 1)
        _check_count("plan", "break_after_days", self.break_after_days, 0)
        object.__setattr__(self, "_grace", dt.timedelta(days=self.grace_days))
        object.__setattr__(self, "_break_after", dt.timedelta(days=self.break_after_days))


@dataclass(frozen=True, slots=True)
class ArrangementRules:
    """A creditor's rules for promises to pay, and its plan limits.

    `promise_kept_share` is read as the decimal it is written as (0.95 is exactly 95/100,
    not the nearest binary float), so a debtor who pays 95.00 of 100.00 keeps the promise.
    """

    promise_grace_days: int = 3
    promise_max_days: int = 30
    promise_kept_share: float = 1.0
    plan: PlanLimits = field(default_factory=PlanLimits)
    _share: Fraction = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_count("rules", "promise_grace_days", self.promise_grace_days, 0)
        _check_count("rules", "promise_max_days", self.promise_max_days, 0)
        share = self.promise_kept_share
        if (
            isinstance(share, bool)
            or not isinstance(share, int | float)
            or not math.isfinite(share)
            or not 0 < share <= 1
        ):
            raise InvalidArrangementRules(
                "rules.promise_kept_share", f"must be a share in (0, 1], got {share!r}"
            )
        if not isinstance(self.plan, PlanLimits):
            raise InvalidArrangementRules("rules.plan", f"must be PlanLimits, got {self.plan!r}")
        object.__setattr__(self, "_share", Fraction(str(float(share))))


@dataclass(frozen=True, slots=True)
class Instalment:
    """One payment of a plan: its rank (from 1), its date and its amount in minor units."""

    number: int
    due_on: dt.date
    amount_minor: int

    def __post_init__(self) -> None:
        if self.number < 1:
            raise InvalidPlan("number", f"an instalment is numbered from 1, got {self.number}")
        if self.amount_minor < 1:
            raise InvalidPlan(
                "amount_minor",
                f"instalment {self.number} must be a positive amount, got {self.amount_minor}",
            )


@dataclass(frozen=True, slots=True)
class PlanStatus:
    """Where a plan stands on a day, given everything paid towards it so far."""

    state: PlanStateName
    paid_count: int  # instalments fully covered by the payments, in order
    missed: tuple[Instalment, ...]  # unpaid past their date + grace, oldest first
    next_instalment: Instalment | None  # the first not fully paid; None when completed
    outstanding_minor: int  # what is left to pay on the plan, never negative

    @property
    def missed_count(self) -> int:
        return len(self.missed)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day-of-month `months` later, clamped to the month's end (Jan 31 → Feb 28)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    month = month0 + 1
    return dt.date(year, month, min(day.day, _days_in_month(year, month)))


def _due_dates(first_on: dt.date, count: int, every: Frequency) -> list[dt.date]:
    if every == "month":
        # Each date is computed from the first, not the previous one, so Jan 31 gives
        # Feb 28 then Mar 31 (not Mar 28).
        return [add_months(first_on, k) for k in range(count)]
    step = dt.timedelta(days=_DAYS_APART[every])
    return [first_on + step * k for k in range(count)]


def plan_schedule(
    total_minor: int,
    count: int,
    first_on: dt.date,
    *,
    today: dt.date,
    every: Frequency = "month",
    limits: PlanLimits,
) -> list[Instalment]:
    """Split `total_minor` into `count` equal instalments, or raise naming the limit broken.

    Amounts are whole minor units summing to the total exactly; the remainder (less than
    `count` minor units) goes on the last instalment, so the debtor starts with the round
    amount the page shows and the last one settles the balance. Every instalment, the last
    included, is at least `min_instalment_minor`.
    """
    if total_minor < 1:
        raise InvalidPlan("total_minor", f"a plan needs a positive total, got {total_minor}")
    if count < 1:
        raise InvalidPlan("count", f"a plan needs at least one instalment, got {count}")
    if every != "month" and every not in _DAYS_APART:
        raise InvalidPlan("every", f"must be 'month', 'week' or 'fortnight', got {every!r}")
    if count > limits.max_instalments:
        raise PlanOutsideLimits(
            "max_instalments",
            f"a plan has at most {limits.max_instalments} instalments, {count} asked",
        )
    if first_on < today:
        raise PlanOutsideLimits("first_on", f"the first instalment date {first_on} is past")
    latest_first = today + dt.timedelta(days=limits.first_within_days)
    if first_on > latest_first:
        raise PlanOutsideLimits(
            "first_within_days",
            f"the first instalment must be due by {latest_first}"
            f" ({limits.first_within_days} days from {today}), not {first_on}",
        )
    base, remainder = divmod(total_minor, count)
    if base < limits.min_instalment_minor:
        raise PlanOutsideLimits(
            "min_instalment_minor",
            f"{count} instalments of {base} minor units are below the minimum of"
            f" {limits.min_instalment_minor}",
        )
    dates = _due_dates(first_on, count, every)
    latest_last = add_months(first_on, limits.max_months)
    if dates[-1] > latest_last:
        raise PlanOutsideLimits(
            "max_months",
            f"the last instalment on {dates[-1]} is more than {limits.max_months} months"
            f" after the first ({first_on})",
        )
    last = count - 1
    return [
        Instalment(k + 1, due_on, base + remainder if k == last else base)
        for k, due_on in enumerate(dates)
    ]


def propose_plans(
    total_minor: int,
    today: dt.date,
    limits: PlanLimits,
    *,
    first_on: dt.date | None = None,
) -> list[list[Instalment]]:
    """Monthly plans the debtor page can offer, shortest first; empty when none fits.

    Offers 2, 3, 6 and 12 instalments where the limits allow them, and the longest plan
    the limits allow. The first instalment is due `first_on` (default: today).
    """
    start = today if first_on is None else first_on
    if total_minor < 1:
        return []
    longest = min(
        limits.max_instalments,
        total_minor // limits.min_instalment_minor,
        limits.max_months + 1,  # monthly instalments k = 0..n-1 months after the first
    )
    if longest < 2:  # one instalment is a promise to pay, not a plan
        return []
    counts = sorted({c for c in _PROPOSED_COUNTS if c <= longest} | {longest})
    return [plan_schedule(total_minor, c, start, today=today, limits=limits) for c in counts]


def promise_kept_threshold(amount_minor: int, rules: ArrangementRules) -> int:
    """The least paid (minor units) that keeps a promise of `amount_minor`."""
    share = rules._share
    return -(-amount_minor * share.numerator // share.denominator)


def promise_state(
    amount_minor: int,
    due_on: dt.date,
    paid_since_made_minor: int,
    today: dt.date,
    rules: ArrangementRules,
) -> PromiseOutcome:
    """Kept as soon as enough is paid (even early); broken once the date + grace has passed."""
    share = rules._share
    if paid_since_made_minor * share.denominator >= amount_minor * share.numerator:
        return "kept"
    if (today - due_on).days > rules.promise_grace_days:
        return "broken"
    return "pending"


def validate_promise(
    amount_minor: int,
    due_on: dt.date,
    today: dt.date,
    balance_minor: int,
    rules: ArrangementRules,
) -> None:
    """Raise `InvalidPromise` naming the field when a debtor cannot promise this."""
    if amount_minor < 1:
        raise InvalidPromise("amount_minor", f"the amount must be positive, got {amount_minor}")
    if amount_minor > balance_minor:
        raise InvalidPromise(
            "amount_minor",
            f"the amount {amount_minor} is more than the balance of {balance_minor} (minor units)",
        )
    if due_on < today:
        raise InvalidPromise("due_on", f"the date {due_on} is in the past")
    latest = today + dt.timedelta(days=rules.promise_max_days)
    if due_on > latest:
        raise InvalidPromise(
            "due_on",
            f"the date must be at the latest {latest} ({rules.promise_max_days} days from"
            f" {today}), not {due_on}",
        )


def plan_state(
    instalments: Sequence[Instalment],
    paid_minor_total: int,
    today: dt.date,
    limits: PlanLimits,
) -> PlanStatus:
    """Where a plan stands: payments cover instalments in order, cumulatively.

    `instalments` must be in schedule order (dates increasing), as `plan_schedule` makes
    them. The answer depends on the money and the date only, so paying the arrears of a
    broken plan makes it active again here; a caller that treats a break as final records
    it when first seen.
    """
    n = len(instalments)
    if n == 0:
        raise InvalidPlan("instalments", "a plan has at least one instalment")
    if paid_minor_total < 0:
        raise InvalidPlan("paid_minor_total", f"cannot be negative, got {paid_minor_total}")
    covered = 0
    paid_count = 0
    for instalment in instalments:
        covered += instalment.amount_minor
        if covered > paid_minor_total:
            break
        paid_count += 1
    else:  # every instalment is covered
        return PlanStatus("completed", n, (), None, 0)
    # `covered` runs to the end of the first unpaid instalment; add what comes after it.
    outstanding = covered + sum(i.amount_minor for i in instalments[paid_count + 1 :])
    outstanding -= paid_minor_total
    # Dates increase, so the missed instalments are a run starting at the first unpaid one.
    missed_before = today - limits._grace
    end = paid_count
    while end < n and instalments[end].due_on < missed_before:
        end += 1
    missed = tuple(instalments[paid_count:end])
    if not missed:
        state: PlanStateName = "active"
    elif len(missed) >= limits.missed_to_break or missed[0].due_on < today - limits._break_after:
        state = "broken"
    else:
        state = "missed"
    return PlanStatus(state, paid_count, missed, instalments[paid_count], outstanding)
