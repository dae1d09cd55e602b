"""Features of every debtor of a creditor, from columns the store reads in bulk.

The store hands over one array per column: per invoice (owner row, amounts, dates as day
numbers, how many payments and when the last one arrived) and per debtor (contact points,
language, birth year). Aggregation per debtor is `np.bincount` and friends, so a million
debtors take seconds, not one query each. Nothing here touches a database.

Dates: days late compare the *local* date of the last payment (in the creditor's time
zone) with the due date, as a person reading the statement would. SQLite has no time
zones, so payment instants come back as UTC seconds and numpy shifts them by the zone's
offset of that day (exact except within the hour of a daylight-saving change at night).

Never special-category data: no health, no vulnerability flag — vulnerability changes
treatment separately and must not leak into a persona.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import phonenumbers

from parcours.domain.events import EventType

__all__ = [
    "ENGAGEMENT_EVENTS",
    "FEATURES",
    "FEATURE_INDEX",
    "DebtorColumns",
    "Feature",
    "FeatureMatrix",
    "InvoiceColumns",
    "build_features",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Unit = Literal["share", "days", "euros", "count", "years", "flag"]


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    label: str  # words a strategist understands
    unit: Unit
    log: bool = False  # the model sees log1p(value): days, amounts and counts are skewed

    def format(self, value: float) -> str:
        """The value in its unit, e.g. '75 %', '12 days', '€1,250.00', 'yes'."""
        if self.unit == "share":
            return f"{value * 100:.0f} %"
        if self.unit == "flag":
            return "yes" if value >= 0.5 else "no"
        if self.unit == "euros":
            return f"€{value:,.2f}"
        if self.unit == "days":
            return f"{value:.0f} days"
        if self.unit == "years":
            return f"{value:.0f} years"
        return f"{value:.0f}"

    def describe(self, value: float) -> str:
        """The feature and its value in words, e.g. 'share paid late: 75 %'."""
        return f"{self.label}: {self.format(value)}"


FEATURES: Final[tuple[Feature, ...]] = (
    Feature("invoices", "invoices on record", "count", log=True),
    Feature("invoices_due", "invoices past their due date or settled", "count", log=True),
    Feature("late_share", "share of those paid late or still unpaid", "share"),
    Feature("mean_days_late", "average days late", "days", log=True),
    Feature("max_days_late", "longest delay", "days", log=True),
    Feature("paid_before_reminder_share", "share paid by the due date", "share"),
    Feature("paid_early_share", "share paid 3 or more days before the due date", "share"),
    Feature("partial_share", "share of invoices partly paid", "share"),
    Feature("instalment_share", "share of paid invoices settled in several payments", "share"),
    Feature("long_unpaid_share", "share of invoices unpaid 150+ days after due", "share"),
    Feature("open_invoices", "open invoices", "count", log=True),
    Feature("overdue_invoices", "overdue invoices", "count", log=True),
    Feature("open_balance", "open balance", "euros", log=True),
    Feature("billed_total", "total billed", "euros", log=True),
    Feature("oldest_overdue_days", "days since the oldest unpaid due date", "days", log=True),
    Feature("tenure_days", "customer for", "days", log=True),
    Feature("has_email", "has an e-mail address", "flag"),
    Feature("has_mobile", "has a mobile number", "flag"),
    Feature("has_address", "has a postal address", "flag"),
    Feature("lang_fr", "speaks French", "flag"),
    Feature("lang_nl", "speaks Dutch", "flag"),
    Feature("lang_en", "speaks English", "flag"),
    Feature("age", "age", "years"),
    Feature("age_known", "birth year known", "flag"),
    Feature("age_under_30", "younger than 30", "flag"),
    Feature("age_30_to_55", "aged 30 to 55", "flag"),
    Feature("age_over_55", "older than 55", "flag"),
    Feature("engagement_events", "opens, clicks and replies to our messages", "count", log=True),
)
FEATURE_INDEX: Final = {f.name: i for i, f in enumerate(FEATURES)}

# Event types that show a debtor engaging with our messages.
ENGAGEMENT_EVENTS: Final = tuple(
    t.value
    for t in (EventType.MESSAGE_OPENED, EventType.MESSAGE_CLICKED, EventType.MESSAGE_REPLIED)
)
# Invoices due this long ago and still open count as long unpaid.
LONG_UNPAID_DAYS: Final = 150
EARLY_DAYS: Final = 3
_EPOCH: Final = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class FeatureMatrix:
    """One row per debtor: ids in storage form, refs, flags and the feature values."""

    debtor_keys: list[Any]  # storage-form ids (bytes or str), opaque here
    refs: list[str]
    objected: npt.NDArray[np.bool_]
    values: F64  # shape (debtors, len(FEATURES))

    def __len__(self) -> int:
        return len(self.refs)

    def column(self, name: str) -> F64:
        return self.values[:, FEATURE_INDEX[name]]


def _local_days(seconds: I64, zone: zoneinfo.ZoneInfo) -> I64:
    """Local calendar day numbers of UTC instants, using each day's offset at noon.

    0 means "no payment" and maps to day 0 without consulting the time zone.
    """
    paid = seconds != 0
    if not paid.any():
        return np.zeros_like(seconds)
    utc_days = seconds // 86400
    first, last = int(utc_days[paid].min()), int(utc_days[paid].max())
    offsets = np.array(
        [
            _offset_seconds(_EPOCH + dt.timedelta(days=day), zone)
            for day in range(first - 1, last + 2)
        ],
        dtype=np.int64,
    )
    positions = np.where(paid, utc_days - first + 1, 0)
    result: I64 = np.where(paid, (seconds + offsets[positions]) // 86400, 0)
    return result


def _offset_seconds(day: dt.date, zone: zoneinfo.ZoneInfo) -> int:
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
    offset = noon.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


_MOBILE_PREFIXES: dict[str, bool] = {}


def is_mobile(number: str | None) -> bool:
    """Whether an E.164 number is a mobile (SMS-capable) one, per libphonenumber.

    Classified once per 7-character prefix and length (e.g. +324680, 12 characters): the
    number type follows from them, and a million numbers share a few hundred of them.
    """
    if not number:
        return False
    prefix = f"{number[:7]}/{len(number)}"  # some plans tell mobiles apart by length too
    known = _MOBILE_PREFIXES.get(prefix)
    if known is None:
        try:
            kind = phonenumbers.number_type(phonenumbers.parse(number))
        except phonenumbers.NumberParseException:
            return False
        known = kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )
        _MOBILE_PREFIXES[prefix] = known
    return known


class DebtorColumns(NamedTuple):
    """Per debtor, in the order of the feature matrix's rows."""

    languages: Sequence[str]
    has_email: Sequence[bool]
    phones: Sequence[str | None]
    has_address: Sequence[bool]
    birth_years: Sequence[int | None]
    engagement: F64  # engagement events per debtor


