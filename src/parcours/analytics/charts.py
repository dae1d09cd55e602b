"""Charts of the strategist's dashboard and of the simulation report, as SVG text.

Plots are drawn by matplotlib through its object API — a `Figure` saved as SVG, no pyplot,
no GUI backend, no global figure list — one figure at a time under a lock, because
matplotlib's settings are process-wide. The journey map is laid out by Graphviz's `dot`
(Debian package `graphviz`, called through the `graphviz` Python package): a journey is a
directed graph with branches and loops, which `dot` ranks into readable layers; a plotting
library has no layout engine for that.

Every chart is deterministic (fixed `svg.hashsalt`, no date in the metadata: the same data
give the same bytes), keeps its words as text (`svg.fonttype` none: searchable, sharp at
any size), and carries a `<title>` with `role="img"` and an `aria-label`, so it has a text
alternative inline as well as in an `<img>`. Charts only draw figures they are given:
the tables beside them (and their `<title>`) say the same in words.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import shutil
import textwrap
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from parcours.analytics.kpis import JourneyMap, NodeStats

__all__ = [
    "KINDS",
    "PALETTE",
    "ChartUnavailable",
    "Kind",
    "Point",
    "Series",
    "UpliftRow",
    "bar_chart",
    "curve_chart",
    "empty_chart",
    "format_interval",
    "format_value",
    "graphviz_available",
    "journey_map_chart",
    "time_chart",
    "uplift_chart",
]

Kind = Literal["pct", "pts", "days", "num", "score", "money", "amount", "count"]
KINDS: Final = ("pct", "pts", "days", "num", "score", "money", "amount", "count")
# Okabe & Ito's colour-blind-safe palette, darkest first (bars carry no text inside).
PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
INK: Final = "#1b1b1b"
MUTED: Final = "#595959"
WIDTH: Final = 7.5  # inches; 72 SVG points each, shown scaled to the page's width
FONT: Final = "DejaVu Sans"
_LOCK = threading.Lock()
_RC: Final[dict[Any, Any]] = {
    "svg.fonttype": "none",  # text stays text
    "svg.image_inline": True,
    "text.parse_math": False,  # a "$" in a label is a dollar, not TeX
    "font.family": "sans-serif",
    "font.sans-serif": [FONT],
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.titlepad": 10,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": True,
    "grid.color": "#dedede",
    "grid.linewidth": 0.8,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
    "figure.facecolor": "#ffffff",
    "savefig.facecolor": "#ffffff",
}
_METADATA: Final = {"Date": None, "Creator": "parcours"}


class ChartUnavailable(RuntimeError):
    """The chart cannot be drawn on this machine (Graphviz's `dot` is not installed)."""


# -- words ------------------------------------------------------------------------------


def format_value(
    value: float | None, kind: str, *, currency: str = "EUR", signed: bool = False
) -> str:
    """A figure as people read it: 61.2% (a share), +3.1 pts (a difference of shares),
    14.5 d, 0.013 EUR (a cost per unit collected), 1,234.56 EUR, 1,234; a dash for none."""
    if value is None or not math.isfinite(value):
        return "–"
    scale = 100 if kind in ("pct", "pts") else 1
    digits = {"pct": 1, "pts": 1, "days": 1, "money": 3, "amount": 2, "count": 0}.get(kind, 2)
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} not in {', '.join(KINDS)}")
    if round(value * scale, digits) == 0:
        value = 0.0  # no "-0.0"
    sign = "+" if signed or kind == "pts" else ""
    number = f"{value * scale:{sign},.{digits}f}"
    money = f" {currency}" if currency else ""
    unit = {"pct": "%", "pts": " pts", "days": " d", "money": money, "amount": money}
    return number + unit.get(kind, "")


