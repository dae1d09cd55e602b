"""Statistics of experiment arms against their control: uplift, a confidence interval and
a two-sided p-value, from summary sums only (counts, totals, totals of squares).

Proportions use Wilson's score interval per arm, Newcombe's hybrid score interval for
the difference (method 10 of Newcombe 1998) and the pooled two-proportion z test; means
use Welch's t (unequal variances); a ratio of totals — money collected ÷ money placed —
uses the delta method (the linearised ratio estimator) and a z test. The normal
distribution comes from the standard library, Student's t from SciPy (installed with
scikit-learn): Welch's degrees of freedom are fractional, which rules out tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

from scipy import stats  # type: ignore[import-untyped]

__all__ = [
    "ArmResult",
    "ArmSums",
    "Comparison",
    "Difference",
    "ExperimentResult",
    "Interval",
    "MeanSummary",
    "RatioSummary",
    "compare_means",
    "compare_proportions",
    "compare_ratios",
    "default_control",
    "experiment_result",
    "mean_interval",
    "newcombe",
    "ratio_difference",
    "ratio_interval",
    "two_proportion_z",
    "welch",
    "wilson",
]

_NORMAL: Final = NormalDist()


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Difference:
    """A difference (a - b) with its confidence interval and two-sided p-value; the
    interval and p-value are None where the data cannot give them (too few answers)."""

    difference: float
    interval: Interval | None
    p_value: float | None
    df: float | None = None  # Welch's degrees of freedom


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError("confidence: strictly between 0 and 1")
    return _NORMAL.inv_cdf(1 - (1 - confidence) / 2)


def _two_sided_normal(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval | None:
    """Wilson's score interval for a proportion; None for n = 0."""
    if not 0 <= successes <= n:
        raise ValueError("successes: between 0 and n")
    if n == 0:
        return None
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe(s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95) -> Interval | None:
    """Newcombe's hybrid score interval for p1 - p2 (Wilson limits of each arm)."""
    a, b = wilson(s1, n1, confidence), wilson(s2, n2, confidence)
    if a is None or b is None:
        return None
    p1, p2 = s1 / n1, s2 / n2
    d = p1 - p2
    return Interval(
        d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2),
        d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2),
    )


def two_proportion_z(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z test (= Pearson's χ² without
    continuity correction on the 2 by 2 table); None when undefined."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None  # everyone or no one succeeded in both arms: nothing to test
    return _two_sided_normal((s1 / n1 - s2 / n2) / se)


@dataclass(frozen=True, slots=True)
class MeanSummary:
    """n values given by their sum and sum of squares."""

    n: int
    total: float
    total_squares: float

    @classmethod
    def of(cls, values: Iterable[float]) -> MeanSummary:
        listed = list(values)
        return cls(len(listed), math.fsum(listed), math.fsum(v * v for v in listed))

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance (n - 1 denominator)."""
        if self.n < 2:
            return None
        return max(0.0, (self.total_squares - self.total * self.total / self.n) / (self.n - 1))

    def __add__(self, other: MeanSummary) -> MeanSummary:
        return MeanSummary(
            self.n + other.n, self.total + other.total, self.total_squares + other.total_squares
        )


def mean_interval(summary: MeanSummary, confidence: float = 0.95) -> Interval | None:
    """Student's t interval of a mean; None with fewer than two values."""
    mean, variance = summary.mean, summary.variance
    if mean is None or variance is None:
        return None
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, summary.n - 1)) * math.sqrt(
        variance / summary.n
    )
    return Interval(mean - half, mean + half)


def welch(a: MeanSummary, b: MeanSummary, confidence: float = 0.95) -> Difference | None:
    """Welch's t for mean(a) - mean(b); None when either has no value."""
    if a.mean is None or b.mean is None:
        return None
    difference = a.mean - b.mean
    va, vb = a.variance, b.variance
    if va is None or vb is None:
        return Difference(difference, None, None)
    se2 = va / a.n + vb / b.n
    if se2 == 0:
        return Difference(difference, None, None)
    df = se2 * se2 / ((va / a.n) ** 2 / (a.n - 1) + (vb / b.n) ** 2 / (b.n - 1))
    se = math.sqrt(se2)
    t = difference / se
    p = float(2 * stats.t.sf(abs(t), df))
    q = float(stats.t.ppf(1 - (1 - confidence) / 2, df))
    return Difference(difference, Interval(difference - q * se, difference + q * se), p, df)


