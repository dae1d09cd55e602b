"""Arrangements: plan schedules within the creditor's limits, promise and plan states over time."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.domain.arrangements import (
    ArrangementRules,
    Frequency,
    Instalment,
    InvalidArrangementRules,
    InvalidPlan,
    InvalidPromise,
    PlanLimits,
    PlanOutsideLimits,
    PlanStatus,
    add_months,
    plan_schedule,
    plan_state,
    promise_kept_threshold,
    promise_state,
    propose_plans,
    validate_promise,
)
from parcours.domain.errors import DomainError

D = dt.date
DAY = dt.timedelta(days=1)
LIMITS = PlanLimits()
RULES = ArrangementRules()

days = st.dates(min_value=D(2000, 1, 1), max_value=D(2090, 12, 31))
frequencies: st.SearchStrategy[Frequency] = st.sampled_from(["month", "week", "fortnight"])
limits_st = st.builds(
    PlanLimits,
    max_months=st.integers(1, 24),
    min_instalment_minor=st.integers(1, 10_000),
    max_instalments=st.integers(1, 24),
    first_within_days=st.integers(0, 60),
    grace_days=st.integers(0, 10),
    missed_to_break=st.integers(1, 4),
    break_after_days=st.integers(0, 60),
)
shares = st.sampled_from([1.0, 0.99, 0.95, 0.9, 0.8, 0.5, 0.07, 0.29, 0.57, 1 / 3])


def oracle_add_months(day: D, months: int) -> D:
    """Month by month, clamped with the standard library's calendar (not the code under test)."""
    year, month = day.year, day.month
    for _ in range(months):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return D(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def oracle_dates(first_on: D, count: int, every: Frequency) -> list[D]:
    if every == "month":
        return [oracle_add_months(first_on, k) for k in range(count)]
    step = 7 if every == "week" else 14
    return [first_on + dt.timedelta(days=step * k) for k in range(count)]


def make_instalments(*rows: tuple[str, int]) -> list[Instalment]:
    return [Instalment(n, D.fromisoformat(day), amount) for n, (day, amount) in enumerate(rows, 1)]


# -- limits and rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_months": 0}, "max_months"),
        ({"min_instalment_minor": 0}, "min_instalment_minor"),
        ({"max_instalments": 0}, "max_instalments"),
        ({"first_within_days": -1}, "first_within_days"),
        ({"grace_days": -1}, "grace_days"),
        ({"missed_to_break": 0}, "missed_to_break"),
        ({"break_after_days": -1}, "break_after_days"),
        ({"max_months": True}, "max_months"),
        ({"grace_days": 2.5}, "grace_days"),
    ],
)
def test_plan_limits_reject_unusable_values_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArrangementRules, match=f"plan.{field}") as caught:
        PlanLimits(**kwargs)
    assert caught.value.field == f"plan.{field}"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"promise_grace_days": -1}, "promise_grace_days"),
        ({"promise_max_days": -1}, "promise_max_days"),
        ({"promise_kept_share": 0.0}, "promise_kept_share"),
        ({"promise_kept_share": 1.01}, "promise_kept_share"),
        ({"promise_kept_share": float("nan")}, "promise_kept_share"),
        ({"promise_kept_share": True}, "promise_kept_share"),
        ({"promise_kept_share": "0.9"}, "promise_kept_share"),
        ({"plan": {"max_months": 6}}, "plan"),
    ],
)
def test_arrangement_rules_reject_unusable_values_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArrangementRules, match=f"rules.{field}"):
        ArrangementRules(**kwargs)


def test_defaults_are_the_documented_ones() -> None:
    assert (LIMITS.max_months, LIMITS.min_instalment_minor, LIMITS.max_instalments) == (
        12,
        2500,
        12,
    )
    assert (LIMITS.first_within_days, LIMITS.grace_days) == (30, 5)
    assert (LIMITS.missed_to_break, LIMITS.break_after_days) == (2, 30)
    assert (RULES.promise_grace_days, RULES.promise_max_days) == (3, 30)
    assert RULES.promise_kept_share == 1.0
    assert RULES.plan == LIMITS
    assert ArrangementRules(promise_kept_share=1) == ArrangementRules()