def format_interval(
    low: float | None,
    high: float | None,
    kind: str,
    *,
    currency: str = "EUR",
    signed: bool = False,
) -> str:
    """An interval as "58.0% to 64.1%" (differences: "-1.2 to +4.5 pts"), or "" when
    there is none."""
    if low is None or high is None:
        return ""
    if kind == "pts":
        return f"{low * 100:+.1f} to {high * 100:+.1f} pts"
    a = format_value(low, kind, currency=currency, signed=signed)
    b = format_value(high, kind, currency=currency, signed=signed)
    return f"{a} to {b}"


def _axis_formatter(kind: str, currency: str) -> FuncFormatter:
    def text(value: float, _position: float | None) -> str:
        if kind in ("pct", "pts"):
            return f"{value * 100:.0f}%" if kind == "pct" else f"{value * 100:+.0f} pts"
        if kind == "days":
            return f"{value:g} d"
        if kind in ("amount", "count"):
            return _short(value)
        if kind == "money":
            return f"{value:.3g}"
        return f"{value:g}"

    return FuncFormatter(text)


def _short(value: float) -> str:
    """1,500,000 as 1.5M, 12,000 as 12k: axis ticks stay narrow."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:g}M"
    if size >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """A figure and, when known, its confidence interval."""

    mean: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """One colour of a chart: a label and a point per category (None: no figure);
    `texts` replace the values written beside the bars."""

    label: str
    points: tuple[Point | None, ...]
    texts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class UpliftRow:
    """One comparison with the control: the difference, its interval and p-value."""

    label: str
    uplift: float | None
    low: float | None
    high: float | None
    p_value: float | None


# -- drawing --------------------------------------------------------------------------


def _svg(figure: Figure, description: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_METADATA, bbox_inches="tight", pad_inches=0.1)
    return _accessible(buffer.getvalue(), description)


def _accessible(svg: str, description: str) -> str:
    """The SVG with `role="img"`, an `aria-label` and a `<title>` (its text alternative),
    its ids made its own, and without the XML prologue: it can be inlined in HTML as is."""
    start = svg.find("<svg")
    if start < 0:
        raise ValueError("not an SVG document")
    svg = _own_ids(svg[start:], "c" + hashlib.sha256(description.encode()).hexdigest()[:8] + "-")
    close = svg.find(">")
    label = html.escape(description, quote=True)
    return (
        f'{svg[:close]} role="img" aria-label="{label}">'
        f"<title>{html.escape(description, quote=False)}</title>{svg[close + 1 :]}"
    )


_IDS: Final = re.compile(r'\bid="([^"]+)"')
_REFERENCES: Final = (
    re.compile(r'(\bid=")([^"]+)(?=")'),
    re.compile(r'(\bhref="#)([^"]+)(?=")'),
    re.compile(r"(url\(#)([^)]+)(?=\))"),
)


def _own_ids(svg: str, prefix: str) -> str:
    """Every id of the SVG (and each reference to it) with `prefix`: matplotlib names
    its groups `figure_1`, `axes_1`... in every chart, and Graphviz `node1`, `edge1`; two
    charts inlined in one page would share them."""
    ids = set(_IDS.findall(svg))
    if not ids:
        return svg

    def rename(found: re.Match[str]) -> str:
        head, name = found.group(1), found.group(2)
        return f"{head}{prefix}{name}" if name in ids else found.group(0)

    for pattern in _REFERENCES:
        svg = pattern.sub(rename, svg)
    return svg


def _draw(description: str, make: Callable[[], Figure]) -> str:
    # Ids inside the SVG (clip paths, markers) hash this salt: one per chart, so that two
    # charts inlined in one page never share an id, and the same chart always has the same.
    salt = "parcours-" + hashlib.sha256(description.encode()).hexdigest()[:12]
    with _LOCK, mpl.rc_context({**_RC, "svg.hashsalt": salt}):
        return _svg(make(), description)


def empty_chart(title: str, message: str = "No data yet.") -> str:
    """A small chart saying there is nothing to draw (so the page keeps its layout)."""

    def make() -> Figure:
        figure = Figure(figsize=(WIDTH, 1.2))
        ax = figure.add_subplot()
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.0, 0.4, message, color=MUTED, transform=ax.transAxes, fontsize=11)
        return figure

    return _draw(f"{title}: {message}", make)


def _legend_below(ax: Any, count: int) -> None:
    if count > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.12), ncols=min(count, 4))


def _ticks_within(ax: Any, low: float, high: float) -> None:
    """Ticks over the data only: the room left for the value labels gets none (a share
    axis does not go on to 125%)."""
    ticks = MaxNLocator(6).tick_values(low, high)
    ax.set_xticks([t for t in ticks if low - 1e-9 <= t <= high + 1e-9] or [low, high])


def _wrap(label: str, width: int = 22) -> str:
    """A long category name on two or more lines, so the plot keeps its width."""
    return "\n".join(textwrap.wrap(label, width)) or label


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    kind: str,
    currency: str = "EUR",
    note: str = "",
) -> str:
    """Horizontal bars, a group per category and a colour per series, each bar with its
    interval as a whisker (when given) and its value written at its end."""
    if not categories or not series or all(p is None for s in series for p in s.points):
        return empty_chart(title)
    for s in series:
        if len(s.points) != len(categories):
            raise ValueError(f"series {s.label!r}: one point per category")
    n = len(series)
    step = 0.8 / n
    texts = [
        [
            (s.texts[j] if s.texts is not None else None)
            or ("no data" if p is None else format_value(p.mean, kind, currency=currency))
            for j, p in enumerate(s.points)
        ]
        for s in series
    ]
    words = [title] + [
        f"{category}: "
        + ", ".join(
            f"{s.label} {texts[i][j]}" if n > 1 else texts[i][j] for i, s in enumerate(series)
        )
        for j, category in enumerate(categories)
    ]

    def make() -> Figure:
        rows = len(categories) * max(0.4, 0.24 * n)
        figure = Figure(figsize=(WIDTH, 0.9 + rows + (0.35 * math.ceil(n / 3) if n > 1 else 0)))
        ax = figure.add_subplot()
        ends: list[float] = [0.0]
        labels: list[tuple[float, float, str]] = []
        for i, s in enumerate(series):
            ys = [c + (i - (n - 1) / 2) * step for c in range(len(categories))]
            values = [p.mean if p is not None else 0.0 for p in s.points]
            ax.barh(ys, values, height=step * 0.88, color=PALETTE[i % len(PALETTE)], label=s.label)
            whiskers: list[tuple[float, float, float, float]] = []  # x, y, below, above
            for y, p, text in zip(ys, s.points, texts[i], strict=True):
                if p is None:
                    labels.append((0.0, y, text))
                    continue
                reach = p.mean
                if p.low is not None and p.high is not None:
                    whiskers.append(
                        (p.mean, y, max(0.0, p.mean - p.low), max(0.0, p.high - p.mean))
                    )
                    reach = p.high if p.mean >= 0 else p.low
                    ends.extend([p.low, p.high])
                ends.append(p.mean)
                labels.append((reach, y, text))
            if whiskers:  # one call per series
                wx, wy, below, above = (list(v) for v in zip(*whiskers, strict=True))
                ax.errorbar(wx, wy, xerr=[below, above], fmt="none", ecolor=INK, elinewidth=1.1,
                            capsize=3)  # fmt: skip
        low, high = min(ends), max(ends)
        span = (high - low) or 1.0
        for x, y, text in labels:
            right = x >= 0
            ax.annotate(
                text, (x, y), xytext=(4 if right else -4, 0), textcoords="offset points",
                ha="left" if right else "right", va="center", fontsize=9, color=INK,
            )  # fmt: skip
        ax.set_xlim(low - (0.25 * span if low < 0 else 0), high + 0.25 * span)
        _ticks_within(ax, low, high)
        ax.set_yticks(range(len(categories)), [_wrap(c) for c in categories])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.axvline(0, color=MUTED, linewidth=0.8)
        ax.xaxis.set_major_formatter(_axis_formatter(kind, currency))
        ax.set_title(title)
        if note:
            ax.set_xlabel(note, color=MUTED, fontsize=9)
        _legend_below(ax, n)
        return figure

    return _draw(_describe(words), make)


def curve_chart(
    title: str,
    xs: Sequence[int],
    series: Sequence[Series],
    *,
    kind: str = "pct",
    currency: str = "EUR",
    xlabel: str = "days after placement",
) -> str:
    """A line per series over `xs` (days), each point with its interval as a vertical
    whisker; the last point's value is written beside it."""
    if not xs or not series or all(p is None for s in series for p in s.points):
        return empty_chart(title)
    for s in series:
        if len(s.points) != len(xs):
            raise ValueError(f"series {s.label!r}: one point per x")
    n = len(series)
    width = max(xs) - min(xs) or 1
    words = [title] + [
        f"{s.label}: "
        + ", ".join(
            f"{x} d {format_value(p.mean, kind, currency=currency)}"
            for x, p in zip(xs, s.points, strict=True)
            if p is not None
        )
        for s in series
    ]

    def make() -> Figure:
        figure = Figure(figsize=(WIDTH, 3.8 + (0.3 * math.ceil(n / 3) if n > 1 else 0)))
        ax = figure.add_subplot()
        tops: list[float] = [0.0]
        ends: list[tuple[float, str, str]] = []
        for i, s in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            shift = (i - (n - 1) / 2) * width * 0.012
            here = [(x + shift, p) for x, p in zip(xs, s.points, strict=True) if p is not None]
            if not here:
                continue
            ax.plot([x for x, _ in here], [p.mean for _, p in here], marker="o", color=color,
                    label=s.label, linewidth=2)  # fmt: skip
            tops.extend(p.mean for _, p in here)
            bounded = [(x, p) for x, p in here if p.low is not None and p.high is not None]
            if bounded:
                ax.errorbar(
                    [x for x, _ in bounded], [p.mean for _, p in bounded],
                    yerr=[[max(0.0, p.mean - (p.low or 0.0)) for _, p in bounded],
                          [max(0.0, (p.high or 0.0) - p.mean) for _, p in bounded]],
                    fmt="none", ecolor=color, elinewidth=1.2, capsize=4,
                )  # fmt: skip
                tops.extend(p.high or 0.0 for _, p in bounded)
            last = here[-1][1]
            ends.append((last.mean, format_value(last.mean, kind, currency=currency), color))
        top = max(tops) * 1.1 or 1.0
        _label_ends(ax, max(xs) + width * 0.055, ends, gap=top * 0.045)
        ax.set_xticks(list(xs), [f"{x} d" for x in xs])
        ax.set_xlim(min(xs) - width * 0.08, max(xs) + width * 0.2)
        ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(_axis_formatter(kind, currency))
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        _legend_below(ax, n)
        return figure

    return _draw(_describe(words), make)


