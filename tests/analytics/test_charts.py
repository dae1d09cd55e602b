"""Charts as SVG: valid documents with a text alternative, the figures written as text, the
same bytes for the same data (also when drawn from several threads at once), and the
journey map laid out by Graphviz with the counts of each node."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from xml.etree import ElementTree

import pytest

from parcours.analytics import charts
from parcours.analytics.charts import (
    ChartUnavailable,
    Point,
    Series,
    UpliftRow,
    bar_chart,
    curve_chart,
    empty_chart,
    format_interval,
    format_value,
    graphviz_available,
    journey_map_chart,
    time_chart,
    uplift_chart,
)
from parcours.analytics.kpis import JourneyEdge, JourneyMap, NodeStats
from parcours.journeys.library import load_library

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(
    not graphviz_available(), reason="Graphviz's dot (Debian package graphviz) is not installed"
)


def texts(svg: str) -> list[str]:
    """The text of every <text> element, as a reader (or a screen reader) gets it."""
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own SVG
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def check(svg: str) -> ElementTree.Element:
    """A well-formed SVG root with role img, an aria-label and a <title> first."""
    assert svg.startswith("<svg"), svg[:80]
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own SVG
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("aria-label")
    first = root[0]
    assert first.tag == f"{SVG}title" and first.text == root.get("aria-label")
    assert "<script" not in svg and "dc:date" not in svg
    return root


def personas() -> tuple[list[str], list[Series]]:
    return ["engaged", "struggling"], [
        Series("persona", (Point(0.612, 0.58, 0.64), Point(0.401, 0.35, 0.45))),
        Series("universal", (Point(0.553, 0.52, 0.59), None)),
    ]


def test_bars_write_each_value_and_the_description_names_them() -> None:
    categories, series = personas()
    svg = bar_chart("Collection rate", categories, series, kind="pct")
    root = check(svg)
    words = texts(svg)
    for label in ("61.2%", "40.1%", "55.3%", "no data", "engaged", "struggling", "persona",
                  "universal", "Collection rate"):  # fmt: skip
        assert label in words, label
    description = root.get("aria-label") or ""
    assert "engaged: persona 61.2%, universal 55.3%" in description
    assert "struggling: persona 40.1%, universal no data" in description


def test_the_same_data_give_the_same_bytes_and_other_data_other_bytes() -> None:
    categories, series = personas()
    first = bar_chart("Collection rate", categories, series, kind="pct")
    assert bar_chart("Collection rate", categories, series, kind="pct") == first
    moved = [Series("persona", (Point(0.613, 0.58, 0.64), Point(0.401, 0.35, 0.45))), series[1]]
    assert bar_chart("Collection rate", categories, moved, kind="pct") != first


def test_charts_drawn_in_parallel_are_those_drawn_one_by_one() -> None:
    categories, series = personas()
    jobs = [
        lambda: bar_chart("A", categories, series, kind="pct"),
        lambda: curve_chart("B", [30, 60], series, kind="pct"),
        lambda: uplift_chart("C", [UpliftRow("x", 0.02, -0.01, 0.05, 0.2)], kind="pts"),
        lambda: time_chart("D", ["2026-11-02", "2026-11-09"], [("n", [1.0, 2.0])], kind="count"),
    ] * 3
    alone = [job() for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: job(), jobs))
    assert together == alone


def test_two_charts_never_share_an_id() -> None:
    categories, series = personas()
    a = bar_chart("A", categories, series, kind="pct")
    b = bar_chart("B", categories, series, kind="pct")
    ids = re.compile(r'\bid="([^"]+)"')
    assert set(ids.findall(a)).isdisjoint(ids.findall(b))
    # ... and every reference inside a chart points to one of its own ids.
    for svg in (a, b):
        own = set(ids.findall(svg))
        assert set(re.findall(r'href="#([^"]+)"', svg)) <= own
        assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= own


def test_the_curve_labels_each_line_and_its_last_value() -> None:
    _, series = personas()
    svg = curve_chart("Collected within N days", [30, 60], series, kind="pct")
    check(svg)
    words = texts(svg)
    assert {"30 d", "60 d", "persona", "universal"} <= set(words)
    assert "40.1%" in words and "55.3%" in words  # the last defined value of each line
    with pytest.raises(ValueError, match="one point per x"):
        curve_chart("x", [30, 60, 90], series)


def test_weeks_as_bars_stacks_or_lines() -> None:
    weeks = ["2026-11-02", "2026-11-09", "2026-11-16"]
    for style in ("bars", "stacked"):
        svg = time_chart("Contacts", weeks, [("email", [3.0, 0.0, 5.0]), ("sms", [1.0, 2.0, 0.0])],
                         kind="count", style=style)  # fmt: skip
        root = check(svg)
        assert {"2 Nov", "9 Nov", "16 Nov", "email", "sms"} <= set(texts(svg))
        assert "email: 8 in all" in (root.get("aria-label") or "")
    line = time_chart("CSAT", weeks, [("mean", [4.0, None, 3.5])], kind="score", style="line",
                      limits=(1, 5))  # fmt: skip
    assert "mean: 3.75 on average" in (check(line).get("aria-label") or "")
    assert {"1", "2", "3", "4", "5"} <= set(texts(line))  # a score axis in whole points


def test_nothing_to_draw_says_so() -> None:
    assert "No data yet." in texts(bar_chart("Empty", [], [], kind="pct"))
    quiet = time_chart("Weeks", ["2026-11-02"], [("n", [0.0])], kind="count")
    assert "Nothing happened in these weeks." in texts(quiet)
    assert "No data yet." in texts(empty_chart("Anything"))
    assert "too few cases" in " ".join(texts(uplift_chart("U", [UpliftRow("a", None, None,
                                                                           None, None)],
                                                          kind="pts")))  # fmt: skip


def test_uplift_rows_show_the_difference_and_p_value() -> None:
    svg = uplift_chart(
        "Collection rate: arm minus control",
        [UpliftRow("pre_due (all)", 0.072, 0.037, 0.109, 0.0004),
         UpliftRow("pre_due · struggling", -0.031, -0.09, 0.028, 0.31),
         UpliftRow("pre_due · nobody", None, None, None, None)],
        kind="pts",
    )  # fmt: skip
    words = texts(svg)
    assert "+7.2 pts  (p < 0.001)" in words
    assert "-3.1 pts  (p = 0.310)" in words
    assert "no comparison" in words
    label = check(svg).get("aria-label") or ""
    assert "95% interval +3.7 to +10.9 pts" in label


def test_figures_are_written_in_their_unit() -> None:
    assert format_value(0.61234, "pct") == "61.2%"
    assert format_value(0.0123, "pts") == "+1.2 pts"
    assert format_value(-0.00004, "pts") == "+0.0 pts"  # never "-0.0"
    assert format_value(-0.0004, "days", signed=True) == "+0.0 d"
    assert format_value(14.25, "days") == "14.2 d"
    assert format_value(0.01337, "money", currency="EUR") == "0.013 EUR"
    assert format_value(1234567.891, "amount", currency="EUR") == "1,234,567.89 EUR"
    assert format_value(1234567.891, "amount", currency="") == "1,234,567.89"
    assert format_value(1234, "count") == "1,234"
    assert format_value(None, "pct") == "–"
    assert format_value(float("nan"), "pct") == "–"
    assert format_interval(0.58, 0.64, "pct") == "58.0% to 64.0%"
    assert format_interval(-0.012, 0.045, "pts") == "-1.2 to +4.5 pts"
    assert format_interval(None, 0.3, "pct") == ""
    with pytest.raises(ValueError, match="kind"):
        format_value(1.0, "furlongs")


def journey_stats() -> JourneyMap:
    send = NodeStats("send_r1", reached=40, touches=38, touched_cases=38,
                     sent={"email": 38, "sms": 30},
                     outcomes={"delivered": 36, "opened": 20, "clicked": 11, "paid": 9,
                               "promised": 2, "stalled": 15})  # fmt: skip
    paid = NodeStats("gone", reached=9, exited=9, exit_reasons={"paid": 9})
    return JourneyMap(
        journey="occasional@1", window_days=7, nodes=[paid, send],
        edges=[JourneyEdge("(start)", "send_r1", 40), JourneyEdge("send_r1", "gone", 9)],
    )  # fmt: skip


@needs_dot
def test_the_journey_map_draws_the_journey_with_the_counts_of_each_node() -> None:
    journey = load_library().get("occasional", 1)
    svg = journey_map_chart(journey_stats(), journey)
    root = check(svg)
    words = texts(svg)
    assert "40 cases entered" in words
    assert "send_r1" in words
    assert "reached 40" in words
    assert "sent email 38, sms 30" in words
    assert "38 touches → delivered 36 · opened 20 · clicked 11" in words
    assert "paid 9 · promised 2 · stalled 15" in words
    # Every node of the journey is drawn, and the node the cases reached that the
    # definition does not have ("gone") too.
    titles = {"".join(t.itertext()) for t in root.iter(f"{SVG}title")}
    assert {n.id for n in journey.nodes} | {"gone"} <= titles
    # Its edges are the journey's own, labelled by their condition.
    assert "pre_due 45%" in words and "holdout 10%" in words
    assert journey_map_chart(journey_stats(), journey) == svg


@needs_dot
def test_without_its_definition_the_map_draws_the_paths_taken() -> None:
    svg = journey_map_chart(journey_stats())
    words = texts(svg)
    assert "40" in words and "9" in words  # the edges, labelled by cases
    assert "exited here 9" in " ".join(words)


def test_no_dot_no_journey_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts.shutil, "which", lambda _name: None)
    with pytest.raises(ChartUnavailable, match="graphviz"):
        journey_map_chart(journey_stats())