def test_arrangement_errors_are_domain_errors_that_survive_pickling() -> None:
    """Worker processes send errors back pickled; the field must come along."""
    error = PlanOutsideLimits("max_months", "too long")
    assert isinstance(error, DomainError)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (type(copy), copy.field, str(copy)) == (PlanOutsideLimits, "max_months", str(error))


def test_instalment_rejects_a_zero_number_or_amount() -> None:
    with pytest.raises(InvalidPlan, match="number"):
        Instalment(0, D(2026, 1, 1), 100)
    with pytest.raises(InvalidPlan, match="amount_minor: instalment 2"):
        Instalment(2, D(2026, 1, 1), 0)


# -- schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_on", "expected"),
    [
        (D(2024, 1, 31), ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]),
        (D(2025, 1, 31), ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31"]),
        (D(2025, 1, 30), ["2025-01-30", "2025-02-28", "2025-03-30", "2025-04-30", "2025-05-30"]),
        (D(2025, 11, 30), ["2025-11-30", "2025-12-30", "2026-01-30", "2026-02-28", "2026-03-30"]),
        (D(2025, 12, 31), ["2025-12-31", "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
        (D(2025, 8, 15), ["2025-08-15", "2025-09-15", "2025-10-15", "2025-11-15", "2025-12-15"]),
    ],
)
def test_monthly_dates_keep_the_day_of_month_clamped_to_the_month_end(
    first_on: D, expected: list[str]
) -> None:
    schedule = plan_schedule(500_00, 5, first_on, today=first_on, limits=LIMITS)
    assert [i.due_on.isoformat() for i in schedule] == expected


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2024, 2, 29), 12, D(2025, 2, 28)),
        (D(2024, 2, 29), 48, D(2028, 2, 29)),
        (D(2025, 3, 31), -1, D(2025, 2, 28)),
        (D(2025, 1, 15), -13, D(2023, 12, 15)),
        (D(2025, 5, 31), 0, D(2025, 5, 31)),
    ],
)
def test_add_months_clamps_forwards_and_backwards(day: D, months: int, expected: D) -> None:
    assert add_months(day, months) == expected


@given(day=days, months=st.integers(0, 240))
def test_add_months_agrees_with_the_calendar_module(day: D, months: int) -> None:
    assert add_months(day, months) == oracle_add_months(day, months)


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        ("week", ["2026-01-28", "2026-02-04", "2026-02-11", "2026-02-18"]),
        ("fortnight", ["2026-01-28", "2026-02-11", "2026-02-25", "2026-03-11"]),
    ],
)
def test_weekly_and_fortnightly_dates_are_7_and_14_days_apart(
    every: Frequency, expected: list[str]
) -> None:
    schedule = plan_schedule(
        400_00, 4, D(2026, 1, 28), today=D(2026, 1, 20), every=every, limits=LIMITS
    )
    assert [i.due_on.isoformat() for i in schedule] == expected


def test_the_remainder_goes_on_the_last_instalment() -> None:
    schedule = plan_schedule(100_00, 3, D(2026, 3, 1), today=D(2026, 3, 1), limits=LIMITS)
    assert [(i.number, i.amount_minor) for i in schedule] == [(1, 3333), (2, 3333), (3, 3334)]


