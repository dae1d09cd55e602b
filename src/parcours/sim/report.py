"""The simulator's comparison: KPIs per strategy, persona (and experiment arm), with 95 %
confidence intervals across seeds.

A `SeedRun` is what one simulated run left behind, per debtor: what was placed and
collected when, the day the balance was settled, the contacts made (by channel), the
complaints, opt-outs and satisfaction answers. `compare` reduces each run to figures per
group, then summarises every figure across seeds as a mean and a Student-t interval
(seeds are the replications; a figure that is undefined in a run — no case paid, no
answer given — is left out of that run's sample). Strategies run on the same seeds
share the model's random numbers, so the difference between two strategies is also
given seed by seed (a paired interval), which is much sharper than comparing two
intervals.

Definitions (per group of cases):

- collection rate at N days: collected within N days of placement (the simulation's
  first day) toward what was placed ÷ what was placed; fees the engine charged and the
  debtors paid are not counted as collected;
- days to pay (mean, median): over the cases paid in full within the run, the day the
  payment that completed what was placed was made minus the case's oldest due date
  (negative: before it);
- contacts per case: messages sent plus calls made ÷ cases;
- cost per euro collected: `ChannelCosts` applied to the contacts as the analytics apply
  them (`contact_cost`: e-mails and letters each, SMS by segment, calls each, chat by
  agent minute) ÷ collected (major units);
- complaint rate, opt-out rate: cases with at least one ÷ cases;
- CSAT: mean score (1-5) of the satisfaction answers given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]

from parcours.analytics.kpis import ChannelCosts, contact_cost

__all__ = [
    "CHANNELS",
    "METRICS",
    "WINDOWS",
    "Estimate",
    "GroupResult",
    "SeedRun",
    "SimulationReport",
    "compare",
    "estimate",
    "render_tables",
    "run_metrics",
]

CHANNELS: Final = ("email", "sms", "letter", "phone", "chat")
WINDOWS: Final = (30, 60, 90, 120)
OVERALL: Final = "(all)"
# Figure → (label in tables, how it is shown, whether higher is better).
METRICS: Final = {
    "collection_rate_30": ("collected 30 d", "pct", True),
    "collection_rate_60": ("collected 60 d", "pct", True),
    "collection_rate_90": ("collected 90 d", "pct", True),
    "collection_rate_120": ("collected 120 d", "pct", True),
    "collection_rate": ("collected (end)", "pct", True),
    "paid_rate": ("settled", "pct", True),
    "days_to_pay_mean": ("days to pay (mean)", "days", False),
    "days_to_pay_median": ("days to pay (median)", "days", False),
    "contacts_per_case": ("contacts / case", "num", False),
    "cost_per_euro": ("cost / € collected", "money", False),
    "complaint_rate": ("complaints", "pct", False),
    "opt_out_rate": ("opt-outs", "pct", False),
    "csat_mean": ("CSAT (1-5)", "num", True),
}

# The possible range of each kind of figure (a group's interval is cut to it).
_BOUNDS: Final = {"pct": (0.0, 1.0), "money": (0.0, math.inf), "num": (0.0, math.inf)}
_CSAT_BOUNDS: Final = (1.0, 5.0)


def _bounds(metric: str) -> tuple[float, float]:
    if metric == "csat_mean":
        return _CSAT_BOUNDS
    return _BOUNDS.get(METRICS[metric][1], (-math.inf, math.inf))


IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class SeedRun:
    """One simulated run (one strategy, one seed), one row per debtor in every array."""

    strategy: str
    seed: int
    days: int
    currency: str
    persona: list[str]  # the persona the engine classified the debtor as (its group)
    arm: list[str] | None  # the experiment arm drawn at enrolment, for experiments
    placed_minor: IntArray  # owed at placement
    due_day: IntArray  # oldest due date, in days from the first simulated day
    collected_at: dict[int, IntArray]  # window (days) → collected toward placed by then
    paid_day: IntArray  # day what was placed was paid in full, -1 if never
    contacts: IntArray  # (debtors, 5): contacts delivered, by channel (CHANNELS)
    sms_units: IntArray  # SMS segments billed
    complaints: IntArray
    opted_out: BoolArray
    disputed: BoolArray
    promises: IntArray
    plans: IntArray
    csat: IntArray  # (debtors, 5): answers of each score 1..5
    engine: dict[str, Any] = field(default_factory=dict)  # what the engine recorded
    timings: dict[str, float] = field(default_factory=dict)  # seconds by part

    def __len__(self) -> int:
        return int(self.placed_minor.size)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure across seeds: mean, 95 % interval (None with fewer than two values)."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    values: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci95": None if self.low is None else [self.low, self.high],
            "n": self.n,
            "values": list(self.values),
        }


def estimate(
    values: Iterable[float | None],
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> Estimate:
    """Mean and Student-t interval of the defined values (one per seed), the interval cut
    to the figure's possible range (`bounds`: a rate cannot fall below 0)."""
    xs = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(xs)
    if not n:
        return Estimate(None, None, None, 0, ())
    mean = sum(xs) / n
    if n < 2:
        return Estimate(mean, None, None, n, xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    low, high = bounds
    return Estimate(mean, max(mean - half, low), min(mean + half, high), n, xs)


def _exponent(currency: str) -> int:
    from parcours.domain.money import currency_exponent

    return currency_exponent(currency)


def run_metrics(run: SeedRun, mask: BoolArray, costs: ChannelCosts) -> dict[str, float | None]:
    """The figures of one group (the debtors in `mask`) of one run."""
    cases = int(mask.sum())
    if not cases:
        return dict.fromkeys(METRICS)
    placed = int(run.placed_minor[mask].sum())
    out: dict[str, float | None] = {}
    for window in WINDOWS:
        at = run.collected_at.get(window)
        out[f"collection_rate_{window}"] = (
            int(at[mask].sum()) / placed if at is not None and placed else None
        )
    collected = int(run.collected_at[run.days][mask].sum())
    out["collection_rate"] = collected / placed if placed else None
    paid = mask & (run.paid_day >= 0)
    out["paid_rate"] = int(paid.sum()) / cases
    if paid.any():
        days = (run.paid_day[paid] - run.due_day[paid]).astype(np.float64)
        out["days_to_pay_mean"] = float(days.mean())
        out["days_to_pay_median"] = float(np.median(days))
    else:
        out["days_to_pay_mean"] = out["days_to_pay_median"] = None
    by_channel = run.contacts[mask].sum(axis=0)
    out["contacts_per_case"] = int(by_channel.sum()) / cases
    cost = contact_cost(
        costs,
        {"email": int(by_channel[0]), "letter": int(by_channel[2]), "phone": int(by_channel[3])},
        int(run.sms_units[mask].sum()),
        0,
        int(by_channel[4]),
    )
    euros = Decimal(collected).scaleb(-_exponent(run.currency))
    out["cost_per_euro"] = float(cost / euros) if euros else None
    out["complaint_rate"] = int((run.complaints[mask] > 0).sum()) / cases
    out["opt_out_rate"] = int(run.opted_out[mask].sum()) / cases
    scores = run.csat[mask].sum(axis=0)
    answers = int(scores.sum())
    out["csat_mean"] = float((scores * np.arange(1, 6)).sum()) / answers if answers else None
    return out


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One group of one strategy: its size (mean over seeds) and every figure."""

    strategy: str
    arm: str | None
    persona: str  # OVERALL for every persona together
    cases: float
    metrics: dict[str, Estimate]

    @property
    def label(self) -> str:
        return self.persona if self.arm is None else f"{self.arm} / {self.persona}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "arm": self.arm,
            "persona": self.persona,
            "cases": self.cases,
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
        }


@dataclass(frozen=True, slots=True)
class Difference:
    """Strategy minus baseline for one group, paired by seed."""

    strategy: str
    baseline: str
    persona: str
    metrics: dict[str, Estimate]

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "baseline": self.baseline,
            "persona": self.persona,
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
        }


@dataclass(frozen=True)
class SimulationReport:
    """Every strategy's groups, and each strategy's difference to the baseline."""

    days: int
    seeds: tuple[int, ...]
    currency: str
    costs: ChannelCosts
    groups: list[GroupResult]
    differences: list[Difference]
    baseline: str | None
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "seeds": list(self.seeds),
            "currency": self.currency,
            "confidence": 0.95,
            "costs": {
                k: str(getattr(self.costs, k))
                for k in (
                    "email",
                    "sms_unit",
                    "letter",
                    "call",
                    "chat_minute",
                    "minutes_per_chat_answer",
                )
            },
            "groups": [g.as_dict() for g in self.groups],
            "baseline": self.baseline,
            "differences": [d.as_dict() for d in self.differences],
            **self.info,
        }


def _groups(run: SeedRun) -> dict[tuple[str | None, str], BoolArray]:
    """(arm, persona) → mask, with OVERALL rows; arms only for experiment runs."""
    persona = np.array(run.persona, dtype=object)
    everyone = np.ones(len(run), dtype=np.bool_)
    out: dict[tuple[str | None, str], BoolArray] = {(None, OVERALL): everyone}
    for key in sorted(set(run.persona)):
        out[(None, key)] = persona == key
    if run.arm is not None:
        arm = np.array(run.arm, dtype=object)
        for name in sorted(set(run.arm)):
            in_arm = arm == name
            out[(name, OVERALL)] = in_arm
            for key in sorted(set(run.persona)):
                out[(name, key)] = in_arm & (persona == key)
    return out


def compare(
    runs: Sequence[SeedRun],
    costs: ChannelCosts | None = None,
    *,
    baseline: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> SimulationReport:
    """Summarise runs (several strategies, several seeds each) per strategy and group."""
    if not runs:
        raise ValueError("no runs to compare")
    currency = runs[0].currency
    costs = costs or ChannelCosts(currency=currency)
    strategies = list(dict.fromkeys(r.strategy for r in runs))
    seeds = tuple(sorted({r.seed for r in runs}))
    days = runs[0].days
    per: dict[tuple[str, str | None, str], dict[int, dict[str, float | None]]] = {}
    sizes: dict[tuple[str, str | None, str], list[int]] = {}
    for run in runs:
        if run.days != days or run.currency != currency:
            raise ValueError("runs of different lengths or currencies cannot be compared")
        for (arm, persona), mask in _groups(run).items():
            key = (run.strategy, arm, persona)
            per.setdefault(key, {})[run.seed] = run_metrics(run, mask, costs)
            sizes.setdefault(key, []).append(int(mask.sum()))
    groups = [
        GroupResult(
            strategy,
            arm,
            persona,
            sum(sizes[(strategy, arm, persona)]) / len(sizes[(strategy, arm, persona)]),
            {
                m: estimate((values.get(m) for values in by_seed.values()), bounds=_bounds(m))
                for m in METRICS
            },
        )
        for (strategy, arm, persona), by_seed in per.items()
    ]
    if baseline is None and len(strategies) > 1:
        baseline = "universal" if "universal" in strategies else strategies[0]
    differences = []
    if baseline is not None and baseline in strategies:
        for strategy in strategies:
            if strategy == baseline:
                continue
            personas = sorted(
                {p for (s, a, p) in per if s == strategy and a is None}
                & {p for (s, a, p) in per if s == baseline and a is None},
                key=lambda p: (p != OVERALL, p),
            )
            for persona in personas:
                ours, theirs = per[(strategy, None, persona)], per[(baseline, None, persona)]
                common = sorted(set(ours) & set(theirs))
                differences.append(
                    Difference(
                        strategy,
                        baseline,
                        persona,
                        {
                            m: estimate(_minus(ours[s].get(m), theirs[s].get(m)) for s in common)
                            for m in METRICS
                        },
                    )
                )
    order = {s: i for i, s in enumerate(strategies)}
    groups.sort(key=lambda g: (g.persona != OVERALL, g.persona, order[g.strategy], g.arm or ""))
    return SimulationReport(
        days, seeds, currency, costs, groups, differences, baseline, dict(info or {})
    )


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# -- text -------------------------------------------------------------------------------

_TABLES: Final = (
    (
        "Collected within N days of placement (% of what was placed)",
        ("collection_rate_30", "collection_rate_60", "collection_rate_90", "collection_rate_120"),
    ),
    (
        "Days to pay, contacts, cost, complaints, opt-outs and satisfaction",
        (
            "days_to_pay_mean",
            "days_to_pay_median",
            "contacts_per_case",
            "cost_per_euro",
            "complaint_rate",
            "opt_out_rate",
            "csat_mean",
        ),
    ),
)


def _fmt(kind: str, e: Estimate, *, signed: bool = False) -> str:
    if e.mean is None:
        return "–"
    sign = "+" if signed else ""
    scale, digits = {"pct": (100.0, 1), "money": (1.0, 3), "days": (1.0, 1)}.get(kind, (1.0, 2))
    text = f"{e.mean * scale:{sign}.{digits}f}"
    if e.low is None or e.high is None:
        return text
    below, above = (e.mean - e.low) * scale, (e.high - e.mean) * scale
    if round(below, digits) == round(above, digits):
        return f"{text} ±{above:.{digits}f}"
    # Cut at the figure's range (a rate near 0): the interval itself, not a false ±.
    return f"{text} [{e.low * scale:{sign}.{digits}f}, {e.high * scale:{sign}.{digits}f}]"


def render_tables(report: SimulationReport) -> list[tuple[str, list[list[str]]]]:
    """The report as titled tables of text (a header row first): each group of each
    strategy, then each strategy's difference to the baseline, paired by seed."""
    out = []
    for title, metrics in _TABLES:
        shown = [m for m in metrics if _window_within(m, report.days)]
        if not shown:
            continue
        header = ["group", "strategy", "cases", *(_header(m) for m in shown)]
        rows = [header]
        for g in report.groups:
            rows.append(
                [
                    g.label,
                    g.strategy,
                    f"{g.cases:,.0f}",
                    *(_fmt(METRICS[m][1], g.metrics[m]) for m in shown),
                ]
            )
        for d in report.differences:
            rows.append(
                [
                    d.persona,
                    f"{d.strategy} − {d.baseline}",
                    "",
                    *(_fmt(METRICS[m][1], d.metrics[m], signed=True) for m in shown),
                ]
            )
        out.append((title, rows))
    return out


def _header(metric: str) -> str:
    if metric.startswith("collection_rate_"):
        return f"{metric.rsplit('_', 1)[1]} d"
    label, kind, _ = METRICS[metric]
    return f"{label} %" if kind == "pct" else label


def _window_within(metric: str, days: int) -> bool:
    if metric.startswith("collection_rate_"):
        return int(metric.rsplit("_", 1)[1]) <= days
    return True
