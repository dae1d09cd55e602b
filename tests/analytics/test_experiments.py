"""Experiment statistics against published values: Newcombe (1998) for proportions, R's
`t.test` on the `sleep` data for Welch, hand computation for the z test and the delta
method."""

from __future__ import annotations

import math

import pytest
from scipy import stats  # type: ignore[import-untyped]

from parcours.analytics.experiments import (
    ArmSums,
    Interval,
    MeanSummary,
    RatioSummary,
    compare_means,
    compare_proportions,
    default_control,
    experiment_result,
    mean_interval,
    newcombe,
    ratio_difference,
    ratio_interval,
    two_proportion_z,
    welch,
    wilson,
)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe RG (1998), Stat Med 17:857-872, table I, method 3 (score, no
        # continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(
    successes: int, n: int, low: float, high: float
) -> None:
    interval = wilson(successes, n)
    assert interval is not None
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "low", "high"),
    [
        # Newcombe RG (1998), Stat Med 17:873-890, table II, method 10 (hybrid score).
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_difference_interval_matches_newcombe_1998(
    s1: int, n1: int, s2: int, n2: int, low: float, high: float
) -> None:
    interval = newcombe(s1, n1, s2, n2)
    assert interval is not None
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_intervals_need_cases() -> None:
    assert wilson(0, 0) is None
    assert newcombe(1, 2, 0, 0) is None
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence=1.0)


def test_two_proportion_z_test_by_hand_and_as_chi_square() -> None:
    # 56/70 vs 48/80: pooled p = 104/150; se = sqrt(p(1-p)(1/70 + 1/80)) = 0.0754668;
    # z = 0.2 / se = 2.65018; two-sided p = erfc(z / sqrt 2) = 0.008045.
    pooled = 104 / 150
    z = 0.2 / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert z == pytest.approx(2.65018, abs=1e-5)
    p = two_proportion_z(56, 70, 48, 80)
    assert p == pytest.approx(0.008045, abs=1e-6)
    # The same test is Pearson's chi-square without continuity correction.
    chi2 = stats.chi2_contingency([[56, 14], [48, 32]], correction=False)
    assert p == pytest.approx(chi2.pvalue, rel=1e-9)
    assert two_proportion_z(3, 3, 5, 5) is None  # nothing varies: nothing to test
    assert two_proportion_z(1, 0, 1, 2) is None


SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_matches_r_t_test_on_the_sleep_data() -> None:
    # R: t.test(extra ~ group, data = sleep) -> t = -1.8608, df = 17.776,
    # p-value = 0.07939, 95 percent CI -3.3654832 0.2054832.
    result = welch(MeanSummary.of(SLEEP_1), MeanSummary.of(SLEEP_2))
    assert result is not None and result.interval is not None
    assert result.difference == pytest.approx(0.75 - 2.33)
    assert result.df == pytest.approx(17.776, abs=1e-3)
    assert result.p_value == pytest.approx(0.07939, abs=1e-5)
    assert result.interval.low == pytest.approx(-3.3654832, abs=1e-7)
    assert result.interval.high == pytest.approx(0.2054832, abs=1e-7)


def test_welch_with_too_little_data_gives_no_interval() -> None:
    assert welch(MeanSummary(0, 0, 0), MeanSummary.of([1, 2])) is None
    one = welch(MeanSummary.of([4]), MeanSummary.of([1, 2, 3]))
    assert one is not None and (one.difference, one.interval, one.p_value) == (2.0, None, None)
    flat = welch(MeanSummary.of([3, 3]), MeanSummary.of([3, 3, 3]))
    assert flat is not None and flat.p_value is None


def test_mean_summary_from_sums() -> None:
    summary = MeanSummary.of([2, 4, 4, 4, 5, 5, 7, 9])
    assert summary.mean == 5.0
    assert summary.variance == pytest.approx(32 / 7)  # sum of squared deviations 32
    assert (summary + MeanSummary.of([1])).n == 9
    assert MeanSummary(1, 3, 9).variance is None