@pytest.mark.parametrize(
    ("total", "count", "first_on", "every", "field"),
    [
        (1_000_00, 13, D(2026, 1, 10), "month", "max_instalments"),
        (1_000_00, 4, D(2026, 1, 9), "month", "first_on"),
        (1_000_00, 4, D(2026, 2, 10), "month", "first_within_days"),
        (99_99, 4, D(2026, 1, 10), "month", "min_instalment_minor"),
        (24_99, 1, D(2026, 1, 10), "month", "min_instalment_minor"),
        (1_000_00, 12, D(2026, 1, 10), "month", None),
        (1_000_00, 12, D(2026, 2, 9), "week", None),
        (1_000_00, 0, D(2026, 1, 10), "month", "count"),
        (0, 3, D(2026, 1, 10), "month", "total_minor"),
        (1_000_00, 3, D(2026, 1, 10), "day", "every"),
    ],
)
def test_plan_schedule_refuses_naming_the_rule(
    total: int, count: int, first_on: D, every: Any, field: str | None
) -> None:
    today = D(2026, 1, 10)
    if field is None:
        assert (
            len(plan_schedule(total, count, first_on, today=today, every=every, limits=LIMITS))
            == count
        )
        return
    with pytest.raises(InvalidPlan) as caught:
        plan_schedule(total, count, first_on, today=today, every=every, limits=LIMITS)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_plan_longer_than_max_months_is_refused() -> None:
    limits = PlanLimits(max_months=3, max_instalments=24)
    today = D(2026, 1, 31)
    assert len(plan_schedule(4000_00, 4, today, today=today, limits=limits)) == 4  # Jan..Apr
    with pytest.raises(PlanOutsideLimits, match="max_months: the last instalment on 2026-05-31"):
        plan_schedule(5000_00, 5, today, today=today, limits=limits)
    # 13 weeks end on Apr 25, within 3 months of Jan 31 (Apr 30); 14 weeks end on May 2.
    assert len(plan_schedule(1300_00, 13, today, today=today, every="week", limits=limits)) == 13
    with pytest.raises(PlanOutsideLimits, match="max_months: the last instalment on 2026-05-02"):
        plan_schedule(1400_00, 14, today, today=today, every="week", limits=limits)
    assert len(plan_schedule(700_00, 7, today, today=today, every="fortnight", limits=limits)) == 7
    with pytest.raises(PlanOutsideLimits, match="max_months"):
        plan_schedule(800_00, 8, today, today=today, every="fortnight", limits=limits)


@given(
    total=st.integers(1, 10**7),
    count=st.integers(1, 30),
    today=days,
    offset=st.integers(-5, 70),
    every=frequencies,
    limits=limits_st,
)
def test_plan_schedule_refuses_exactly_when_a_limit_is_broken(
    total: int, count: int, today: D, offset: int, every: Frequency, limits: PlanLimits
) -> None:
    first_on = today + dt.timedelta(days=offset)
    expected: str | None = None
    if count > limits.max_instalments:
        expected = "max_instalments"
    elif offset < 0:
        expected = "first_on"
    elif offset > limits.first_within_days:
        expected = "first_within_days"
    elif total // count < limits.min_instalment_minor:
        expected = "min_instalment_minor"
    elif oracle_dates(first_on, count, every)[-1] > oracle_add_months(first_on, limits.max_months):
        expected = "max_months"
    if expected is not None:
        with pytest.raises(PlanOutsideLimits) as caught:
            plan_schedule(total, count, first_on, today=today, every=every, limits=limits)
        assert caught.value.field == expected
        return
    schedule = plan_schedule(total, count, first_on, today=today, every=every, limits=limits)
    assert [i.due_on for i in schedule] == oracle_dates(first_on, count, every)