class InvoiceColumns(NamedTuple):
    """Per invoice; `owner` is the row of its debtor in the feature matrix."""

    owner: I64
    amount: I64  # minor units
    paid: I64
    issue: I64  # days since 1970-01-01
    due: I64
    payments: I64  # number of payments booked
    last_paid: I64  # UTC seconds of the last payment (0 when none)


def build_features(
    debtors: DebtorColumns, invoices: InvoiceColumns, today: dt.date, zone: str
) -> F64:
    """The feature matrix: one row per debtor, columns in `FEATURES` order."""
    n = len(debtors.languages)
    values = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if n == 0:
        return values

    def put(name: str, column: npt.ArrayLike) -> None:
        values[:, FEATURE_INDEX[name]] = column

    _invoice_features(invoices, n, today, zone, put)
    language = np.array(debtors.languages)
    put("lang_fr", language == "fr")
    put("lang_nl", language == "nl")
    put("lang_en", language == "en")
    put("has_email", np.array(debtors.has_email, dtype=bool))
    put("has_mobile", np.fromiter((is_mobile(p) for p in debtors.phones), dtype=bool, count=n))
    put("has_address", np.array(debtors.has_address, dtype=bool))
    years = np.array([y if y is not None else -1 for y in debtors.birth_years], dtype=np.int64)
    known = years > 0
    age = np.where(known, today.year - years, 0).astype(np.float64)
    median = float(np.median(age[known])) if known.any() else 45.0
    age = np.where(known, age, median)
    put("age", age)
    put("age_known", known)
    put("age_under_30", known & (age < 30))
    put("age_30_to_55", known & (age >= 30) & (age <= 55))
    put("age_over_55", known & (age > 55))
    put("engagement_events", debtors.engagement)
    return values


def _invoice_features(
    invoices: InvoiceColumns,
    n: int,
    today: dt.date,
    zone: str,
    put: Callable[[str, npt.ArrayLike], None],
) -> None:
    owner, amount, paid, issue, due, payments, last_paid = invoices
    if owner.size == 0:
        return
    paid_day = _local_days(last_paid, zoneinfo.ZoneInfo(zone))

    today_n = (today - _EPOCH).days
    is_open = paid < amount
    settled = ~is_open
    past_due = due < today_n
    assessed = past_due | settled
    late_days = np.where(
        settled, np.maximum(paid_day - due, 0), np.where(past_due, today_n - due, 0)
    )
    late = assessed & (late_days > 0)
    overdue = is_open & past_due

    def total(weights: npt.ArrayLike) -> F64:
        sums: F64 = np.bincount(
            owner, weights=np.asarray(weights, dtype=np.float64), minlength=n
        ).astype(np.float64)
        return sums

    def share(part: F64, whole: F64) -> F64:
        return np.divide(part, whole, out=np.zeros(n), where=whole > 0)

    count = total(np.ones(owner.size))
    n_assessed = total(assessed)
    put("invoices", count)
    put("invoices_due", n_assessed)
    put("late_share", share(total(late), n_assessed))
    put("mean_days_late", share(total(np.where(assessed, late_days, 0)), n_assessed))
    put("max_days_late", _group_max(owner, np.where(assessed, late_days, 0), n))
    put("paid_before_reminder_share", share(total(settled & (paid_day <= due)), n_assessed))
    put("paid_early_share", share(total(settled & (paid_day <= due - EARLY_DAYS)), n_assessed))
    put("partial_share", share(total(is_open & (paid > 0)), count))
    put("instalment_share", share(total(settled & (payments >= 2)), total(settled)))
    put("long_unpaid_share", share(total(is_open & (due < today_n - LONG_UNPAID_DAYS)), count))
    put("open_invoices", total(is_open))
    put("overdue_invoices", total(overdue))
    put("open_balance", total(np.where(is_open, amount - paid, 0)) / 100)
    put("billed_total", total(amount) / 100)
    put("oldest_overdue_days", _group_max(owner, np.where(overdue, today_n - due, 0), n))
    first_issue = np.full(n, today_n, dtype=np.int64)
    np.minimum.at(first_issue, owner, issue)
    put("tenure_days", np.maximum(today_n - first_issue, 0))


def _group_max(owner: I64, values: I64, n: int) -> F64:
    out = np.zeros(n, dtype=np.int64)
    np.maximum.at(out, owner, values)
    result: F64 = out.astype(np.float64)
    return result