@dataclass(frozen=True, slots=True)
class RatioSummary:
    """Pairs (x, y) — e.g. placed and collected of each case — by their sums, for the
    ratio of totals Σy ÷ Σx."""

    n: int
    x: float
    y: float
    xx: float
    yy: float
    xy: float

    @property
    def ratio(self) -> float | None:
        return self.y / self.x if self.x else None

    @property
    def variance(self) -> float | None:
        """Delta-method variance of the ratio: s² of y - R·x, over n·x̄²."""
        r = self.ratio
        if r is None or self.n < 2:
            return None
        residual = self.yy - 2 * r * self.xy + r * r * self.xx  # Σ (y - R·x)²
        return max(0.0, residual / (self.n - 1)) * self.n / (self.x * self.x)

    def __add__(self, other: RatioSummary) -> RatioSummary:
        return RatioSummary(
            self.n + other.n, self.x + other.x, self.y + other.y, self.xx + other.xx,
            self.yy + other.yy, self.xy + other.xy,
        )  # fmt: skip


def ratio_interval(summary: RatioSummary, confidence: float = 0.95) -> Interval | None:
    """Normal interval of a ratio of totals with its delta-method variance."""
    ratio, variance = summary.ratio, summary.variance
    if ratio is None or variance is None:
        return None
    half = _z(confidence) * math.sqrt(variance)
    return Interval(ratio - half, ratio + half)