@st.composite
def fitting_plans(draw: st.DrawFn) -> tuple[int, int, D, D, Frequency, PlanLimits]:
    """Inputs that the limits accept: count, amount and dates drawn inside them."""
    limits = draw(limits_st)
    every = draw(frequencies)
    step = {"month": 31, "week": 7, "fortnight": 14}[every]
    # Any m months span at least 28·m days, so this many instalments always fit.
    longest = min(limits.max_instalments, 1 + 28 * limits.max_months // step)
    if every == "month":
        longest = min(limits.max_instalments, limits.max_months + 1)
    count = draw(st.integers(1, longest))
    total = draw(st.integers(count * limits.min_instalment_minor, 10**8))
    today = draw(days)
    first_on = today + dt.timedelta(days=draw(st.integers(0, limits.first_within_days)))
    return total, count, first_on, today, every, limits


@given(fitting_plans())
def test_a_schedule_within_the_limits_sums_to_the_total_in_increasing_dates(
    plan: tuple[int, int, D, D, Frequency, PlanLimits],
) -> None:
    total, count, first_on, today, every, limits = plan
    schedule = plan_schedule(total, count, first_on, today=today, every=every, limits=limits)
    amounts = [i.amount_minor for i in schedule]
    dates = [i.due_on for i in schedule]
    assert sum(amounts) == total
    assert [i.number for i in schedule] == list(range(1, count + 1))
    # Equal instalments; the last carries the remainder, less than one minor unit each.
    assert len(set(amounts[:-1])) <= 1
    assert 0 <= amounts[-1] - amounts[0] < count
    assert min(amounts) >= limits.min_instalment_minor  # the last one included
    assert dates[0] == first_on
    assert all(a < b for a, b in itertools.pairwise(dates))
    assert dates[-1] <= oracle_add_months(first_on, limits.max_months)


# -- proposals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "limits", "counts"),
    [
        (1_000_00, LIMITS, [2, 3, 6, 12]),
        (100_00, LIMITS, [2, 3, 4]),  # 4 x 25.00 is the longest the minimum allows
        (50_00, LIMITS, [2]),
        (49_99, LIMITS, []),  # not even two instalments of 25.00
        (1_000_00, PlanLimits(max_instalments=10), [2, 3, 6, 10]),
        (1_000_00, PlanLimits(max_months=4), [2, 3, 5]),
        (1_000_00, PlanLimits(max_instalments=1), []),
    ],
)
def test_propose_plans_offers_the_counts_that_fit(
    total: int, limits: PlanLimits, counts: list[int]
) -> None:
    today = D(2026, 5, 31)
    plans = propose_plans(total, today, limits)
    assert [len(p) for p in plans] == counts
    assert all(p[0].due_on == today for p in plans)


def test_propose_plans_starts_on_the_date_given() -> None:
    plans = propose_plans(600_00, D(2026, 5, 1), LIMITS, first_on=D(2026, 5, 15))
    assert {p[0].due_on for p in plans} == {D(2026, 5, 15)}
    with pytest.raises(PlanOutsideLimits, match="first_within_days"):
        propose_plans(600_00, D(2026, 5, 1), LIMITS, first_on=D(2026, 7, 1))


