"""A simulation comparison as one self-contained `report.html`: what was compared, the KPI
tables per persona and arm with their 95 % intervals, the differences to the baseline and
the comparison charts (inline SVG) — no external file, font or script, so it opens from
the file system and can be mailed as it is.

`simulation_view` and `simulation_chart` also serve the dashboard, which shows a saved
run (`parcours.store.simulations`) with the same tables and charts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2

from parcours.analytics.charts import (
    Point,
    Series,
    UpliftRow,
    bar_chart,
    curve_chart,
    format_value,
    uplift_chart,
)
from parcours.sim.report import METRICS, OVERALL, WINDOWS

__all__ = [
    "CHARTS",
    "DEFAULT_TITLE",
    "TABLES",
    "Cell",
    "ChartSpec",
    "Line",
    "SimulationView",
    "render_report",
    "series_of",
    "simulation_chart",
    "simulation_view",
    "write_report",
]

DEFAULT_TITLE: Final = "Simulated comparison of collection strategies"
# How each figure of `sim.report.METRICS` is shown: its kind for `format_value`.
_KIND: Final = {"pct": "pct", "days": "days", "num": "num", "money": "money"}
# The tables of the report: (title, figures).
TABLES: Final = (
    (
        "Collected within N days of placement (share of what was placed)",
        tuple(f"collection_rate_{n}" for n in WINDOWS),
    ),
    ("Outcome at the end of the run", ("collection_rate", "paid_rate", "days_to_pay_mean",
                                       "days_to_pay_median")),
    ("Effort, cost and the debtors' experience", ("contacts_per_case", "cost_per_euro",
                                                  "complaint_rate", "opt_out_rate", "csat_mean")),
)  # fmt: skip
# Figures compared per persona in a chart each (the collection curve is its own chart).
PERSONA_FIGURES: Final = (
    "collection_rate", "days_to_pay_mean", "cost_per_euro", "csat_mean", "complaint_rate",
    "opt_out_rate",
)  # fmt: skip
DIFFERENCE_FIGURES: Final = ("collection_rate", "days_to_pay_mean", "csat_mean")


@dataclass(frozen=True, slots=True)
class ChartSpec:
    key: str
    title: str


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _charts() -> tuple[ChartSpec, ...]:
    specs = [ChartSpec("collection", "Collected within 30, 60, 90 and 120 days, all debtors")]
    specs += [
        ChartSpec(f"persona-{m}", f"{_cap(METRICS[m][0])}, by persona") for m in PERSONA_FIGURES
    ]
    specs += [
        ChartSpec(f"difference-{m}", f"Difference to the baseline: {METRICS[m][0]}, by persona")
        for m in DIFFERENCE_FIGURES
    ]
    return tuple(specs)


CHARTS: Final = _charts()


@dataclass(frozen=True, slots=True)
class Cell:
    """A figure as shown: its mean, the ± half-width, the interval and its seeds."""

    text: str  # "74.6% ± 2.1"
    mean: float | None
    low: float | None
    high: float | None
    n: int
    verdict: str = ""  # differences: "better", "worse" or "" (the interval holds 0)


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a table: a group (strategy, arm, persona) and its cells by figure."""

    strategy: str
    arm: str | None
    persona: str
    label: str  # the persona's name, "All debtors" for every persona together
    cases: float
    cells: dict[str, Cell]


@dataclass(frozen=True)
class SimulationView:
    """What a simulation report says, ready to show (see `simulation_view`)."""

    days: int
    seeds: tuple[int, ...]
    cases: int
    currency: str
    start: str
    portfolio: str
    baseline: str | None
    strategies: dict[str, str]  # name -> what it does
    costs: dict[str, str]
    tables: list[tuple[str, list[str]]]  # (title, figures shown)
    lines: dict[str, list[Line]]  # strategy -> its groups, all debtors first
    differences: list[Line]  # strategy - baseline, per persona, paired by seed
    charts: tuple[ChartSpec, ...]

    def label(self, figure: str) -> str:
        if figure == "cost_per_euro":
            return f"cost / {self.currency} collected"
        return METRICS[figure][0]

    def windows(self) -> list[int]:
        return [n for n in WINDOWS if n <= self.days]