def ratio_difference(
    a: RatioSummary, b: RatioSummary, confidence: float = 0.95
) -> Difference | None:
    """ratio(a) - ratio(b) with a normal interval and z test on delta-method variances
    (a large-sample method: arms of a few hundred cases and more)."""
    ra, rb = a.ratio, b.ratio
    if ra is None or rb is None:
        return None
    difference = ra - rb
    va, vb = a.variance, b.variance
    if va is None or vb is None or va + vb == 0:
        return Difference(difference, None, None)
    se = math.sqrt(va + vb)
    half = _z(confidence) * se
    return Difference(
        difference, Interval(difference - half, difference + half),
        _two_sided_normal(difference / se),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric of an arm against the control arm: the uplift (arm - control, in the
    metric's unit: a share, days, a score), relative uplift, interval and p-value."""

    metric: str
    method: str
    value: float | None
    control: float | None
    n: int
    control_n: int
    uplift: float | None
    relative_uplift: float | None
    interval: Interval | None
    p_value: float | None

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value is not None and self.p_value < alpha


def _relative(uplift: float | None, control: float | None) -> float | None:
    return uplift / control if uplift is not None and control else None


def compare_proportions(
    metric: str, s: int, n: int, control_s: int, control_n: int, confidence: float = 0.95
) -> Comparison:
    """Arm vs control on a share: Newcombe interval, two-proportion z test."""
    value = s / n if n else None
    control = control_s / control_n if control_n else None
    uplift = value - control if value is not None and control is not None else None
    return Comparison(
        metric, "newcombe / two-proportion z", value, control, n, control_n, uplift,
        _relative(uplift, control), newcombe(s, n, control_s, control_n, confidence),
        two_proportion_z(s, n, control_s, control_n),
    )  # fmt: skip


def compare_means(
    metric: str, arm: MeanSummary, control: MeanSummary, confidence: float = 0.95
) -> Comparison:
    """Arm vs control on a mean: Welch's t interval and test."""
    result = welch(arm, control, confidence)
    uplift = result.difference if result else None
    return Comparison(
        metric, "welch t", arm.mean, control.mean, arm.n, control.n, uplift,
        _relative(uplift, control.mean), result.interval if result else None,
        result.p_value if result else None,
    )  # fmt: skip


def compare_ratios(
    metric: str, arm: RatioSummary, control: RatioSummary, confidence: float = 0.95
) -> Comparison:
    """Arm vs control on a ratio of totals: delta-method interval, z test."""
    result = ratio_difference(arm, control, confidence)
    uplift = result.difference if result else None
    return Comparison(
        metric, "delta method / z", arm.ratio, control.ratio, arm.n, control.n, uplift,
        _relative(uplift, control.ratio), result.interval if result else None,
        result.p_value if result else None,
    )  # fmt: skip


def default_control(arms: Iterable[str]) -> str:
    """The arm others are compared with when none is named: `control`, else `holdout`,
    else `universal` (the champion ladder), else the first by name."""
    names = sorted(set(arms))
    if not names:
        raise ValueError("an experiment needs arms")
    return next((c for c in ("control", "holdout", "universal") if c in names), names[0])


@dataclass(slots=True)
class ArmSums:
    """Additive facts of the cases of one arm (and persona)."""

    cases: int = 0
    cases_placed: int = 0  # with something owed at placement
    cases_paid: int = 0  # of those, paid in full
    placed_minor: int = 0
    collected_minor: int = 0
    money: RatioSummary = RatioSummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)  # (placed, collected)
    csat: MeanSummary = MeanSummary(0, 0.0, 0.0)  # satisfaction scores
    days_to_pay: MeanSummary = MeanSummary(0, 0.0, 0.0)  # of the cases paid in full

    def __add__(self, other: ArmSums) -> ArmSums:
        return ArmSums(
            self.cases + other.cases, self.cases_placed + other.cases_placed,
            self.cases_paid + other.cases_paid, self.placed_minor + other.placed_minor,
            self.collected_minor + other.collected_minor, self.money + other.money,
            self.csat + other.csat, self.days_to_pay + other.days_to_pay,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ArmResult:
    """One arm (within one persona, or all of them: persona None) with the confidence
    interval of each rate and mean, and, unless it is the control, its comparisons
    with the control: paid_rate (cases paid in full ÷ cases
    with something owed), collection_rate (collected ÷ placed), csat (mean score) and
    days_to_pay (mean, over the cases paid in full — conditional on paying, so read it
    next to the paid rate)."""

    arm: str
    persona: str | None
    is_control: bool
    cases: int
    cases_placed: int
    cases_paid: int
    placed_minor: int
    collected_minor: int
    paid_rate: float | None
    paid_rate_interval: Interval | None  # Wilson
    collection_rate: float | None
    collection_rate_interval: Interval | None  # delta method
    csat_mean: float | None
    csat_interval: Interval | None  # Student's t
    csat_answers: int
    days_to_pay_mean: float | None
    comparisons: dict[str, Comparison]


@dataclass(frozen=True, slots=True)
class ExperimentResult:
    experiment: str
    control: str
    currency: str
    confidence: float
    arms: list[ArmResult]  # all personas together
    by_persona: list[ArmResult]  # within each persona (the experiment's strata)


def _arm_result(
    arm: str, persona: str | None, s: ArmSums, control: ArmSums | None, confidence: float
) -> ArmResult:
    comparisons: dict[str, Comparison] = {}
    if control is not None:
        comparisons = {
            "paid_rate": compare_proportions(
                "paid_rate", s.cases_paid, s.cases_placed, control.cases_paid,
                control.cases_placed, confidence,
            ),
            "collection_rate": compare_ratios(
                "collection_rate", s.money, control.money, confidence
            ),
            "csat": compare_means("csat", s.csat, control.csat, confidence),
            "days_to_pay": compare_means(
                "days_to_pay", s.days_to_pay, control.days_to_pay, confidence
            ),
        }  # fmt: skip
    return ArmResult(
        arm=arm,
        persona=persona,
        is_control=control is None,
        cases=s.cases,
        cases_placed=s.cases_placed,
        cases_paid=s.cases_paid,
        placed_minor=s.placed_minor,
        collected_minor=s.collected_minor,
        paid_rate=s.cases_paid / s.cases_placed if s.cases_placed else None,
        paid_rate_interval=wilson(s.cases_paid, s.cases_placed, confidence),
        collection_rate=s.money.ratio,
        collection_rate_interval=ratio_interval(s.money, confidence),
        csat_mean=s.csat.mean,
        csat_interval=mean_interval(s.csat, confidence),
        csat_answers=s.csat.n,
        days_to_pay_mean=s.days_to_pay.mean,
        comparisons=comparisons,
    )


def experiment_result(
    experiment: str,
    sums: Mapping[tuple[str, str], ArmSums],
    *,
    currency: str,
    control: str | None = None,
    confidence: float = 0.95,
) -> ExperimentResult:
    """Arms compared with the control, from sums by (arm, persona)."""
    arms = sorted({arm for arm, _ in sums})
    if not arms:
        return ExperimentResult(experiment, control or "", currency, confidence, [], [])
    control = control or default_control(arms)
    if control not in arms:
        raise ValueError(f"control: no arm {control!r} in {', '.join(arms)}")
    overall: dict[str, ArmSums] = {}
    for (arm, _), s in sums.items():
        overall[arm] = overall.get(arm, ArmSums()) + s
    ordered = [control, *(a for a in arms if a != control)]
    results = [
        _arm_result(a, None, overall[a], None if a == control else overall[control], confidence)
        for a in ordered
    ]
    by_persona = []
    for persona in sorted({p for _, p in sums}):
        base = sums.get((control, persona))
        for a in ordered:
            found = sums.get((a, persona))
            if found is None:
                continue
            reference = None if a == control else (base or ArmSums())
            by_persona.append(_arm_result(a, persona, found, reference, confidence))
    return ExperimentResult(experiment, control, currency, confidence, results, by_persona)