def test_ratio_difference_equals_the_delta_method_on_raw_pairs() -> None:
    a = [(100, 100), (200, 50), (50, 0), (300, 300), (120, 60)]
    b = [(100, 0), (80, 80), (250, 25), (60, 0), (90, 45), (150, 150)]

    def summary(pairs: list[tuple[int, int]]) -> RatioSummary:
        return RatioSummary(
            len(pairs), sum(x for x, _ in pairs), sum(y for _, y in pairs),
            sum(x * x for x, _ in pairs), sum(y * y for _, y in pairs),
            sum(x * y for x, y in pairs),
        )  # fmt: skip

    def by_hand(pairs: list[tuple[int, int]]) -> tuple[float, float]:
        x_total, y_total = sum(x for x, _ in pairs), sum(y for _, y in pairs)
        r = y_total / x_total
        n = len(pairs)
        s2 = sum((y - r * x) ** 2 for x, y in pairs) / (n - 1)
        return r, s2 / (n * (x_total / n) ** 2)

    (ra, va), (rb, vb) = by_hand(a), by_hand(b)
    assert summary(a).ratio == pytest.approx(ra)
    assert summary(a).variance == pytest.approx(va)
    result = ratio_difference(summary(a), summary(b))
    assert result is not None and result.interval is not None
    se = math.sqrt(va + vb)
    assert result.difference == pytest.approx(ra - rb)
    assert result.interval.low == pytest.approx(ra - rb - 1.959964 * se, abs=1e-6)
    assert result.p_value == pytest.approx(math.erfc(abs(ra - rb) / se / math.sqrt(2)))
    assert ratio_difference(summary([]), summary(b)) is None


def test_comparisons_carry_value_control_uplift_and_relative_uplift() -> None:
    comparison = compare_proportions("paid_rate", 56, 70, 48, 80)
    assert (comparison.value, comparison.control) == (0.8, 0.6)
    assert comparison.uplift == pytest.approx(0.2)
    assert comparison.relative_uplift == pytest.approx(0.2 / 0.6)
    assert comparison.interval == newcombe(56, 70, 48, 80)
    assert comparison.significant()
    assert not compare_proportions("paid_rate", 9, 20, 8, 20).significant()
    means = compare_means("csat", MeanSummary.of(SLEEP_2), MeanSummary.of(SLEEP_1))
    assert means.uplift == pytest.approx(1.58)
    assert means.interval is not None
    assert (means.interval.low, means.interval.high) == pytest.approx((-0.2054832, 3.3654832))


def test_the_default_control() -> None:
    assert default_control(["b", "holdout", "control"]) == "control"
    assert default_control(["persona", "universal"]) == "universal"
    assert default_control(["pre_due", "no_pre_due", "holdout"]) == "holdout"
    assert default_control(["b", "a"]) == "a"
    with pytest.raises(ValueError, match="arms"):
        default_control([])


def test_experiment_result_adds_personas_up_per_arm() -> None:
    def arm(placed: int, paid: int, collected: int, score: float) -> ArmSums:
        return ArmSums(
            cases=placed, cases_placed=placed, cases_paid=paid, placed_minor=100 * placed,
            collected_minor=collected,
            money=RatioSummary(placed, 100.0 * placed, collected, 1e4 * placed, 0.0, 0.0),
            csat=MeanSummary(2, 2 * score, 2 * score * score),
        )  # fmt: skip

    sums = {
        ("control", "a"): arm(10, 2, 200, 3),
        ("control", "b"): arm(10, 4, 400, 4),
        ("test", "a"): arm(10, 6, 600, 4),
        ("test", "b"): arm(10, 8, 800, 5),
    }
    result = experiment_result("exp", sums, currency="EUR")
    assert result.control == "control"
    control, test = result.arms
    assert (control.cases_placed, control.cases_paid, test.cases_paid) == (20, 6, 14)
    assert test.comparisons["paid_rate"] == compare_proportions("paid_rate", 14, 20, 6, 20)
    assert test.csat_mean == pytest.approx(4.5)
    assert test.paid_rate_interval == wilson(14, 20)
    assert control.csat_interval == mean_interval(MeanSummary(4, 14, 50))
    assert [(r.persona, r.arm, r.is_control) for r in result.by_persona] == [
        ("a", "control", True), ("a", "test", False), ("b", "control", True), ("b", "test", False),
    ]  # fmt: skip
    within_a = result.by_persona[1].comparisons["paid_rate"]
    assert within_a == compare_proportions("paid_rate", 6, 10, 2, 10)


def test_intervals_of_one_arm() -> None:
    # The sleep data's first group: mean 0.75, sd 1.789010, t(0.975, 9) = 2.262157:
    # 0.75 -/+ 2.262157 x 1.789010 / sqrt(10) = -0.5297804 .. 2.0297804 (R: t.test).
    interval = mean_interval(MeanSummary.of(SLEEP_1))
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((-0.5297804, 2.0297804))
    assert mean_interval(MeanSummary.of([3])) is None
    pairs = RatioSummary(4, 400, 200, 40_000, 10_000, 20_000)  # four (100, 50) pairs
    assert ratio_interval(pairs) == Interval(0.5, 0.5)  # no spread around the ratio
    assert ratio_interval(RatioSummary(0, 0, 0, 0, 0, 0)) is None