def _kind(figure: str) -> str:
    return _KIND.get(METRICS[figure][1], "num")


def _half(mean: float, low: float | None, high: float | None, kind: str) -> str:
    """The interval as " ± h" when symmetric, as " [low, high]" where it was cut at the
    figure's range (a share near 0), so that no false ± is shown."""
    if low is None or high is None:
        return ""
    scale, digits = {"pct": (100.0, 1), "money": (1.0, 3), "days": (1.0, 1)}.get(kind, (1.0, 2))
    below, above = (mean - low) * scale, (high - mean) * scale
    if round(below, digits) == round(above, digits):
        return f" ± {above:.{digits}f}"
    return f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def _cell(estimate: Mapping[str, Any] | None, figure: str, *, difference: bool = False) -> Cell:
    estimate = estimate or {}
    mean = estimate.get("mean")
    interval = estimate.get("ci95") or (None, None)
    low, high = interval[0], interval[1]
    n = int(estimate.get("n") or 0)
    kind = _kind(figure)
    if mean is None:
        return Cell("–", None, None, None, n)
    # Money cells go without the currency: their column names it.
    shown = "pts" if difference and kind == "pct" else kind
    text = format_value(float(mean), shown, currency="", signed=difference)
    text += _half(float(mean), low, high, kind)
    verdict = ""
    if difference and low is not None and high is not None and (low > 0 or high < 0):
        higher_is_better = METRICS[figure][2]
        verdict = "better" if (low > 0) == higher_is_better else "worse"
    return Cell(text, float(mean), low, high, n, verdict)


def _persona_label(key: str, names: Mapping[str, str]) -> str:
    return "All debtors" if key == OVERALL else names.get(key, key)


def _default_names() -> dict[str, str]:
    """The built-in personas' English names (an unknown key shows as it is)."""
    try:
        from parcours.personas.catalog import load_catalog

        catalog = load_catalog()
    except Exception:  # names are a nicety: the key will do
        return {}
    return {key: catalog[key].names.en for key in catalog.keys}


def _personas(report: Mapping[str, Any]) -> list[str]:
    found = {str(g["persona"]) for g in report.get("groups", [])}
    return [OVERALL, *sorted(found - {OVERALL})] if OVERALL in found else sorted(found)


def _strategies(report: Mapping[str, Any]) -> list[str]:
    named = list(report.get("strategies") or {})
    seen = [str(g["strategy"]) for g in report.get("groups", [])]
    return list(dict.fromkeys([*named, *seen]))


def _group(
    report: Mapping[str, Any], strategy: str, arm: str | None, persona: str
) -> Mapping[str, Any] | None:
    return next(
        (
            g
            for g in report.get("groups", [])
            if g["strategy"] == strategy and g.get("arm") == arm and g["persona"] == persona
        ),
        None,
    )