def _label_ends(ax: Any, x: float, ends: list[tuple[float, str, str]], gap: float) -> None:
    """Write each line's last value at the right, moved apart so that none overlap."""
    at = -math.inf
    for y, text, color in sorted(ends):
        at = max(y, at + gap)
        ax.plot([x], [at], marker="s", markersize=6, color=color, clip_on=False)
        ax.annotate(text, (x, at), xytext=(7, 0), textcoords="offset points", va="center",
                    fontsize=9, color=INK)  # fmt: skip


def time_chart(
    title: str,
    weeks: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    kind: str,
    style: Literal["bars", "stacked", "line"] = "bars",
    currency: str = "EUR",
    limits: tuple[float, float] | None = None,
) -> str:
    """Figures per week (Monday's ISO date) as grouped or stacked bars, or as lines (a
    missing week leaves a gap)."""
    if not weeks or not series or all(v is None or v == 0 for _, vs in series for v in vs):
        return empty_chart(title, "Nothing happened in these weeks.")
    n = len(series)
    words = [f"{title}, weeks of {weeks[0]} to {weeks[-1]}"]
    for label, values in series:
        seen = [v for v in values if v is not None]
        if style == "line":
            mean = sum(seen) / len(seen) if seen else None
            words.append(f"{label}: {format_value(mean, kind, currency=currency)} on average")
        else:
            words.append(f"{label}: {format_value(sum(seen), kind, currency=currency)} in all")

    def make() -> Figure:
        figure = Figure(figsize=(WIDTH, 3.2 + (0.3 * math.ceil(n / 3) if n > 1 else 0)))
        ax = figure.add_subplot()
        xs = list(range(len(weeks)))
        bottoms = [0.0] * len(weeks)
        width = 0.8 if style == "stacked" else 0.8 / n
        for i, (label, values) in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            if style == "line":
                ys = [math.nan if v is None else v for v in values]
                ax.plot(xs, ys, marker="o", markersize=4, color=color, label=label, linewidth=2)
            elif style == "stacked":
                ys = [v or 0.0 for v in values]
                ax.bar(xs, ys, width=width, bottom=bottoms, color=color, label=label)
                bottoms = [b + y for b, y in zip(bottoms, ys, strict=True)]
            else:
                shift = (i - (n - 1) / 2) * width
                ys = [v or 0.0 for v in values]
                ax.bar([x + shift for x in xs], ys, width=width * 0.92, color=color, label=label)
        every = max(1, math.ceil(len(weeks) / 9))
        ticks = xs[::every]
        ax.set_xticks(ticks, [_week_label(weeks[i]) for i in ticks])
        ax.grid(axis="x", visible=False)
        ax.yaxis.set_major_formatter(_axis_formatter(kind, currency))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        if limits is not None:
            ax.set_ylim(*limits)
            if kind == "score":
                ax.yaxis.set_major_locator(MultipleLocator(1))
        ax.set_xlabel("week starting")
        ax.set_title(title)
        _legend_below(ax, n)
        return figure

    return _draw(_describe(words), make)


