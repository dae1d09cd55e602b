"""The self-contained `report.html` of a simulation: what was compared, the KPI tables per
persona and arm with their 95 % intervals, the differences to the baseline and the charts
— all inline, nothing fetched, the same bytes for the same report."""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest

from parcours.sim.html_report import (
    CHARTS,
    render_report,
    series_of,
    simulation_chart,
    simulation_view,
    write_report,
)
from parcours.sim.report import SeedRun, compare

NAMES = {"engaged": "The Engaged", "struggling": "The Struggling"}
PERSONAS = ["engaged"] * 4 + ["struggling"] * 4


def seed_run(strategy: str, seed: int, paid: int, *, arms: bool = False) -> SeedRun:
    """Eight debtors owing 100.00 each; the first `paid` pay in full on day 10 (+ the seed),
    the others pay part by day 90 (more with each seed). Persona strategies contact more."""
    n = len(PERSONAS)
    placed = np.full(n, 10_000, dtype=np.int64)
    payer = np.arange(n) < paid
    day = 10 + seed
    collected = {
        w: np.where(payer, 10_000 if w >= day else 0, 1_000 * seed if w >= 90 else 0).astype(
            np.int64
        )
        for w in (30, 60, 90, 120)
    }
    contacts = np.zeros((n, 5), dtype=np.int64)
    contacts[:, 0] = 2 if strategy != "universal" else 1  # e-mails
    contacts[:, 2] = 1  # a letter each
    csat = np.zeros((n, 5), dtype=np.int64)
    csat[:, 3 if strategy != "universal" else 2] = 1
    return SeedRun(
        strategy=strategy, seed=seed, days=120, currency="EUR", persona=list(PERSONAS),
        arm=["a", "b"] * (n // 2) if arms else None, placed_minor=placed,
        due_day=np.zeros(n, dtype=np.int64), collected_at={**collected, 120: collected[120]},
        paid_day=np.where(payer, day, -1).astype(np.int64), contacts=contacts,
        sms_units=np.zeros(n, dtype=np.int64), complaints=np.zeros(n, dtype=np.int64),
        opted_out=np.zeros(n, dtype=np.bool_), disputed=np.zeros(n, dtype=np.bool_),
        promises=np.zeros(n, dtype=np.int64), plans=np.zeros(n, dtype=np.int64), csat=csat,
    )  # fmt: skip


def make_report(seeds: int = 2, *, arms: bool = True) -> dict[str, Any]:
    """A small comparison as `parcours simulate` reports it: persona (6 of 8 pay in full),
    universal (3 of 8 pay, the baseline) and, with `arms`, an experiment of two arms."""
    runs = [seed_run("persona", s, 6) for s in range(1, seeds + 1)]
    runs += [seed_run("universal", s, 3) for s in range(1, seeds + 1)]
    if arms:
        runs += [seed_run("split", s, 5, arms=True) for s in range(1, seeds + 1)]
    strategies = {"persona": "each case on its persona's journey",
                  "universal": "everybody on the universal ladder"}  # fmt: skip
    if arms:
        strategies["split"] = "a sticky 50/50 split"
    report = compare(runs, info={"cases": 8, "strategies": strategies, "portfolio": "demo"})
    return report.as_dict()


@functools.cache
def rendered(seeds: int = 2, *, arms: bool = True) -> str:
    """The report of `make_report` as HTML, drawn once per module (charts take time)."""
    return render_report(make_report(seeds, arms=arms), persona_names=NAMES)


class _Page(HTMLParser):
    """Every tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_the_report_is_one_file_that_fetches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.html"
    write_report(make_report(), path, title="Persona vs universal", persona_names=NAMES)
    html = path.read_text(encoding="utf-8")
    page = parse(html)
    names = [tag for tag, _ in page.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names
    for tag, attrs in page.tags:
        for attribute in ("src", "href", "xlink:href"):
            value = attrs.get(attribute) or ""
            # Only in-document references (an SVG's clip paths, anchors) are allowed.
            assert value == "" or value.startswith("#"), (tag, attribute, value)
    assert "url(http" not in html and "@import" not in html
    assert names.count("svg") == len(CHARTS)
    assert "<title>Persona vs universal</title>" in html
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary left behind


def test_each_inline_chart_is_valid_svg_with_a_text_alternative() -> None:
    html = rendered()
    charts = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(charts) == len(CHARTS)
    ids: list[str] = []
    for svg in charts:
        root = ElementTree.fromstring(svg)  # noqa: S314 - our own SVG
        assert root.get("role") == "img" and root.get("aria-label")
        ids += [e.get("id", "") for e in root.iter() if e.get("id")]
    # Charts inlined side by side must not share an id (clip paths would mix up).
    assert len(ids) == len(set(ids))


def test_the_report_says_what_was_compared_and_what_the_figures_mean() -> None:
    report = make_report(seeds=3)
    text = " ".join(" ".join(parse(rendered(3)).text).split())
    for strategy, what in report["strategies"].items():
        assert strategy in text and what in text
    assert "3 strategies compared on 8 simulated cases over 120 days" in text
    assert "seeds 1, 2, 3" in text.replace("Seeds 1, 2, 3", "seeds 1, 2, 3")
    assert "This is a model, not a forecast." in text
    assert "“±” is half the width of the 95% confidence interval across seeds" in text
    assert "The Engaged" in text and "The Struggling" in text and "All debtors" in text
    # Contact costs as assumed.
    assert "letter" in text and "1.80" in text


def test_the_tables_give_each_group_with_its_interval_and_the_paired_differences() -> None:
    report = make_report(seeds=2)
    view = simulation_view(report, persona_names=NAMES)
    html = rendered(2)
    persona_all = next(
        g for g in report["groups"]
        if g["strategy"] == "persona" and g["arm"] is None and g["persona"] == "(all)"
    )  # fmt: skip
    rate = persona_all["metrics"]["collection_rate"]
    low, high = rate["ci95"]
    expected = f"{rate['mean'] * 100:.1f}% ± {(high - low) / 2 * 100:.1f}"
    assert expected in html
    # The experiment's arms each have their rows.
    arms = {line.arm for line in view.lines["split"]}
    assert arms == {None, "a", "b"}
    assert ">a</td>" in html and ">b</td>" in html
    # persona settles 6 of 8 against universal's 3 of 8 on every seed: a clear gain, in
    # points, marked "better" (the paired interval of a constant gap has no width).
    diff = next(d for d in view.differences if d.strategy == "persona" and d.persona == "(all)")
    cell = diff.cells["paid_rate"]
    assert cell.verdict == "better" and cell.text.startswith("+")
    assert "pts" in cell.text and "(better)" in html
    # More contacts per case is "worse" (lower is better).
    assert diff.cells["contacts_per_case"].verdict == "worse"


def test_a_single_seed_has_no_interval_and_still_renders() -> None:
    report = make_report(seeds=1, arms=False)
    view = simulation_view(report, persona_names=NAMES)
    cell = view.lines["persona"][0].cells["collection_rate"]
    assert cell.low is None and "±" not in cell.text and cell.n == 1
    html = rendered(1, arms=False)
    assert "1 seed" in html and "<svg" in html


def test_windows_past_the_run_are_not_shown() -> None:
    report = make_report()
    report["days"] = 60
    view = simulation_view(report, persona_names=NAMES)
    shown = [m for _, figures in view.tables for m in figures]
    assert "collection_rate_30" in shown and "collection_rate_60" in shown
    assert "collection_rate_90" not in shown and "collection_rate_120" not in shown


def test_the_same_report_gives_the_same_bytes(tmp_path: Path) -> None:
    write_report(make_report(), tmp_path / "a.html", persona_names=NAMES)
    assert (tmp_path / "a.html").read_text(encoding="utf-8") == rendered()


def test_the_charts_compare_each_strategy_and_each_arm() -> None:
    report = make_report()
    assert [label for label, _, _ in series_of(report)] == ["persona", "universal", "split · a",
                                                            "split · b"]  # fmt: skip
    svg = simulation_chart(report, "collection", persona_names=NAMES)
    for label in ("persona", "universal", "split · a", "split · b", "30 d", "120 d"):
        assert f">{label}<" in svg, label
    bars = simulation_chart(report, "persona-csat_mean", persona_names=NAMES)
    assert ">The Struggling<" in bars and ">4.00<" in bars and ">3.00<" in bars
    with pytest.raises(KeyError):
        simulation_chart(report, "nothing")