@given(total=st.integers(-10, 10**8), today=days, limits=limits_st)
def test_every_proposed_plan_is_valid_and_distinct(
    total: int, today: D, limits: PlanLimits
) -> None:
    plans = propose_plans(total, today, limits)
    counts = [len(p) for p in plans]
    assert counts == sorted(set(counts))
    for plan in plans:
        assert len(plan) >= 2
        assert plan == plan_schedule(total, len(plan), today, today=today, limits=limits)
    # The longest plan the limits allow is always among the offers.
    longest = min(limits.max_instalments, max(total, 0) // limits.min_instalment_minor)
    longest = min(longest, limits.max_months + 1)
    assert counts[-1:] == ([longest] if longest >= 2 else [])


# -- promises --------------------------------------------------------------------------------


def travel(start: D, end: D, state_on: Callable[[D], str]) -> list[tuple[str, str]]:
    """Move the clock a day at a time; keep each day the state changes."""
    changes: list[tuple[str, str]] = []
    day = start
    while day <= end:
        state = state_on(day)
        if not changes or changes[-1][1] != state:
            changes.append((day.isoformat(), state))
        day += DAY
    return changes


def paid_by(payments: dict[str, int]) -> Callable[[D], int]:
    def paid(day: D) -> int:
        return sum(amount for when, amount in payments.items() if D.fromisoformat(when) <= day)

    return paid


def test_a_promise_paid_early_is_kept_at_once() -> None:
    due_on = D(2026, 3, 20)
    paid = paid_by({"2026-03-12": 150_00})
    changes = travel(
        D(2026, 3, 10), D(2026, 4, 30), lambda d: promise_state(150_00, due_on, paid(d), d, RULES)
    )
    assert changes == [("2026-03-10", "pending"), ("2026-03-12", "kept")]


def test_an_unpaid_promise_breaks_only_after_the_grace_days() -> None:
    due_on = D(2026, 3, 20)
    changes = travel(
        D(2026, 3, 10), D(2026, 4, 30), lambda d: promise_state(150_00, due_on, 0, d, RULES)
    )
    assert changes == [("2026-03-10", "pending"), ("2026-03-24", "broken")]  # 20 + 3 grace


def test_a_promise_paid_within_the_grace_days_is_kept() -> None:
    due_on = D(2026, 3, 20)
    paid = paid_by({"2026-03-19": 50_00, "2026-03-23": 100_00})
    changes = travel(
        D(2026, 3, 10), D(2026, 4, 30), lambda d: promise_state(150_00, due_on, paid(d), d, RULES)
    )
    assert changes == [("2026-03-10", "pending"), ("2026-03-23", "kept")]


def test_a_partial_payment_keeps_the_promise_only_once_the_share_is_reached() -> None:
    rules = ArrangementRules(promise_kept_share=0.95)
    due_on = D(2026, 3, 20)
    short = paid_by({"2026-03-15": 94_99})
    assert travel(
        D(2026, 3, 10), D(2026, 4, 1), lambda d: promise_state(100_00, due_on, short(d), d, rules)
    ) == [
        ("2026-03-10", "pending"),
        ("2026-03-24", "broken"),
    ]
    enough = paid_by({"2026-03-15": 90_00, "2026-03-18": 5_00})
    assert travel(
        D(2026, 3, 10), D(2026, 4, 1), lambda d: promise_state(100_00, due_on, enough(d), d, rules)
    ) == [
        ("2026-03-10", "pending"),
        ("2026-03-18", "kept"),
    ]
    assert promise_kept_threshold(100_00, rules) == 95_00
    assert promise_kept_threshold(100_01, rules) == 95_01  # 9500.95 rounds up


def test_the_share_is_read_as_a_decimal_not_a_binary_float() -> None:
    """0.07 * 100 is 7.000000000000001 in floats; paying 7 must still keep the promise."""
    rules = ArrangementRules(promise_kept_share=0.07)
    assert promise_state(100, D(2026, 1, 1), 7, D(2026, 1, 1), rules) == "kept"
    assert promise_state(100, D(2026, 1, 1), 6, D(2026, 1, 1), rules) == "pending"


@given(
    amount=st.integers(1, 10**9),
    paid=st.integers(0, 10**9),
    share=shares,
    grace=st.integers(0, 10),
    due_on=days,
    offset=st.integers(-40, 40),
)
def test_promise_state_follows_its_definition(
    amount: int, paid: int, share: float, grace: int, due_on: D, offset: int
) -> None:
    rules = ArrangementRules(promise_grace_days=grace, promise_kept_share=share)
    today = due_on + dt.timedelta(days=offset)
    kept = paid >= Decimal(repr(share)) * amount
    expected = "kept" if kept else "broken" if offset > grace else "pending"
    assert promise_state(amount, due_on, paid, today, rules) == expected
    assert (paid >= promise_kept_threshold(amount, rules)) == kept


PROMISE_RANK = {"kept": 0, "pending": 1, "broken": 2}


@given(
    amount=st.integers(1, 10**6),
    paid=st.lists(st.integers(0, 10**6), min_size=2, max_size=2),
    offsets=st.lists(st.integers(-40, 40), min_size=2, max_size=2),
    share=shares,
    due_on=days,
)
def test_promise_state_never_improves_with_time_nor_worsens_with_money(
    amount: int, paid: list[int], offsets: list[int], share: float, due_on: D
) -> None:
    rules = ArrangementRules(promise_kept_share=share)
    less, more = sorted(paid)
    early, late = (due_on + dt.timedelta(days=o) for o in sorted(offsets))

    def rank(p: int, day: D) -> int:
        return PROMISE_RANK[promise_state(amount, due_on, p, day, rules)]

    assert rank(more, early) <= rank(less, early)
    assert rank(less, early) <= rank(less, late)


@pytest.mark.parametrize(
    ("amount", "due_on", "field", "words"),
    [
        (0, D(2026, 6, 10), "amount_minor", "must be positive"),
        (-5, D(2026, 6, 10), "amount_minor", "must be positive"),
        (300_01, D(2026, 6, 10), "amount_minor", "more than the balance"),
        (100_00, D(2026, 6, 9), "due_on", "in the past"),
        (100_00, D(2026, 7, 11), "due_on", "at the latest 2026-07-10"),
    ],
)
def test_validate_promise_names_the_field(amount: int, due_on: D, field: str, words: str) -> None:
    with pytest.raises(InvalidPromise, match=words) as caught:
        validate_promise(amount, due_on, D(2026, 6, 10), 300_00, RULES)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@given(
    amount=st.integers(-10, 10**6),
    balance=st.integers(-10, 10**6),
    offset=st.integers(-10, 60),
    max_days=st.integers(0, 45),
    today=days,
)
def test_validate_promise_accepts_exactly_the_allowed_promises(
    amount: int, balance: int, offset: int, max_days: int, today: D
) -> None:
    rules = ArrangementRules(promise_max_days=max_days)
    due_on = today + dt.timedelta(days=offset)
    allowed = 0 < amount <= balance and 0 <= offset <= max_days
    if allowed:
        validate_promise(amount, due_on, today, balance, rules)
    else:
        with pytest.raises(InvalidPromise):
            validate_promise(amount, due_on, today, balance, rules)


# -- plans over time -------------------------------------------------------------------------


def test_plan_clock_travel_missed_caught_up_then_broken_then_completed() -> None:
    plan = make_instalments(("2026-03-31", 100_00), ("2026-04-30", 100_00), ("2026-05-31", 100_00))
    paid = paid_by({"2026-03-31": 100_00, "2026-05-10": 100_00, "2026-07-05": 100_00})
    changes = travel(
        D(2026, 3, 25), D(2026, 8, 31), lambda d: plan_state(plan, paid(d), d, LIMITS).state
    )
    assert changes == [
        ("2026-03-25", "active"),
        ("2026-05-06", "missed"),  # Apr 30 + 5 grace days have passed
        ("2026-05-10", "active"),  # caught up
        ("2026-06-06", "missed"),
        ("2026-07-01", "broken"),  # May 31 instalment more than 30 days late
        ("2026-07-05", "completed"),
    ]


def test_plan_breaks_on_the_second_missed_instalment() -> None:
    plan = make_instalments(("2026-03-31", 100_00), ("2026-04-30", 100_00), ("2026-05-31", 100_00))
    limits = PlanLimits(break_after_days=60)
    changes = travel(D(2026, 3, 25), D(2026, 6, 30), lambda d: plan_state(plan, 0, d, limits).state)
    assert changes == [("2026-03-25", "active"), ("2026-04-06", "missed"), ("2026-05-06", "broken")]
    # With the default 30 days, the first instalment's lateness breaks it earlier.
    changes = travel(D(2026, 3, 25), D(2026, 6, 30), lambda d: plan_state(plan, 0, d, LIMITS).state)
    assert changes == [("2026-03-25", "active"), ("2026-04-06", "missed"), ("2026-05-01", "broken")]


def test_the_oldest_missed_instalment_decides_the_lateness_break() -> None:
    """With three misses to break, two misses break only once the older is 30+ days late."""
    plan = make_instalments(("2026-03-01", 100_00), ("2026-03-20", 100_00), ("2026-06-01", 100_00))
    limits = PlanLimits(missed_to_break=3)
    changes = travel(D(2026, 3, 1), D(2026, 4, 30), lambda d: plan_state(plan, 0, d, limits).state)
    assert changes == [("2026-03-01", "active"), ("2026-03-07", "missed"), ("2026-04-01", "broken")]


def test_plan_status_reports_counts_next_and_outstanding() -> None:
    plan = make_instalments(("2026-03-31", 100_00), ("2026-04-30", 100_00), ("2026-05-31", 100_01))
    status = plan_state(plan, 150_00, D(2026, 5, 10), LIMITS)
    assert status == PlanStatus("missed", 1, (plan[1],), plan[1], 150_01)
    assert status.missed_count == 1
    assert plan_state(plan, 400_00, D(2026, 1, 1), LIMITS) == PlanStatus(
        "completed", 3, (), None, 0
    )


def test_plan_state_rejects_an_empty_plan_and_negative_payments() -> None:
    with pytest.raises(InvalidPlan, match="instalments"):
        plan_state([], 0, D(2026, 1, 1), LIMITS)
    plan = make_instalments(("2026-03-31", 100_00))
    with pytest.raises(InvalidPlan, match="paid_minor_total"):
        plan_state(plan, -1, D(2026, 1, 1), LIMITS)


@st.composite
def schedules(draw: st.DrawFn) -> list[Instalment]:
    """Any plan in schedule order: unequal amounts, irregular but increasing dates."""
    day = draw(days)
    plan = []
    for number in range(1, draw(st.integers(1, 12)) + 1):
        plan.append(Instalment(number, day, draw(st.integers(1, 100_000))))
        day += dt.timedelta(days=draw(st.integers(1, 40)))
    return plan


@given(
    plan=schedules(), paid=st.integers(0, 1_300_000), offset=st.integers(-30, 500), limits=limits_st
)
def test_plan_state_follows_its_definition(
    plan: list[Instalment], paid: int, offset: int, limits: PlanLimits
) -> None:
    today = plan[0].due_on + dt.timedelta(days=offset)
    total = sum(i.amount_minor for i in plan)
    prefix = [sum(i.amount_minor for i in plan[: k + 1]) for k in range(len(plan))]
    unpaid = [i for i, covered in zip(plan, prefix, strict=True) if covered > paid]
    missed = [i for i in unpaid if (today - i.due_on).days > limits.grace_days]
    status = plan_state(plan, paid, today, limits)
    assert (status.state == "completed") == (paid >= total)
    assert status.outstanding_minor == max(0, total - paid)
    assert status.paid_count == len(plan) - len(unpaid)
    assert status.next_instalment == (unpaid[0] if unpaid else None)
    assert list(status.missed) == missed
    broken = len(missed) >= limits.missed_to_break or any(
        (today - i.due_on).days > limits.break_after_days for i in missed
    )
    if paid < total:
        assert status.state == ("broken" if broken else "missed" if missed else "active")


PLAN_RANK = {"completed": 0, "active": 1, "missed": 2, "broken": 3}


@given(
    plan=schedules(),
    paid=st.lists(st.integers(0, 1_300_000), min_size=2, max_size=2),
    offsets=st.lists(st.integers(-30, 500), min_size=2, max_size=2),
    limits=limits_st,
)
def test_more_money_never_worsens_a_plan_and_more_time_never_improves_it(
    plan: list[Instalment], paid: list[int], offsets: list[int], limits: PlanLimits
) -> None:
    less, more = sorted(paid)
    early, late = (plan[0].due_on + dt.timedelta(days=o) for o in sorted(offsets))

    def status(p: int, day: D) -> PlanStatus:
        return plan_state(plan, p, day, limits)

    assert PLAN_RANK[status(more, early).state] <= PLAN_RANK[status(less, early).state]
    assert status(more, early).paid_count >= status(less, early).paid_count
    assert status(more, early).missed_count <= status(less, early).missed_count
    assert PLAN_RANK[status(less, late).state] >= PLAN_RANK[status(less, early).state]
    assert status(less, late).missed_count >= status(less, early).missed_count
