"""Belgian Book XIX of the Code of Economic Law (law of 4 May 2023) as pure functions.

What a creditor may charge a consumer for late payment, and from when: the free first
reminder, the 14-day wait, the reminder fee cap, the flat indemnity bands of art. XIX.4
and the late interest cap. Amounts are integer minor units (euro cents); every rounding
goes down, in the debtor's favour. No I/O: public holidays come from the `holidays` data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

import holidays

from parcours.domain.journey import FeeKind

__all__ = [
    "FLAT_INDEMNITY_MAX_MINOR",
    "REMINDER_FEE_CAP_MINOR",
    "FeeDecision",
    "LawConfig",
    "allowed_fee",
    "fee_wait_end",
    "flat_indemnity_cap",
    "is_working_day",
    "max_late_interest_minor",
    "public_holidays",
]

REMINDER_FEE_CAP_MINOR: Final = 750  # €7.50 per further reminder, postage on top
FLAT_INDEMNITY_MAX_MINOR: Final = 200_000  # €2,000

# Art. XIX.4 bands, in cents.
_BAND_1_UPTO: Final = 15_000  # €150.00
_BAND_2_UPTO: Final = 50_000  # €500.00
_BAND_1_FLAT: Final = 2_000  # €20
_BAND_2_BASE: Final = 3_000  # €30
_BAND_3_BASE: Final = 6_500  # €65
_INTEREST_MARGIN: Final = Decimal(8)  # points above the reference rate
_DAYS_A_YEAR: Final = 365


@dataclass(frozen=True, slots=True)
class LawConfig:
    """The figures of Book XIX that an operator may have to change."""

    # The reference rate of the law of 2 August 2002 is republished every half-year
    # (1 January, 1 July): configure the one in force; 4.0 is only a placeholder.
    reference_rate_percent: Decimal = Decimal("4.0")
    # Postage added to a further reminder sent by post. 0: the caller passes the actual
    # postage of each letter to `allowed_fee`.
    postage_minor: int = 0
    reminder_fee_cap_minor: int = REMINDER_FEE_CAP_MINOR
    wait_days: int = 14
    paper_working_days: int = 3

    def __post_init__(self) -> None:
        if self.postage_minor < 0 or self.reminder_fee_cap_minor < 0:
            raise ValueError("postage and the reminder fee cap cannot be negative")
        if self.wait_days < 0 or self.paper_working_days < 1:
            raise ValueError("wait_days must be >= 0 and paper_working_days >= 1")


@dataclass(frozen=True, slots=True)
class FeeDecision:
    """How much of a fee the law allows now (0 when none), and why."""

    amount_minor: int
    reason: str


def _euros(minor: int) -> str:
    return f"€{minor // 100:,}.{minor % 100:02d}" if minor >= 0 else f"-{_euros(-minor)}"


def flat_indemnity_cap(balance_minor: int) -> int:
    """The art. XIX.4 flat indemnity cap on an outstanding balance, in cents.

    The law's wording is "€30 plus 10 % of the amount due on the band between €150.01 and
    €500" (and "€65 plus 5 % on the band above €500"). We read "the band between €150.01
    and €500" as the part of the balance above €150.00: the band is made of the cents
    from 150.01 on, so €300.00 has 15,000 cents in it (150.01 … 300.00) and gives
    €30 + €15 = €45. Reading it as "balance - 150.01" would give €44.99 and break the
    continuity at €500 (€64.99 against €65.00 just above), which the bands clearly intend:
    €30 + 10 % of €350 = €65 = the base of the next band.

    So the cap is continuous everywhere except at €150.00 → €150.01, where it jumps from
    €20 to €30: that jump is in the law (the second band starts at €30), not a rounding
    artefact. The cap never decreases as the balance grows and reaches €2,000 at €39,200.
    A balance of zero or less owes nothing.
    """
    if balance_minor <= 0:
        return 0
    if balance_minor <= _BAND_1_UPTO:
        return _BAND_1_FLAT
    if balance_minor <= _BAND_2_UPTO:
        return _BAND_2_BASE + (balance_minor - _BAND_1_UPTO) // 10
    return min(_BAND_3_BASE + (balance_minor - _BAND_2_UPTO) // 20, FLAT_INDEMNITY_MAX_MINOR)


def max_late_interest_minor(balance_minor: int, days: int, reference_rate_percent: Decimal) -> int:
    """The most late interest the law allows: simple interest at (reference rate + 8
    points) a year, counted as days / 365, rounded down to the cent."""
    if balance_minor <= 0 or days <= 0:
        return 0
    rate = Fraction(reference_rate_percent + _INTEREST_MARGIN) / 100
    if rate <= 0:
        return 0
    return int(balance_minor * rate * days / _DAYS_A_YEAR)  # int() floors a positive value


@lru_cache(maxsize=256)
def public_holidays(country: str, year: int) -> frozenset[dt.date]:
    """The national public holidays of `country` (ISO 3166 alpha-2) in `year`."""
    try:
        calendar = holidays.country_holidays(country, years=year)
    except NotImplementedError as error:
        raise ValueError(f"no public holiday calendar for country {country!r}") from error
    return frozenset(calendar)


def is_working_day(day: dt.date, country: str) -> bool:
    """Monday to Friday and not a public holiday of `country`."""
    return day.weekday() < 5 and day not in public_holidays(country, day.year)


def _aware(moment: dt.datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")


def fee_wait_end(
    first_reminder_sent: dt.datetime,
    electronic: bool,
    zone: ZoneInfo,
    country: str = "BE",
    *,
    wait_days: int = 14,
    paper_working_days: int = 3,
) -> dt.date:
    """The first day on which damages and fees may be charged after the first reminder.

    Counting, with days as calendar dates in `zone`:

    - the day the reminder is sent is day 0 and never counts;
    - electronic reminder: the 14 days start the next day (day 1);
    - paper reminder: they start on the 3rd working day after the sending day (working
      days are Monday to Friday and not a public holiday of `country`; the sending day
      itself is never one of the three);
    - the 14 days are the start day and the 13 days after it; they have fully elapsed at
      the end of the 14th day, so fees may apply from the next day: start + 14 days.

    Example: an email sent on Tuesday 1 December gives days 2 to 15 December, fees from
    Wednesday 16 December; a letter posted on Friday 4 December starts on Wednesday
    9 December (Mon 7, Tue 8, Wed 9), fees from Wednesday 23 December.
    """
    _aware(first_reminder_sent, "first_reminder_sent")
    sent_on = first_reminder_sent.astimezone(zone).date()
    if electronic:
        start = sent_on + dt.timedelta(days=1)
    else:
        start, counted = sent_on, 0
        while counted < paper_working_days:
            start += dt.timedelta(days=1)
            if is_working_day(start, country):
                counted += 1
    return start + dt.timedelta(days=wait_days)


def allowed_fee(
    kind: FeeKind,
    *,
    balance_minor: int,
    reminders_sent: int,
    first_reminder: tuple[dt.datetime, bool] | None,
    fees_charged_minor: int,
    indemnity_charged_minor: int,
    now: dt.datetime,
    zone: ZoneInfo,
    config: LawConfig,
    country: str = "BE",
    interest_charged_minor: int = 0,
    by_post: bool = False,
    postage_minor: int | None = None,
) -> FeeDecision:
    """How much of a fee of `kind` the law allows at `now` on this case (0 with a reason
    when none).

    - `reminders_sent`: reminders sent so far, the first (free) one included;
    - `first_reminder`: (when it was sent, whether it was electronic), None if none yet;
    - `fees_charged_minor`: reminder fees already charged, postage excluded;
    - `indemnity_charged_minor` / `interest_charged_minor`: flat indemnity and late
      interest already charged;
    - `by_post` / `postage_minor`: the reminder this fee is for went by post, with that
      postage (None: `config.postage_minor`).
    """
    _aware(now, "now")
    kind = FeeKind(kind)
    if balance_minor <= 0:
        return FeeDecision(0, "paid: nothing to charge")
    if first_reminder is None or reminders_sent < 1:
        return FeeDecision(0, "no reminder yet: the first reminder is free and starts the wait")
    sent_at, electronic = first_reminder
    wait_end = fee_wait_end(
        sent_at,
        electronic,
        zone,
        country,
        wait_days=config.wait_days,
        paper_working_days=config.paper_working_days,
    )
    today = now.astimezone(zone).date()
    if today < wait_end:
        return FeeDecision(0, f"wait not over: fees allowed from {wait_end.isoformat()}")

    if kind == FeeKind.REMINDER_FEE:
        if reminders_sent < 2:
            return FeeDecision(0, "the first reminder is free")
        cap = config.reminder_fee_cap_minor
        # One fee per further reminder: what the reminders sent so far allow, minus what
        # was charged already, never more than one reminder's worth at a time.
        left = min(cap, (reminders_sent - 1) * cap - fees_charged_minor)
        if left <= 0:
            return FeeDecision(0, "every further reminder already carries its fee")
        postage = (
            (config.postage_minor if postage_minor is None else postage_minor) if by_post else 0
        )
        if postage < 0:
            raise ValueError("postage cannot be negative")
        return FeeDecision(
            left + postage,
            f"reminder fee {_euros(left)} (cap {_euros(cap)}) + postage {_euros(postage)}",
        )

    if kind == FeeKind.FLAT_INDEMNITY:
        cap = flat_indemnity_cap(balance_minor)
        left = cap - indemnity_charged_minor
        if left <= 0:
            return FeeDecision(0, f"indemnity already charged up to the cap {_euros(cap)}")
        return FeeDecision(
            left,
            f"flat indemnity: cap {_euros(cap)} on {_euros(balance_minor)}, "
            f"{_euros(indemnity_charged_minor)} already charged",
        )

    # Late interest runs from the first day fees are allowed, on today's balance: a
    # balance that went down by part-payments makes this an underestimate, never more.
    days = (today - wait_end).days
    rate = config.reference_rate_percent + _INTEREST_MARGIN
    total = max_late_interest_minor(balance_minor, days, config.reference_rate_percent)
    left = total - interest_charged_minor
    if total <= 0:
        return FeeDecision(0, f"no late interest accrued yet: it runs from {wait_end.isoformat()}")
    if left <= 0:
        return FeeDecision(0, f"late interest already charged up to {_euros(total)}")
    return FeeDecision(
        left,
        f"late interest: {rate} % a year over {days} days on {_euros(balance_minor)}, "
        f"{_euros(interest_charged_minor)} already charged",
    )