def series_of(report: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """The lines compared in the charts, as (label, strategy, arm): each strategy, or each
    arm of a strategy that is an experiment (its arms are what it compares)."""
    out: list[tuple[str, str, str | None]] = []
    for strategy in _strategies(report):
        arms = sorted(
            {
                str(g["arm"])
                for g in report.get("groups", [])
                if g["strategy"] == strategy and g.get("arm")
            }
        )
        if arms:
            out.extend((f"{strategy} · {arm}", strategy, arm) for arm in arms)
        else:
            out.append((strategy, strategy, None))
    return out


def simulation_view(
    report: Mapping[str, Any], *, persona_names: Mapping[str, str] | None = None
) -> SimulationView:
    """The report's tables: per strategy, each persona (and arm) with every figure's mean
    and 95 % interval; each strategy's paired difference to the baseline."""
    names = dict(_default_names() if persona_names is None else persona_names)
    currency = str(report.get("currency") or "EUR")
    days = int(report["days"])
    order = {p: i for i, p in enumerate(_personas(report))}
    lines: dict[str, list[Line]] = {}
    for strategy in _strategies(report):
        groups = [g for g in report.get("groups", []) if g["strategy"] == strategy]
        groups.sort(key=lambda g: (g.get("arm") or "", order.get(g["persona"], 0)))
        lines[strategy] = [
            Line(
                strategy, g.get("arm"), str(g["persona"]), _persona_label(g["persona"], names),
                float(g.get("cases") or 0),
                {m: _cell(g["metrics"].get(m), m) for m in METRICS},
            )
            for g in groups
        ]  # fmt: skip
    differences = [
        Line(
            str(d["strategy"]), None, str(d["persona"]), _persona_label(d["persona"], names), 0,
            {m: _cell(d["metrics"].get(m), m, difference=True) for m in METRICS},
        )
        for d in report.get("differences", [])
    ]  # fmt: skip
    tables = [
        (title, [m for m in figures if not m.startswith("collection_rate_")
                 or int(m.rsplit("_", 1)[1]) <= days])
        for title, figures in TABLES
    ]  # fmt: skip
    charts = tuple(
        c for c in CHARTS if not c.key.startswith("difference-") or report.get("differences")
    )
    return SimulationView(
        days=days,
        seeds=tuple(int(s) for s in report.get("seeds") or ()),
        cases=int(report.get("cases") or 0),
        currency=currency,
        start=str(report.get("start") or ""),
        portfolio=str(report.get("portfolio") or ""),
        baseline=report.get("baseline"),
        strategies={str(k): str(v) for k, v in (report.get("strategies") or {}).items()},
        costs={str(k): str(v) for k, v in (report.get("costs") or {}).items()},
        tables=[t for t in tables if t[1]],
        lines=lines,
        differences=differences,
        charts=charts,
    )


def _point(estimate: Mapping[str, Any] | None) -> Point | None:
    if not estimate or estimate.get("mean") is None:
        return None
    interval = estimate.get("ci95") or (None, None)
    return Point(float(estimate["mean"]), interval[0], interval[1])


def simulation_chart(
    report: Mapping[str, Any], key: str, *, persona_names: Mapping[str, str] | None = None
) -> str:
    """One chart of the report (a key of `CHARTS`) as SVG text. KeyError for another."""
    if key not in {c.key for c in CHARTS}:
        raise KeyError(key)
    names = dict(_default_names() if persona_names is None else persona_names)
    currency = str(report.get("currency") or "EUR")
    days = int(report["days"])
    lines = series_of(report)
    if key == "collection":
        windows = [n for n in WINDOWS if n <= days]
        series = [
            Series(label, tuple(
                _point((_group(report, strategy, arm, OVERALL) or {}).get("metrics", {})
                       .get(f"collection_rate_{n}"))
                for n in windows
            ))
            for label, strategy, arm in lines
        ]  # fmt: skip
        return curve_chart(
            "Collected within N days of placement (all debtors; whiskers: 95% interval)",
            windows, series, kind="pct", currency=currency,
        )  # fmt: skip
    kind_of, figure = key.split("-", 1)
    personas = _personas(report)
    labels = [_persona_label(p, names) for p in personas]
    what = METRICS[figure][0]
    if kind_of == "persona":
        series = [
            Series(label, tuple(
                _point((_group(report, strategy, arm, p) or {}).get("metrics", {}).get(figure))
                for p in personas
            ))
            for label, strategy, arm in lines
        ]  # fmt: skip
        return bar_chart(
            f"{_cap(what)}, by persona (whiskers: 95% interval)", labels, series,
            kind=_kind(figure), currency=currency,
            note=f"{report.get('cases', 0):,} simulated cases, {days} days, "
                 f"{len(report.get('seeds') or ())} seeds",
        )  # fmt: skip
    rows = []
    for d in report.get("differences", []):
        estimate = d["metrics"].get(figure) or {}
        interval = estimate.get("ci95") or (None, None)
        rows.append(
            UpliftRow(
                f"{_persona_label(d['persona'], names)}: {d['strategy']} − {d['baseline']}",
                estimate.get("mean"), interval[0], interval[1], None,
            )
        )  # fmt: skip
    kind = "pts" if _kind(figure) == "pct" else _kind(figure)
    return uplift_chart(
        f"{_cap(what)}: each strategy minus the baseline, paired by seed",
        rows, kind=kind, currency=currency,
    )  # fmt: skip


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["count"] = lambda v: f"{v:,.0f}"
    return env


_TEMPLATE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
:root { --text: #1b1b1b; --muted: #4a4a4a; --line: #c8c8c8; --panel: #f4f5f7;
  --better: #1e6b34; --worse: #a4001d; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 90rem; padding: 1rem 1.5rem 3rem; color: var(--text);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.5; }
h1 { font-size: 1.7rem; margin: .5rem 0; }
h2 { font-size: 1.3rem; margin: 2rem 0 .5rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.25rem 0 .25rem; }
.lead { font-size: 1.05rem; }
.honest { background: var(--panel); border-left: 4px solid #0a4fb4; padding: .5rem 1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.scroll { overflow-x: auto; }
:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr.all td { font-weight: 600; background: var(--panel); }
.better { color: var(--better); }
.worse { color: var(--worse); }
figure { margin: 1rem 0 2rem; }
figure svg { width: 100%; max-width: 60rem; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .9rem; }
.small { color: var(--muted); font-size: .9rem; }
</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p class="lead">{{ v.strategies|length }} strateg{{ "y" if v.strategies|length == 1 else "ies" }}
compared on {{ v.cases|count }} simulated cases over {{ v.days }} days, each replayed with
{{ v.seeds|length }} seed{{ "" if v.seeds|length == 1 else "s" }}{% if v.baseline %};
baseline: <strong>{{ v.baseline }}</strong>{% endif %}.</p>
</header>
<main>
<section aria-labelledby="honest">
<h2 id="honest">How to read this report</h2>
<div class="honest">
<p><strong>This is a model, not a forecast.</strong> The debtors are simulated: how often
each persona pays, reads, clicks, promises, complains or opts out follows assumed
parameters (the behaviour model's configuration says which come from published evidence and
which are assumptions). Their contacts went through the real engine — planner, policy gate
and outbox — so the journeys are the real ones; the debtors' answers are not. Read the
figures as how the strategies compare under these assumptions.</p>
<p><strong>“±” is half the width of the 95% confidence interval across seeds</strong>
(Student's t with one degree of freedom less than the number of seeds), in the figure's
unit (percentage points for shares). It measures how much the model's randomness moves a
figure from one replay to the next, not how wrong the model's assumptions may be. With few
seeds it is wide; with one seed there is none. Where the interval meets a figure's range
(a share cannot fall below 0 %) it is cut there and shown as [low, high] instead.</p>
<p><strong>Differences to the baseline are paired seed by seed</strong>: both strategies
met the same simulated debtors with the same random numbers, so the paired interval is much
sharper than comparing two intervals. A difference is marked <span class="better">better</span>
or <span class="worse">worse</span> only when its interval excludes zero.</p>
</div>
</section>

<section aria-labelledby="compared">
<h2 id="compared">What was compared</h2>
<dl class="facts">
{% for name, what in v.strategies.items() %}<dt>{{ name }}</dt><dd>{{ what }}</dd>
{% endfor %}
<dt>Cases</dt><dd>{{ v.cases|count }}
{%- if v.portfolio %} (portfolio {{ v.portfolio }}){% endif %}</dd>
<dt>Days simulated</dt><dd>{{ v.days }}{% if v.start %}, from {{ v.start }}{% endif %}</dd>
<dt>Seeds</dt><dd>{{ v.seeds|join(", ") }}</dd>
<dt>Currency</dt><dd>{{ v.currency }}</dd>
</dl>
{% if v.costs %}
<table>
<caption>Contact costs assumed ({{ v.currency }} per contact)</caption>
<thead><tr>{% for name in v.costs %}
<th scope="col" class="num">{{ name|replace("_", " ") }}</th>{% endfor %}</tr></thead>
<tbody><tr>{% for value in v.costs.values() %}
<td class="num">{{ value }}</td>{% endfor %}</tr></tbody>
</table>
{% endif %}
</section>

<section aria-labelledby="charts">
<h2 id="charts">Comparison charts</h2>
{% for chart in charts %}
<figure>
{{ chart.svg|safe }}
<figcaption>{{ chart.title }}. Whiskers: 95% interval across seeds; the tables below give
every figure.</figcaption>
</figure>
{% endfor %}
</section>

<section aria-labelledby="tables">
<h2 id="tables">KPIs per persona{% if has_arms %} and arm{% endif %}, each strategy</h2>
{% for strategy, lines in v.lines.items() %}
<h3>{{ strategy }}{% if v.strategies.get(strategy) %}
<span class="small">— {{ v.strategies[strategy] }}</span>{% endif %}</h3>
{% for title, figures in v.tables %}
<div class="scroll" tabindex="0" role="region" aria-label="{{ strategy }}: {{ title }}">
<table>
<caption>{{ strategy }}: {{ title }} (mean ± half the 95% interval)</caption>
<thead><tr><th scope="col">Arm</th><th scope="col">Persona</th>
<th scope="col" class="num">Cases</th>
{% for m in figures %}<th scope="col" class="num">{{ v.label(m) }}</th>{% endfor %}</tr></thead>
<tbody>
{% for line in lines %}
<tr{% if line.persona == "(all)" %} class="all"{% endif %}><td>{{ line.arm or "—" }}</td>
<th scope="row">{{ line.label }}</th>
<td class="num">{{ line.cases|count }}</td>
{% for m in figures %}<td class="num">{{ line.cells[m].text }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
</div>
{% endfor %}
{% endfor %}
</section>

{% if v.differences %}
<section aria-labelledby="differences">
<h2 id="differences">Differences to the baseline ({{ v.baseline }})</h2>
<p>Each strategy minus the baseline, seed by seed; ± is half the 95% interval of the paired
difference.</p>
{% for title, figures in v.tables %}
<div class="scroll" tabindex="0" role="region"
aria-label="{{ title }}: strategy − {{ v.baseline }}">
<table>
<caption>{{ title }}: strategy − {{ v.baseline }}</caption>
<thead><tr><th scope="col">Strategy</th><th scope="col">Persona</th>
{% for m in figures %}<th scope="col" class="num">{{ v.label(m) }}</th>{% endfor %}</tr></thead>
<tbody>
{% for line in v.differences %}
<tr{% if line.persona == "(all)" %} class="all"{% endif %}><td>{{ line.strategy }}</td>
<th scope="row">{{ line.label }}</th>
{% for m in figures %}{% set c = line.cells[m] %}
<td class="num{% if c.verdict %} {{ c.verdict }}{% endif %}">{{ c.text }}
{%- if c.verdict %} ({{ c.verdict }}){% endif %}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
</div>
{% endfor %}
</section>
{% endif %}
</main>
<footer><p class="small">Written by parcours{% if written %} on {{ written }}{% endif %}.
Definitions: collected within N days counts payments toward what was placed, made within N
days of placement (fees are not collected money); days to pay counts from the oldest due
date to the payment that settled the case, over the cases settled; contacts are messages
sent and calls made; cost per unit collected applies the costs above; complaints and
opt-outs are shares of cases; CSAT is the mean satisfaction score (1–5) of the answers
given.</p></footer>
</body>
</html>
"""


def render_report(
    report: Mapping[str, Any],
    *,
    title: str = DEFAULT_TITLE,
    persona_names: Mapping[str, str] | None = None,
    written: dt.datetime | None = None,
) -> str:
    """The report as one HTML document (see `write_report`)."""
    names = dict(_default_names() if persona_names is None else persona_names)
    view = simulation_view(report, persona_names=names)
    charts = [
        {"title": c.title, "svg": simulation_chart(report, c.key, persona_names=names)}
        for c in view.charts
    ]
    has_arms = any(line.arm for lines in view.lines.values() for line in lines)
    return (
        _environment()
        .from_string(_TEMPLATE)
        .render(
            title=title, v=view, charts=charts, has_arms=has_arms,
            written=written.strftime("%Y-%m-%d %H:%M UTC") if written else "",
        )
    )  # fmt: skip


def write_report(
    report: Mapping[str, Any],
    path: Path,
    *,
    title: str = DEFAULT_TITLE,
    persona_names: Mapping[str, str] | None = None,
    written: dt.datetime | None = None,
) -> None:
    """Write `report` (a `SimulationReport.as_dict()`) to `path` as one self-contained HTML
    file: inline CSS and SVG, no script, nothing fetched. `persona_names` maps persona
    keys to the names shown (default: the built-in catalog's English names); `written`,
    when given, is printed in the footer (left out by default so that the same report
    gives the same bytes)."""
    text = render_report(report, title=title, persona_names=persona_names, written=written)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
