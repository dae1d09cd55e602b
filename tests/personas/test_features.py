"""Debtor features from invoice and debtor columns: payment behaviour, dates, contact, age."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.personas.features import (
    FEATURE_INDEX,
    FEATURES,
    DebtorColumns,
    InvoiceColumns,
    _local_days,
    build_features,
    is_mobile,
)

TODAY = dt.date(2026, 12, 1)
ZONE = "Europe/Brussels"
BRUSSELS = zoneinfo.ZoneInfo(ZONE)
EPOCH = dt.date(1970, 1, 1)
INVOICE_FEATURES = FEATURES[: FEATURE_INDEX["tenure_days"] + 1]
SHARES = [f.name for f in FEATURES if f.unit == "share"]
NON_NEGATIVE = [f.name for f in FEATURES if f.unit in ("count", "days", "euros", "years")]


def day(date: dt.date) -> int:
    return (date - EPOCH).days


def seconds(at: dt.datetime) -> int:
    return int(at.timestamp())


class Invoice(NamedTuple):
    owner: int
    amount: int
    paid: int
    issue: int
    due: int
    payments: int
    last_paid: int


def invoice(
    *,
    owner: int = 0,
    amount: int = 100_00,
    paid: int | None = None,
    due: dt.date,
    issued_days_before_due: int = 30,
    paid_at: dt.datetime | None = None,
    payments: int | None = None,
) -> Invoice:
    """One invoice; paid in full at `paid_at` unless `paid` says otherwise, open without."""
    if paid is None:
        paid = amount if paid_at is not None else 0
    if payments is None:
        payments = 1 if paid_at is not None else 0
    return Invoice(
        owner,
        amount,
        paid,
        day(due) - issued_days_before_due,
        day(due),
        payments,
        seconds(paid_at) if paid_at is not None else 0,
    )


def invoice_columns(invoices: Sequence[Invoice]) -> InvoiceColumns:
    columns = [np.array(c, dtype=np.int64) for c in zip(*invoices, strict=True)] if invoices else []
    if not columns:
        columns = [np.zeros(0, dtype=np.int64) for _ in Invoice._fields]
    return InvoiceColumns(*columns)


def debtor_columns(
    n: int,
    *,
    languages: Sequence[str] | None = None,
    has_email: Sequence[bool] | None = None,
    phones: Sequence[str | None] | None = None,
    birth_years: Sequence[int | None] | None = None,
) -> DebtorColumns:
    return DebtorColumns(
        languages=languages or ["fr"] * n,
        has_email=has_email or [True] * n,
        phones=phones or [None] * n,
        has_address=[True] * n,
        birth_years=birth_years or [1980] * n,
        engagement=np.zeros(n),
    )


def features(
    invoices: Sequence[Invoice], *, debtors: int = 1, today: dt.date = TODAY
) -> list[dict[str, float]]:
    """Feature rows as dicts by feature name, one per debtor."""
    values = build_features(debtor_columns(debtors), invoice_columns(invoices), today, ZONE)
    assert values.shape == (debtors, len(FEATURES))
    return [{f.name: float(row[i]) for i, f in enumerate(FEATURES)} for row in values]


def at(date: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(date.year, date.month, date.day, hour, minute, tzinfo=dt.UTC)


DUE = dt.date(2026, 10, 15)


# -- payment behaviour -----------------------------------------------------------------------


def test_a_debtor_paying_every_invoice_early_is_never_late() -> None:
    dues = [DUE - dt.timedelta(days=30 * k) for k in range(3)]
    (row,) = features([invoice(due=d, paid_at=at(d - dt.timedelta(days=5), 10)) for d in dues])
    assert row["invoices"] == row["invoices_due"] == 3
    assert row["late_share"] == 0
    assert row["mean_days_late"] == row["max_days_late"] == 0
    assert row["paid_early_share"] == 1
    assert row["paid_before_reminder_share"] == 1
    assert row["open_invoices"] == row["open_balance"] == 0
    assert row["billed_total"] == 300


def test_paying_on_the_due_date_is_on_time_but_not_early() -> None:
    (row,) = features([invoice(due=DUE, paid_at=at(DUE, 10))])
    assert row["late_share"] == 0
    assert row["paid_before_reminder_share"] == 1
    assert row["paid_early_share"] == 0


def test_a_debtor_paying_ten_days_late() -> None:
    (row,) = features([invoice(due=DUE, paid_at=at(DUE + dt.timedelta(days=10), 10))])
    assert row["late_share"] == 1
    assert row["mean_days_late"] == row["max_days_late"] == 10
    assert row["paid_before_reminder_share"] == 0
    assert row["paid_early_share"] == 0
    assert row["overdue_invoices"] == 0


def test_mean_days_late_averages_over_every_assessed_invoice() -> None:
    (row,) = features(
        [
            invoice(due=DUE, paid_at=at(DUE + dt.timedelta(days=12), 10)),
            invoice(due=DUE - dt.timedelta(days=40), paid_at=at(DUE - dt.timedelta(days=40), 9)),
        ]
    )
    assert row["late_share"] == 0.5
    assert row["mean_days_late"] == 6
    assert row["max_days_late"] == 12


def test_an_open_overdue_invoice_is_late_up_to_today() -> None:
    due = TODAY - dt.timedelta(days=20)
    (row,) = features([invoice(due=due, amount=250_00)])
    assert row["late_share"] == 1
    assert row["mean_days_late"] == row["max_days_late"] == 20
    assert row["oldest_overdue_days"] == 20
    assert row["overdue_invoices"] == row["open_invoices"] == 1
    assert row["open_balance"] == 250
    assert row["paid_before_reminder_share"] == 0


def test_an_open_invoice_not_yet_due_is_not_assessed() -> None:
    (row,) = features([invoice(due=TODAY + dt.timedelta(days=10))])
    assert row["invoices"] == 1
    assert row["invoices_due"] == 0
    assert row["late_share"] == row["mean_days_late"] == 0
    assert row["open_invoices"] == 1
    assert row["overdue_invoices"] == row["oldest_overdue_days"] == 0


def test_oldest_overdue_days_counts_from_the_oldest_open_due_date() -> None:
    (row,) = features(
        [
            invoice(due=TODAY - dt.timedelta(days=5)),
            invoice(due=TODAY - dt.timedelta(days=200)),
            invoice(due=TODAY - dt.timedelta(days=400), paid_at=at(TODAY, 9)),
        ]
    )
    assert row["oldest_overdue_days"] == 200
    assert row["overdue_invoices"] == 2
    assert row["long_unpaid_share"] == pytest.approx(1 / 3)
    assert row["max_days_late"] == 400


def test_a_partial_payment_counts_as_partial_and_leaves_an_open_balance() -> None:
    (row,) = features(
        [
            invoice(due=DUE, amount=100_00, paid=40_00, paid_at=at(DUE, 9)),
            invoice(due=DUE, amount=50_00, paid_at=at(DUE, 9)),
        ]
    )
    assert row["partial_share"] == 0.5
    assert row["open_balance"] == 60
    assert row["open_invoices"] == 1
    assert row["billed_total"] == 150


def test_a_settled_invoice_paid_in_two_payments_is_an_instalment() -> None:
    (row,) = features(
        [
            invoice(due=DUE, paid_at=at(DUE, 9), payments=2),
            invoice(due=DUE, paid_at=at(DUE, 9)),
            invoice(due=TODAY + dt.timedelta(days=5), paid=10_00, payments=1, paid_at=at(DUE, 9)),
        ]
    )
    # Only settled invoices count: the open one paid in part is a partial payment.
    assert row["instalment_share"] == 0.5
    assert row["partial_share"] == pytest.approx(1 / 3)


def test_open_balance_is_in_euros_not_cents() -> None:
    (row,) = features([invoice(due=TODAY + dt.timedelta(days=3), amount=123_45)])
    assert row["open_balance"] == pytest.approx(123.45)
    assert row["billed_total"] == pytest.approx(123.45)


def test_tenure_counts_from_the_first_issue_date() -> None:
    (row,) = features(
        [
            invoice(due=TODAY - dt.timedelta(days=370), paid_at=at(TODAY, 9)),
            invoice(due=TODAY - dt.timedelta(days=70), paid_at=at(TODAY, 9)),
        ]
    )
    assert row["tenure_days"] == 400  # issued 30 days before the first due date


def test_invoices_of_other_debtors_do_not_leak() -> None:
    mine = [invoice(owner=0, due=DUE, paid_at=at(DUE - dt.timedelta(days=5), 9))]
    theirs = [
        invoice(owner=1, due=TODAY - dt.timedelta(days=300), amount=999_00),
        invoice(owner=2, due=DUE, paid_at=at(DUE + dt.timedelta(days=40), 9), payments=3),
    ]
    alone = features(mine, debtors=3)
    mixed = features([theirs[0], *mine, theirs[1]], debtors=3)
    assert mixed[0] == alone[0]
    assert mixed[1]["open_balance"] == 999
    assert mixed[2]["max_days_late"] == 40
    assert mixed[2]["instalment_share"] == 1


def test_a_debtor_without_invoices_has_zero_invoice_features() -> None:
    rows = features([invoice(owner=1, due=TODAY - dt.timedelta(days=30))], debtors=2)
    assert all(rows[0][f.name] == 0 for f in INVOICE_FEATURES)
    assert rows[1]["invoices"] == 1


def test_no_invoices_at_all_gives_zero_invoice_features() -> None:
    rows = features([], debtors=2)
    assert all(row[f.name] == 0 for row in rows for f in INVOICE_FEATURES)
    assert rows[0]["age"] == TODAY.year - 1980


def test_no_debtors_give_an_empty_matrix() -> None:
    values = build_features(debtor_columns(0), invoice_columns([]), TODAY, ZONE)
    assert values.shape == (0, len(FEATURES))


# -- local dates -----------------------------------------------------------------------------

WINTER_DUE = dt.date(2026, 1, 15)


def test_a_payment_at_2330_utc_in_winter_is_the_next_day_in_brussels() -> None:
    (row,) = features([invoice(due=WINTER_DUE, paid_at=at(WINTER_DUE, 23, 30))])
    assert row["late_share"] == 1
    assert row["mean_days_late"] == 1
    assert row["paid_before_reminder_share"] == 0


def test_a_payment_at_2230_utc_in_winter_is_on_the_due_date_in_brussels() -> None:
    (row,) = features([invoice(due=WINTER_DUE, paid_at=at(WINTER_DUE, 22, 30))])
    assert row["late_share"] == 0
    assert row["paid_before_reminder_share"] == 1


def test_a_payment_at_2230_utc_in_summer_is_the_next_day_in_brussels() -> None:
    summer = dt.date(2026, 7, 15)
    (row,) = features([invoice(due=summer, paid_at=at(summer, 22, 30))])
    assert row["mean_days_late"] == 1


@pytest.mark.parametrize(
    ("instant", "local_date"),
    [
        # Spring forward on 29 March 2026 at 01:00 UTC.
        (at(dt.date(2026, 3, 28), 22, 30), dt.date(2026, 3, 28)),  # 23:30 CET
        (at(dt.date(2026, 3, 28), 23, 30), dt.date(2026, 3, 29)),  # 00:30 CET
        (at(dt.date(2026, 3, 29), 0, 30), dt.date(2026, 3, 29)),  # 01:30 CET, the change hour
        (at(dt.date(2026, 3, 29), 21, 30), dt.date(2026, 3, 29)),  # 23:30 CEST
        (at(dt.date(2026, 3, 29), 22, 30), dt.date(2026, 3, 30)),  # 00:30 CEST
        # Fall back on 25 October 2026 at 01:00 UTC.
        (at(dt.date(2026, 10, 24), 21, 30), dt.date(2026, 10, 24)),  # 23:30 CEST
        (at(dt.date(2026, 10, 24), 22, 30), dt.date(2026, 10, 25)),  # 00:30 CEST
        (at(dt.date(2026, 10, 25), 0, 30), dt.date(2026, 10, 25)),  # 02:30 CEST, the change hour
        (at(dt.date(2026, 10, 25), 22, 30), dt.date(2026, 10, 25)),  # 23:30 CET
        (at(dt.date(2026, 10, 25), 23, 30), dt.date(2026, 10, 26)),  # 00:30 CET
    ],
)
def test_local_days_follow_brussels_across_daylight_saving_changes(
    instant: dt.datetime, local_date: dt.date
) -> None:
    (local,) = _local_days(np.array([seconds(instant)], dtype=np.int64), BRUSSELS).tolist()
    assert local == day(local_date)


@given(
    st.lists(
        st.datetimes(
            min_value=dt.datetime(2020, 1, 1),  # noqa: DTZ001 — hypothesis adds the zone
            max_value=dt.datetime(2030, 1, 1),  # noqa: DTZ001
            timezones=st.just(dt.UTC),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_local_days_equal_the_calendar_date_in_brussels(instants: list[dt.datetime]) -> None:
    """Brussels changes its clock at 01:00 UTC, far from midnight, so the day is exact."""
    raw = np.array([seconds(i) for i in instants], dtype=np.int64)
    expected = [day(i.astimezone(BRUSSELS).date()) for i in instants]
    assert _local_days(raw, BRUSSELS).tolist() == expected


def test_local_days_of_nothing_is_nothing() -> None:
    assert _local_days(np.zeros(0, dtype=np.int64), BRUSSELS).size == 0


# -- contact points, language and age -------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "mobile"),
    [
        ("+32470123456", True),
        ("+32486112233", True),
        ("+3222345678", False),  # Brussels landline
        ("+3242223344", False),  # Liège landline: 04 like mobiles, but shorter
        ("+447911123456", True),
        ("+442071234567", False),
        (None, False),
        ("", False),
        ("not a number", False),
    ],
)
def test_is_mobile_tells_mobiles_from_landlines(number: str | None, mobile: bool) -> None:
    assert is_mobile(number) is mobile


def test_has_mobile_language_and_email_come_from_the_debtor_columns() -> None:
    debtors = debtor_columns(
        3,
        languages=["fr", "nl", "en"],
        has_email=[True, False, True],
        phones=["+32470123456", "+3222345678", None],
    )
    values = build_features(debtors, invoice_columns([]), TODAY, ZONE)
    column = {name: values[:, i].tolist() for name, i in FEATURE_INDEX.items()}
    assert column["has_mobile"] == [1, 0, 0]
    assert column["has_email"] == [1, 0, 1]
    assert column["lang_fr"] == [1, 0, 0]
    assert column["lang_nl"] == [0, 1, 0]
    assert column["lang_en"] == [0, 0, 1]


def test_an_unknown_birth_year_gets_the_median_age_of_the_known_ones() -> None:
    debtors = debtor_columns(4, birth_years=[1980, None, 2000, 1950])
    values = build_features(debtors, invoice_columns([]), TODAY, ZONE)
    age = values[:, FEATURE_INDEX["age"]].tolist()
    known = values[:, FEATURE_INDEX["age_known"]].tolist()
    assert age == [46, 46, 26, 76]
    assert known == [1, 0, 1, 1]
    bands = values[1, [FEATURE_INDEX[b] for b in ("age_under_30", "age_30_to_55", "age_over_55")]]
    assert bands.tolist() == [0, 0, 0]


@given(st.lists(st.one_of(st.none(), st.integers(1900, 2010)), min_size=1, max_size=30))
def test_age_bands_are_mutually_exclusive_for_known_ages(years: list[int | None]) -> None:
    debtors = debtor_columns(len(years), birth_years=years)
    values = build_features(debtors, invoice_columns([]), TODAY, ZONE)
    bands = values[:, [FEATURE_INDEX[b] for b in ("age_under_30", "age_30_to_55", "age_over_55")]]
    known = values[:, FEATURE_INDEX["age_known"]]
    assert known.tolist() == [float(y is not None) for y in years]
    assert bands.sum(axis=1).tolist() == known.tolist()
    for row, year in zip(values, years, strict=True):
        if year is not None:
            age = TODAY.year - year
            assert row[FEATURE_INDEX["age"]] == age
            assert row[FEATURE_INDEX["age_under_30"]] == (age < 30)
            assert row[FEATURE_INDEX["age_over_55"]] == (age > 55)


# -- invariants ------------------------------------------------------------------------------

DAYS_AROUND_TODAY = st.integers(day(TODAY) - 800, day(TODAY) + 60)


@st.composite
def invoice_tables(draw: st.DrawFn) -> tuple[int, list[Invoice]]:
    debtors = draw(st.integers(1, 6))
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        amount = draw(st.integers(1, 10**7))
        paid = draw(st.one_of(st.just(0), st.just(amount), st.integers(0, amount * 2)))
        due = draw(DAYS_AROUND_TODAY)
        paid_day = draw(st.integers(due - 60, day(TODAY)))
        rows.append(
            Invoice(
                owner=draw(st.integers(0, debtors - 1)),
                amount=amount,
                paid=paid,
                issue=due - draw(st.integers(0, 90)),
                due=due,
                payments=draw(st.integers(1, 6)) if paid else 0,
                last_paid=paid_day * 86400 + draw(st.integers(0, 86399)) if paid else 0,
            )
        )
    return debtors, rows


@given(invoice_tables())
def test_shares_are_within_zero_and_one_and_counts_are_not_negative(
    table: tuple[int, list[Invoice]],
) -> None:
    debtors, rows = table
    values = build_features(debtor_columns(debtors), invoice_columns(rows), TODAY, ZONE)
    assert np.isfinite(values).all()
    for name in SHARES:
        column = values[:, FEATURE_INDEX[name]]
        assert ((column >= 0) & (column <= 1)).all(), name
    for name in NON_NEGATIVE:
        assert (values[:, FEATURE_INDEX[name]] >= 0).all(), name
    column = {name: values[:, i] for name, i in FEATURE_INDEX.items()}
    assert (column["invoices_due"] <= column["invoices"]).all()
    assert (column["overdue_invoices"] <= column["open_invoices"]).all()
    assert (column["mean_days_late"] <= column["max_days_late"] + 1e-9).all()
    assert (column["paid_early_share"] <= column["paid_before_reminder_share"]).all()
    assert column["invoices"].sum() == len(rows)