_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def _week_label(iso: str) -> str:
    found = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", iso)
    if found is None:
        return iso
    return f"{int(found.group(3))} {_MONTHS[int(found.group(2)) - 1]}"


def uplift_chart(
    title: str,
    rows: Sequence[UpliftRow],
    *,
    kind: str,
    currency: str = "EUR",
    alpha: float = 0.05,
) -> str:
    """Differences from the control with their intervals (a forest plot): a dot and a
    whisker per row, the zero line for "no difference"; rows whose test is significant
    at `alpha` are drawn dark, the others grey. The difference and the p-value are
    written beside each row."""
    if all(r.uplift is None for r in rows):
        return empty_chart(title, "No comparison yet: too few cases in an arm.")
    texts = []
    words = [title]
    for row in rows:
        if row.uplift is None:
            texts.append("no comparison")
            words.append(f"{row.label}: no comparison")
            continue
        text = format_value(row.uplift, kind, currency=currency, signed=True)
        if row.p_value is not None:
            text += f"  ({_p(row.p_value)})"
        texts.append(text)
        interval = format_interval(row.low, row.high, kind, currency=currency, signed=True)
        words.append(f"{row.label}: {text}" + (f", 95% interval {interval}" if interval else ""))

    def make() -> Figure:
        figure = Figure(figsize=(WIDTH, 1.1 + 0.5 * len(rows)))
        ax = figure.add_subplot()
        ends: list[float] = [0.0]
        for y, (row, text) in enumerate(zip(rows, texts, strict=True)):
            if row.uplift is None:
                ax.annotate(text, (0, y), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize=9, color=MUTED)  # fmt: skip
                continue
            significant = row.p_value is not None and row.p_value < alpha
            color = PALETTE[0] if significant else "#767676"
            reach = row.uplift
            if row.low is not None and row.high is not None:
                ax.errorbar(
                    row.uplift, y,
                    xerr=[[max(0.0, row.uplift - row.low)], [max(0.0, row.high - row.uplift)]],
                    fmt="o", color=color, ecolor=color, elinewidth=2, capsize=4, markersize=6,
                )  # fmt: skip
                ends.extend([row.low, row.high])
                reach = row.high
            else:
                ax.plot([row.uplift], [y], "o", color=color, markersize=6)
            ends.append(row.uplift)
            ax.annotate(text, (reach, y), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=9, color=INK)  # fmt: skip
        low, high = min(ends), max(ends)
        span = (high - low) or 1.0
        ax.set_xlim(low - 0.08 * span, high + 0.5 * span)
        ax.axvline(0, color=INK, linewidth=1)
        ax.set_yticks(range(len(rows)), [_wrap(r.label, 28) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(_axis_formatter(kind, currency))
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.set_xlabel(f"difference (0: none); whiskers: 95% interval; dark: p < {alpha:g}")
        ax.set_title(title)
        return figure

    return _draw(_describe(words), make)


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _describe(parts: Sequence[str], limit: int = 1500) -> str:
    text = ". ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the journey map --------------------------------------------------------------------

_START_NODE: Final = "__start"  # node ids are keys (a letter first): this cannot clash
_FILL: Final = {
    "send": "#dcebfa",
    "task": "#fde9c8",
    "fee": "#f6dde9",
    "exit": "#dff2e6",
    "wait": "#f2f2f2",
    "wait_event": "#f2f2f2",
    "branch": "#ffffff",
    "split": "#ffffff",
}
_SHAPE: Final = {"branch": "diamond", "split": "hexagon", "exit": "box"}
# The outcomes a touch's row shows on the map, in the order a debtor goes through them.
MAP_OUTCOMES: Final = ("delivered", "opened", "clicked", "paid", "promised", "stalled")


def graphviz_available() -> bool:
    """Whether Graphviz's `dot` is installed (Debian package `graphviz`)."""
    return shutil.which("dot") is not None


def _what(node: Any) -> str:
    """A journey node in a few words (duck-typed on `parcours.domain.journey`'s nodes)."""
    kind = str(getattr(node, "type", ""))
    if kind == "send":
        joiner = " + " if getattr(node, "mode", "first") == "all" else " > "
        return f"send {node.template}: {joiner.join(node.channels)}"
    if kind == "task":
        return f"agent task: {node.kind}"
    if kind == "fee":
        return f"fee: {node.kind}"
    if kind == "exit":
        return f"exit: {node.reason}"
    if kind == "wait":
        sign = "+" if node.days >= 0 else "-"
        return f"wait: {node.anchor} {sign}{abs(node.days)} d"
    if kind == "wait_event":
        return f"wait for {', '.join(str(e) for e in node.events)} (≤ {node.timeout_days} d)"
    if kind == "split":
        return f"experiment {node.experiment}"
    if kind == "branch":
        return "branch"
    return kind


def _edge_label(node: Any, where: str) -> str:
    kind = str(getattr(node, "type", ""))
    if kind == "branch":
        if where == "default":
            return "else"
        case = node.cases[int(where.split(".")[1])]
        args = ", ".join(f"{v}" for v in case.args.values())
        return f"{case.guard}({args})" if args else str(case.guard)
    if kind == "split":
        arm = node.arms[int(where.split(".")[1])]
        total = sum(a.weight for a in node.arms) or 1
        return f"{arm.name} {arm.weight * 100 / total:.0f}%"
    if kind == "wait_event":
        return "event" if where == "on_event" else f"after {node.timeout_days} d"
    return ""


def _counts(stats: NodeStats | None) -> list[str]:
    if stats is None:
        return ["no case yet"]
    lines = []
    here = [f"reached {stats.reached:,}"] if stats.reached else []
    if stats.current:
        here.append(f"here now {stats.current:,}")
    if stats.exited:
        here.append(f"exited here {stats.exited:,}")
    if here:
        lines.append(" · ".join(here))
    if stats.sent:
        lines.append("sent " + ", ".join(f"{k} {v:,}" for k, v in sorted(stats.sent.items())))
    if stats.touches:
        o = stats.outcomes
        lines.append(f"{stats.touches:,} touches → " + " · ".join(
            f"{name} {o.get(name, 0):,}" for name in MAP_OUTCOMES[:3]
        ))  # fmt: skip
        lines.append(" · ".join(f"{name} {o.get(name, 0):,}" for name in MAP_OUTCOMES[3:]))
    return lines or ["no case yet"]


def journey_map_chart(journey_map: JourneyMap, journey: Any = None) -> str:
    """The journey as a diagram, each node with its counts from `journey_map`: cases that
    reached it, stand there now or left the journey there, messages sent, and what the
    touches made there were followed by (delivered, opened, clicked, paid, promised, or
    nothing: stalled). Edges are the journey's own (`journey`, a
    `parcours.domain.journey.Journey`, labelled by their condition); without it, the
    edges the cases took, labelled by how many. Raises `ChartUnavailable` without `dot`."""
    if not graphviz_available():
        raise ChartUnavailable("Graphviz's dot is not installed (Debian package graphviz)")
    import graphviz  # type: ignore[import-untyped]

    graph = graphviz.Digraph(
        name=journey_map.journey,
        graph_attr={
            "rankdir": "TB", "nodesep": "0.3", "ranksep": "0.45", "bgcolor": "#ffffff",
            "fontname": FONT, "fontsize": "14", "labelloc": "t", "labeljust": "l",
            "label": f"Journey map: {journey_map.journey} (outcomes within "
                     f"{journey_map.window_days} days of each touch)",
        },
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": FONT,
                   "fontsize": "10", "color": MUTED, "fontcolor": INK, "margin": "0.12,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "9", "color": "#6b6b6b", "fontcolor": INK},
    )  # fmt: skip
    entered = sum(e.cases for e in journey_map.edges if e.source == "(start)")
    graph.node(_START_NODE, f"{entered:,} cases entered", shape="oval", fillcolor="#ffffff")
    words = [f"Journey map of {journey_map.journey}: {entered:,} cases entered"]
    stats = {n.node_id: n for n in journey_map.nodes}
    drawn: set[str] = set()
    if journey is not None:
        for node in journey.nodes:
            kind = str(node.type)
            found = stats.get(node.id)
            quiet = found is None and kind in ("branch", "split")  # cases pass through at once
            lines = [node.id, _what(node), *([] if quiet else _counts(found))]
            graph.node(
                node.id, "\n".join(lines), shape=_SHAPE.get(kind, "box"),
                fillcolor=_FILL.get(kind, "#ffffff"),
                style="filled" if kind in ("branch", "split") else "rounded,filled",
            )  # fmt: skip
            drawn.add(node.id)
            words.append(f"{node.id} ({_what(node)}): {'; '.join(lines[2:])}")
        graph.edge(_START_NODE, journey.start)
        by_id = {n.id: n for n in journey.nodes}
        for source, where, target in journey.edges():
            graph.edge(source, target, label=_edge_label(by_id[source], where))
    for node_id, found in sorted(stats.items()):
        if node_id in drawn:
            continue
        lines = [node_id, *_counts(found)]
        style = "rounded,filled,dashed" if journey is not None else "rounded,filled"
        graph.node(node_id, "\n".join(lines), fillcolor="#ffffff", style=style)
        words.append(f"{node_id}: {'; '.join(lines[1:])}")
    if journey is None:
        for edge in journey_map.edges:
            source = _START_NODE if edge.source == "(start)" else edge.source
            graph.edge(source, edge.target, label=f"{edge.cases:,}",
                       penwidth=str(1 + min(4.0, 4 * edge.cases / max(entered, 1))))  # fmt: skip
    svg = graph.pipe(format="svg", encoding="utf-8")
    return _accessible(svg, _describe(words, limit=4000))
