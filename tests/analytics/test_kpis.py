"""KPIs from sums: each figure checked against a value worked out by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcours.analytics.kpis import (
    CLOSED,
    CURRENT,
    ChannelCosts,
    KpiSums,
    cei,
    contact_cost,
    csat_summary,
    cure_and_roll,
    dpd_bucket,
    dso,
    histogram_mean,
    histogram_median,
    kpi_row,
    rate,
)


def test_rates_need_a_denominator() -> None:
    assert rate(1, 4) == 0.25
    assert rate(3, 0) is None


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-5, CURRENT), (0, CURRENT), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"),
     (61, "61-90"), (90, "61-90"), (91, "90+"), (400, "90+")],
)  # fmt: skip
def test_days_past_due_buckets(days: int, bucket: str) -> None:
    assert dpd_bucket(days) == bucket


def test_histogram_mean_and_median() -> None:
    # Values 3, 3, 10, 20 -> mean 9, median (3 + 10) / 2 = 6.5.
    assert histogram_mean({3: 2, 10: 1, 20: 1}) == 9.0
    assert histogram_median({3: 2, 10: 1, 20: 1}) == 6.5
    # Values -2, 5, 5 -> median 5.
    assert histogram_median({5: 2, -2: 1}) == 5.0
    assert histogram_mean({}) is None and histogram_median({4: 0}) is None


@given(st.lists(st.integers(-200, 400), min_size=1, max_size=60))
def test_histogram_median_is_the_median_of_the_values(values: list[int]) -> None:
    histogram: dict[int, int] = {}
    for v in values:
        histogram[v] = histogram.get(v, 0) + 1
    ordered = sorted(values)
    n = len(ordered)
    expected = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    assert histogram_median(histogram) == expected
    assert histogram_mean(histogram) == pytest.approx(sum(values) / n)


def test_dso_and_cei() -> None:
    # 80 open at the end, 40 invoiced in 30 days: 60 days of sales outstanding.
    assert dso(8_000, 4_000, 30) == 60.0
    assert dso(8_000, 0, 30) is None
    # (380 + 40 - 80) / (380 + 40 - 0) = 340 / 420.
    assert cei(38_000, 4_000, 8_000, 0) == pytest.approx(340 / 420)
    assert cei(0, 0, 0, 0) is None


def test_cure_and_roll_rates() -> None:
    transitions = {
        (CURRENT, CURRENT): 5,  # not delinquent at the start: not counted
        (CURRENT, "1-30"): 3,
        ("1-30", CURRENT): 2,  # cured
        ("1-30", "1-30"): 1,
        ("1-30", "31-60"): 3,  # rolled
        ("61-90", "90+"): 1,  # rolled
        ("90+", "90+"): 2,  # cannot roll further
        ("31-60", CLOSED): 1,  # closed unpaid: neither
    }
    # Delinquent at the start: 2 + 1 + 3 + 1 + 2 + 1 = 10; cured 2; rolled 3 + 1 = 4.
    assert cure_and_roll(transitions) == (0.2, 0.4)
    assert cure_and_roll({(CURRENT, "1-30"): 4}) == (None, None)


def test_csat_summary() -> None:
    # Scores 1, 2, 2, 4, 5, 5, 5, 5: mean 29 / 8; promoters 4/8; detractors 3/8.
    summary = csat_summary([1, 2, 0, 1, 4])
    assert (summary.answers, summary.counts) == (8, (1, 2, 0, 1, 4))
    assert summary.mean == pytest.approx(29 / 8)
    assert (summary.promoters, summary.detractors) == (0.5, 0.375)
    assert summary.net_score == pytest.approx(0.125)
    empty = csat_summary([0] * 5)
    assert (empty.mean, empty.promoters, empty.net_score) == (None, None, None)
    with pytest.raises(ValueError, match="five"):
        csat_summary([1, 2, 3])


def test_channel_costs_defaults_and_the_creditors_own() -> None:
    defaults = ChannelCosts()
    # 10 e-mails, 4 SMS in 6 segments, a letter, 2 calls (+1 phone message), 4 chat answers:
    # 0.02 + 0.48 + 1.80 + 3 x 2.50 + 4 x 3 x 0.50 = 15.80.
    messages = {"email": 10, "sms": 4, "letter": 1, "phone": 1, "chat": 3}
    assert contact_cost(defaults, messages, 6, 2, 4) == Decimal("15.80")
    own = ChannelCosts.from_mapping({"currency": "EUR", "letter": "0.95", "sms_unit": 0.05})
    assert (own.letter, own.sms_unit, own.email) == (
        Decimal("0.95"),
        Decimal("0.05"),
        Decimal("0.002"),
    )
    with pytest.raises(ValueError, match="unknown channel cost"):
        ChannelCosts.from_mapping({"fax": "1"})
    with pytest.raises(ValueError, match="non-negative"):
        ChannelCosts(letter=Decimal("-1"))
    with pytest.raises(ValueError, match="currency"):
        ChannelCosts(currency="EURO")


def test_kpi_row_from_hand_made_sums() -> None:
    sums = KpiSums(
        cases=4, placed_minor=100_000, collected_minor=40_000,
        matured_placed_minor={30: 100_000, 60: 100_000, 90: 50_000, 120: 0},
        matured_collected_minor={30: 10_000, 60: 25_000, 90: 20_000, 120: 0},
        cases_placed=4, cases_paid=1, days_to_pay={-2: 1},
        receivables_minor=60_000, receivables_current_minor=0, receivables_begin_minor=90_000,
        sales_minor=10_000, transitions={("1-30", CURRENT): 1, ("1-30", "31-60"): 1},
        promises_made=3, promises_kept=2, promises_broken=1,
        messages={"email": 6, "sms": 2}, sms_units=3, calls=4, call_conversations=1,
        contacted=4, responded=3, opted_out=1, complained=0, disputed=1,
        csat=(0, 0, 1, 0, 1), agent_answers=2, late_answers=1, overdue_waiting=2,
    )  # fmt: skip
    row = kpi_row({"persona": "occasional"}, sums, currency="EUR")
    assert row.collection_rate == 0.4
    assert row.collection_rate_at == {30: 0.1, 60: 0.25, 90: 0.4, 120: None}
    assert (row.paid_rate, row.days_to_pay_mean, row.days_to_pay_median) == (0.25, -2.0, -2.0)
    assert row.dso_days == pytest.approx(60_000 / 10_000 * 30)
    assert row.cei == pytest.approx((90_000 + 10_000 - 60_000) / (90_000 + 10_000))
    assert (row.cure_rate, row.roll_rate, row.delinquent_at_start) == (0.5, 0.5, 2)
    assert row.promise_kept_rate == pytest.approx(2 / 3)
    assert (row.contacts, row.contacts_per_case) == (12, 3.0)
    assert row.contacts_per_unit_collected == pytest.approx(12 / 400)
    assert row.right_party_rate == 0.25 and row.response_rate == 0.75
    assert row.opt_out_rate == 0.25 and row.dispute_rate == 0.25 and row.complaint_rate == 0.0
    # 6 x 0.002 + 3 x 0.08 + 4 x 2.50 + 2 x 3 x 0.50 = 13.252; per euro 13.252 / 400.
    assert row.cost == Decimal("13.252")
    assert row.cost_to_collect == pytest.approx(13.252 / 400)
    assert row.csat.mean == 4.0 and row.sla_breaches == 3
    # Opt-outs and complaints are read per case, as the simulator reads them; responses
    # per case contacted.
    few = kpi_row({}, KpiSums(cases=10, contacted=4, responded=1, opted_out=2), currency="EUR")
    assert (few.opt_out_rate, few.response_rate) == (0.2, 0.25)
    empty = kpi_row({}, KpiSums(), currency="EUR")
    assert (empty.collection_rate, empty.cost_to_collect, empty.contacts_per_case) == (
        None, None, None,
    )  # fmt: skip


def test_kpi_sums_add_up() -> None:
    a = KpiSums(cases=1, messages={"email": 2}, transitions={("1-30", CURRENT): 1},
                csat=(1, 0, 0, 0, 0), days_to_pay={3: 1})  # fmt: skip
    b = KpiSums(cases=2, messages={"email": 1, "sms": 1}, transitions={("1-30", CURRENT): 2},
                csat=(0, 0, 0, 0, 2), days_to_pay={3: 1, 9: 1})  # fmt: skip
    total = KpiSums.total([a, b])
    assert total.cases == 3
    assert total.messages == {"email": 3, "sms": 1}
    assert total.transitions == {("1-30", CURRENT): 3}
    assert total.csat == (1, 0, 0, 0, 2)
    assert total.days_to_pay == {3: 2, 9: 1}
    assert a.messages == {"email": 2}  # the parts are left as they were
