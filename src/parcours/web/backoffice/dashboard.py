"""The strategists' dashboard, behind the back office's sign-in (admins, strategists and
viewers; an agent gets a 403 page).

Pages: `GET /backoffice/dashboard` (the portfolio's KPI tiles and its weeks),
`/dashboard/personas` (the distribution, the persona cards, KPIs per persona),
`/dashboard/journeys?journey=key@version` (KPIs per journey and the journey map),
`/dashboard/experiments?experiment=key` (arms against the control: uplift, interval,
p-value), `/dashboard/simulations` and `/dashboard/simulations/{id}` (saved simulation
runs, with `/report.html` to download one as a self-contained file). Each page takes
`?at=YYYY-MM-DD`: the portfolio as it stood at the end of that day (UTC).

Charts are separate `image/svg+xml` responses (`/dashboard/charts/{name}.svg`,
`/dashboard/simulations/{id}/charts/{key}.svg`) shown with `<img>`: matplotlib's SVG
styles itself inline, which the pages' Content-Security-Policy would block inside the
HTML. Every chart has its figures in a table beside it.

Every query names the signed-in user's creditor; another creditor's simulation run is a
404. Every page view is audited (`dashboard.viewed`, `simulation.viewed`,
`simulation.downloaded`); the chart images of a page are not (they show what its page
view recorded). Figures and charts are kept for a minute per (creditor, query or chart,
moment): a page and its images read the analytics once, and a reload within the minute
reads nothing. A saved simulation run never changes: it is kept while it is recent.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from parcours.analytics.charts import (
    ChartUnavailable,
    Point,
    Series,
    UpliftRow,
    bar_chart,
    format_interval,
    format_value,
    graphviz_available,
    journey_map_chart,
    time_chart,
    uplift_chart,
)
from parcours.analytics.experiments import ArmResult, ExperimentResult
from parcours.analytics.kpis import JourneyMap, KpiRow, WeekRow
from parcours.domain.journey import Journey, SplitNode
from parcours.domain.money import currency_exponent
from parcours.journeys.library import Library
from parcours.sim.html_report import CHARTS, render_report, simulation_chart, simulation_view
from parcours.store.analytics import (
    experiment_results,
    journey_map,
    portfolio_kpis,
    weekly_activity,
)
from parcours.store.simulations import SimulationRun, SimulationStore
from parcours.web.backoffice.auth import PATH, BackOffice, CurrentUser, Refused, require_user

__all__ = ["FIGURES", "ROLES", "Dashboard", "install", "router"]

ROLES: Final = ("admin", "strategist", "viewer")
HOME: Final = f"{PATH}/dashboard"
WEEKS: Final = 26
KEEP_FIGURES: Final = dt.timedelta(minutes=1)  # figures are read again after this
_KEY: Final = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
_JOURNEY: Final = re.compile(r"^[a-z][a-z0-9_\-]{0,63}@[0-9]{1,9}$")
_SVG: Final = "image/svg+xml"
# What an SVG answer may do if opened on its own: draw itself, nothing else.
_SVG_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

router = APIRouter(prefix=HOME)
Strategist = Annotated[CurrentUser, Depends(require_user(*ROLES))]
T = TypeVar("T")


# -- figures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """A KPI shown per group: its label, how it is written, and how to read it."""

    label: str
    kind: str
    read: Callable[[KpiRow], float | None]
    higher_is_better: bool = True


FIGURES: Final[dict[str, Figure]] = {
    "collection_rate": Figure("Collection rate", "pct", lambda r: r.collection_rate),
    "paid_rate": Figure("Paid in full", "pct", lambda r: r.paid_rate),
    "days_to_pay": Figure("Days to pay (mean)", "days", lambda r: r.days_to_pay_mean, False),
    "promise_kept_rate": Figure("Promises kept", "pct", lambda r: r.promise_kept_rate),
    "right_party_rate": Figure("Right-party contact", "pct", lambda r: r.right_party_rate),
    "contacts_per_case": Figure("Contacts per case", "num", lambda r: r.contacts_per_case, False),
    "cost_to_collect": Figure("Cost to collect", "money", lambda r: r.cost_to_collect, False),
    "csat": Figure("CSAT (1-5)", "score", lambda r: r.csat.mean),
    "complaint_rate": Figure("Complaints", "pct", lambda r: r.complaint_rate, False),
    "opt_out_rate": Figure("Opt-outs", "pct", lambda r: r.opt_out_rate, False),
}
# The per-persona bar charts of the personas page.
PERSONA_CHARTS: Final = ("collection_rate", "days_to_pay", "csat", "cost_to_collect")
EXPERIMENT_METRICS: Final = {
    "collection_rate": ("Collection rate", "pts"),
    "paid_rate": ("Paid in full", "pts"),
    "csat": ("CSAT (1-5)", "score"),
    "days_to_pay": ("Days to pay (mean)", "days"),
}


class _Recent:
    """The last `size` values by key, each made once even when asked for at once by
    several threads (the page and its chart images arrive together)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                found: T = self._values[key]
                return found
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._values:
                    again: T = self._values[key]
                    return again
            try:
                value = make()
                with self._lock:
                    self._values[key] = value
                    while len(self._values) > self.size:
                        self._values.popitem(last=False)
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return value


@dataclass
class Dashboard:
    """What the dashboard keeps between requests: recent figures and charts."""

    figures: _Recent
    charts: _Recent

    @classmethod
    def new(cls) -> Dashboard:
        return cls(_Recent(128), _Recent(256))


def install(app: FastAPI) -> None:
    """Add the dashboard to an app whose back office is mounted (`mount_backoffice`)."""
    office: BackOffice = app.state.backoffice
    app.state.dashboard = Dashboard.new()
    env = office.templates.env
    env.filters["figure"] = lambda value, kind, currency="": format_value(
        value, kind, currency=currency
    )
    env.filters["signed"] = lambda value, kind, currency="": format_value(
        value, kind, currency=currency, signed=True
    )
    env.filters["minor"] = _minor
    env.globals["interval"] = format_interval
    env.globals["p_value"] = _p_value
    app.include_router(router, include_in_schema=False)


def _minor(value: int | None, currency: str, named: bool = True) -> str:
    """An amount in minor units, in major units with its currency (1,234.50 EUR), or
    without it (`named` False: the column names it)."""
    if value is None:
        return "–"
    major = value / 10 ** currency_exponent(currency)
    return format_value(major, "amount", currency=currency if named else "")


def _p_value(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _office(request: Request) -> BackOffice:
    office: BackOffice = request.app.state.backoffice
    return office


def _dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


def _library(request: Request) -> Library:
    library: Library = request.app.state.library
    return library


@dataclass(frozen=True, slots=True)
class Moment:
    """When the figures are read: now, or the end of the day asked for (`?at=`)."""

    now: dt.datetime
    day: dt.date | None  # the day asked for, None for now
    clock: dt.datetime  # when they were asked for

    @property
    def stamp(self) -> tuple[str, str]:
        """The cache's notion of the moment: figures of any moment stay a minute (facts
        dated in the past can still arrive: a bank statement is imported late)."""
        minute = self.clock.replace(second=0, microsecond=0).isoformat()
        return (self.now.isoformat() if self.day else minute, minute)

    @property
    def query(self) -> str:
        """The moment as the query string of a link (empty for now)."""
        return f"at={self.day.isoformat()}" if self.day else ""


def _moment(request: Request) -> Moment:
    text = request.query_params.get("at", "").strip()
    now = _office(request).now()
    if not text:
        return Moment(now, None, now)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise Refused(400, "Not a date", "Give the day as YYYY-MM-DD, e.g. 2026-12-31.") from None
    return Moment(dt.datetime.combine(day, dt.time.max, dt.UTC), day, now)


def _read(
    request: Request,
    user: CurrentUser,
    moment: Moment,
    what: str,
    params: tuple[Any, ...],
    query: Callable[[Any], T],
) -> T:
    """A query of the analytics, kept a minute per (creditor, query, moment)."""
    office = _office(request)

    def run() -> T:
        with office.engine.connect() as connection:
            return query(connection)

    key = (user.creditor_id, what, params, moment.stamp)
    return _dashboard(request).figures.get(key, run)


def _kpis(
    request: Request,
    user: CurrentUser,
    moment: Moment,
    group_by: tuple[str, ...] = (),
    experiment: str | None = None,
) -> list[KpiRow]:
    return _read(
        request, user, moment, "kpis", (group_by, experiment),
        lambda c: portfolio_kpis(
            c, user.creditor_id, moment.now, group_by, experiment=experiment,
            total=not group_by or group_by == ("persona",),
        ),
    )  # fmt: skip


def _by_persona(request: Request, user: CurrentUser, moment: Moment) -> list[KpiRow]:
    """KPIs per persona, the whole portfolio's last (the overview reads the same)."""
    return _kpis(request, user, moment, ("persona",))


def _weeks(request: Request, user: CurrentUser, moment: Moment) -> list[WeekRow]:
    return _read(
        request, user, moment, "weeks", (WEEKS,),
        lambda c: weekly_activity(c, user.creditor_id, moment.now, weeks=WEEKS),
    )  # fmt: skip


def _journey_map(request: Request, user: CurrentUser, moment: Moment, key: str) -> JourneyMap:
    return _read(
        request, user, moment, "map", (key,),
        lambda c: journey_map(c, user.creditor_id, key, moment.now),
    )  # fmt: skip


def _experiment(request: Request, user: CurrentUser, moment: Moment, key: str) -> ExperimentResult:
    return _read(
        request, user, moment, "experiment", (key,),
        lambda c: experiment_results(c, user.creditor_id, key, moment.now),
    )  # fmt: skip


def _chart(
    request: Request, key: tuple[Any, ...], make: Callable[[], str], *, seconds: int = 60
) -> Response:
    svg = _dashboard(request).charts.get(key, make)
    return Response(
        svg, media_type=_SVG,
        headers={
            "Cache-Control": f"private, max-age={seconds}",
            "Content-Security-Policy": _SVG_POLICY,
            "X-Content-Type-Options": "nosniff",
        },
    )  # fmt: skip


def _render(request: Request, user: CurrentUser, template: str, **values: Any) -> Response:
    office = _office(request)
    return office.render(
        request, template, nav="dashboard", user=user, currency_of=_currency, **values
    )


def _currency(rows: Sequence[KpiRow]) -> str:
    return rows[-1].currency if rows else "EUR"


# -- labels -------------------------------------------------------------------------------


def _persona_names(office: BackOffice) -> dict[str, str]:
    catalog = office.catalog()
    names = {key: catalog[key].names.en for key in catalog.keys}
    names["(none)"] = "No persona"
    return names


def _journeys(library: Library, rows: Sequence[KpiRow]) -> list[str]:
    """Journeys to pick from: those with cases, then the library's (key@version)."""
    seen = [r.group.get("journey", "") for r in rows]
    known = [f"{j.key}@{j.version}" for j in library]
    return [j for j in dict.fromkeys([*seen, *known]) if _JOURNEY.fullmatch(j)]


def _definition(library: Library, key: str) -> Journey | None:
    name, version = key.split("@")
    try:
        return library.get(name, int(version))
    except KeyError:
        return None


def _experiments(library: Library) -> list[str]:
    """The experiments of the library: at enrolment (the active one first), then the
    splits inside journeys."""
    active = library.active_experiment()
    keys = [active.key] if active else []
    keys += [e.key for e in library.experiments]
    for journey in library:
        keys += [n.experiment for n in journey.nodes if isinstance(n, SplitNode)]
    return list(dict.fromkeys(keys))


# -- pages --------------------------------------------------------------------------------


def _audit(request: Request, user: CurrentUser, page: str, moment: Moment, **more: Any) -> None:
    details = {"at": moment.day.isoformat() if moment.day else None, **more}
    _office(request).audit(user, "dashboard.viewed", f"dashboard:{page}", details)


@router.get("")
def overview(request: Request, user: Strategist) -> Response:
    moment = _moment(request)
    rows = _by_persona(request, user, moment)
    weeks = _weeks(request, user, moment)
    _audit(request, user, "overview", moment)
    return _render(
        request, user, "dashboard.html", page="overview", moment=moment, total=rows[-1],
        weeks=weeks, currency=_currency(rows),
    )  # fmt: skip


@router.get("/personas")
def personas(request: Request, user: Strategist) -> Response:
    moment = _moment(request)
    office = _office(request)
    rows = _by_persona(request, user, moment)
    catalog = office.catalog()
    library = _library(request)
    total = rows[-1]
    counts = {r.group["persona"]: r.cases for r in rows[:-1]}
    cards = []
    for key in catalog.keys:
        persona = catalog[key]
        journey = library.for_persona(key) or library.for_persona(None)
        cards.append({
            "persona": persona, "cases": counts.get(key, 0),
            "share": counts.get(key, 0) / total.cases if total.cases else None,
            "journey": f"{journey.key}@{journey.version}" if journey else None,
        })  # fmt: skip
    _audit(request, user, "personas", moment)
    return _render(
        request, user, "dashboard_personas.html", page="personas", moment=moment,
        rows=rows[:-1], total=total, cards=cards, names=_persona_names(office),
        figures=FIGURES, charts=PERSONA_CHARTS, currency=_currency(rows),
    )  # fmt: skip


@router.get("/journeys")
def journeys(request: Request, user: Strategist) -> Response:
    moment = _moment(request)
    library = _library(request)
    rows = _kpis(request, user, moment, ("journey",))
    options = _journeys(library, rows)
    chosen = request.query_params.get("journey", "").strip()
    if chosen and not _JOURNEY.fullmatch(chosen):
        raise Refused(404, "No such journey", "Name a journey as key@version, e.g. occasional@1.")
    if chosen and chosen not in options:
        options.append(chosen)
    if not chosen:
        enrolled = [r for r in rows if _JOURNEY.fullmatch(r.group.get("journey", ""))]
        busiest = max(enrolled, key=lambda r: r.cases, default=None)
        chosen = busiest.group["journey"] if busiest else (options[0] if options else "")
    found = _journey_map(request, user, moment, chosen) if chosen else None
    definition = _definition(library, chosen) if chosen else None
    _audit(request, user, "journeys", moment, journey=chosen or None)
    return _render(
        request, user, "dashboard_journeys.html", page="journeys", moment=moment, rows=rows,
        options=options, chosen=chosen, journey_map=found, definition=definition,
        currency=_currency(rows), drawable=graphviz_available(),
    )  # fmt: skip


@router.get("/experiments")
def experiments(request: Request, user: Strategist) -> Response:
    moment = _moment(request)
    options = _experiments(_library(request))
    chosen = request.query_params.get("experiment", "").strip() or (options[0] if options else "")
    if chosen and not _KEY.fullmatch(chosen):
        raise Refused(404, "No such experiment", "Name an experiment by its key.")
    if chosen and chosen not in options:  # arms drawn by an experiment no longer listed
        options.append(chosen)
    result = _experiment(request, user, moment, chosen) if chosen else None
    arms = _kpis(request, user, moment, ("arm",), chosen) if chosen else []
    _audit(request, user, "experiments", moment, experiment=chosen or None)
    return _render(
        request, user, "dashboard_experiments.html", page="experiments", moment=moment,
        options=options, chosen=chosen, result=result, arms=arms,
        names=_persona_names(_office(request)), metrics=EXPERIMENT_METRICS,
        currency=result.currency if result else "EUR",
    )  # fmt: skip


@router.get("/simulations")
def simulations(request: Request, user: Strategist) -> Response:
    office = _office(request)
    with office.engine.connect() as connection:
        runs = SimulationStore(connection, user.creditor_id).list()
    moment = Moment(office.now(), None, office.now())
    _audit(request, user, "simulations", moment, runs=len(runs))
    return _render(
        request, user, "dashboard_simulations.html", page="simulations", moment=moment,
        runs=runs,
    )  # fmt: skip


def _run(request: Request, user: CurrentUser, run_id: str) -> SimulationRun:
    """One of the user's creditor's saved runs (kept: a saved run never changes)."""
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        raise Refused(404, "No such simulation run") from None
    office = _office(request)

    def read() -> SimulationRun | None:
        with office.engine.connect() as connection:
            return SimulationStore(connection, user.creditor_id).get(key)

    found = _dashboard(request).figures.get((user.creditor_id, "run", key), read)
    if found is None or found.report is None:
        raise Refused(404, "No such simulation run")
    return found


@router.get("/simulations/{run_id}")
def simulation(run_id: str, request: Request, user: Strategist) -> Response:
    run = _run(request, user, run_id)
    assert run.report is not None
    office = _office(request)
    view = simulation_view(run.report, persona_names=_persona_names(office))
    office.audit(user, "simulation.viewed", f"simulation:{run.id}")
    return _render(
        request, user, "dashboard_simulation.html", page="simulations",
        moment=Moment(office.now(), None, office.now()), run=run, v=view,
        has_arms=any(line.arm for lines in view.lines.values() for line in lines),
    )  # fmt: skip


@router.get("/simulations/{run_id}/report.html")
def simulation_report(run_id: str, request: Request, user: Strategist) -> Response:
    run = _run(request, user, run_id)
    assert run.report is not None
    office = _office(request)
    text = render_report(
        run.report, title=f"Simulation: {run.label}", persona_names=_persona_names(office),
        written=run.created_at,
    )  # fmt: skip
    office.audit(user, "simulation.downloaded", f"simulation:{run.id}")
    name = f"parcours-simulation-{run.created_at:%Y%m%d-%H%M}.html"
    return Response(
        text, media_type="text/html",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )  # fmt: skip


@router.get("/simulations/{run_id}/charts/{key}.svg")
def simulation_chart_svg(run_id: str, key: str, request: Request, user: Strategist) -> Response:
    if key not in {c.key for c in CHARTS}:
        raise Refused(404, "No such chart")
    run = _run(request, user, run_id)
    assert run.report is not None
    report = run.report
    names = _persona_names(_office(request))
    return _chart(
        request, (user.creditor_id, "simulation", run.id, key),
        lambda: simulation_chart(report, key, persona_names=names), seconds=600,
    )  # fmt: skip


# -- the portfolio's charts ---------------------------------------------------------------


def _week_labels(weeks: Sequence[WeekRow]) -> list[str]:
    return [w.week for w in weeks]


def _weekly_chart(name: str, weeks: list[WeekRow]) -> str:
    labels = _week_labels(weeks)
    currency = weeks[0].currency if weeks else "EUR"
    if name == "collected":
        return time_chart(
            f"Collected per week ({currency})", labels,
            [("collected", [w.collected_minor / 10 ** currency_exponent(currency) for w in weeks])],
            kind="amount",
            currency=currency,
        )  # fmt: skip
    if name == "contacts":
        channels = sorted({c for w in weeks for c in w.messages})
        series = [(c, [float(w.messages.get(c, 0)) for w in weeks]) for c in channels]
        series.append(("calls", [float(w.calls) for w in weeks]))
        return time_chart("Contacts per week, by channel", labels, series, kind="count",
                          style="stacked")  # fmt: skip
    if name == "csat":
        return time_chart(
            "Satisfaction per week (mean score, 1-5)", labels,
            [("mean CSAT", [w.csat.mean for w in weeks])], kind="score", style="line",
            limits=(1, 5),
        )  # fmt: skip
    if name == "promises":
        return time_chart(
            "Promises per week", labels,
            [("made", [float(w.promises_made) for w in weeks]),
             ("kept", [float(w.promises_kept) for w in weeks]),
             ("broken", [float(w.promises_broken) for w in weeks])],
            kind="count",
        )  # fmt: skip
    if name == "service":
        return time_chart(
            "Opt-outs and late chat answers per week", labels,
            [("opt-outs", [float(w.opt_outs) for w in weeks]),
             ("late answers", [float(w.late_answers) for w in weeks])],
            kind="count",
        )  # fmt: skip
    raise Refused(404, "No such chart")


WEEKLY_CHARTS: Final = ("collected", "contacts", "csat", "promises", "service")


def _persona_chart(name: str, rows: list[KpiRow], names: dict[str, str]) -> str:
    groups, total = rows[:-1], rows[-1]
    labels = [names.get(r.group["persona"], r.group["persona"]) for r in groups]
    if name == "distribution":

        def share(cases: int) -> str:
            return format_value(cases / total.cases if total.cases else None, "pct")

        return bar_chart(
            "Cases per persona", labels,
            [Series("cases", tuple(Point(float(r.cases)) for r in groups), tuple(
                f"{r.cases:,} ({share(r.cases)})" for r in groups
            ))],
            kind="count",
        )  # fmt: skip
    figure = FIGURES.get(name)
    if figure is None:
        raise Refused(404, "No such chart")
    values = [figure.read(r) for r in groups]
    overall = figure.read(total)
    return bar_chart(
        f"{figure.label} per persona", labels,
        [Series(figure.label, tuple(None if v is None else Point(v) for v in values))],
        kind=figure.kind, currency=total.currency,
        note=f"whole portfolio: {format_value(overall, figure.kind, currency=total.currency)}",
    )  # fmt: skip


def _journeys_chart(rows: list[KpiRow]) -> str:
    shown = [r for r in rows if r.cases]
    return bar_chart(
        "Collection rate per journey", [r.group.get("journey", "") for r in shown],
        [Series("collection rate", tuple(
            None if r.collection_rate is None else Point(r.collection_rate) for r in shown
        ), tuple(
            f"{format_value(r.collection_rate, 'pct')} of {r.cases:,} case{'s' * (r.cases != 1)}"
            for r in shown
        ))],
        kind="pct",
    )  # fmt: skip


def _arm_label(arm: ArmResult, names: dict[str, str]) -> str:
    if arm.persona is None:
        return f"{arm.arm} (all)"
    return f"{arm.arm} · {names.get(arm.persona, arm.persona)}"


def _experiment_chart(metric: str, result: ExperimentResult, names: dict[str, str]) -> str:
    label, kind = EXPERIMENT_METRICS[metric]
    rows = []
    for arm in [*result.arms, *result.by_persona]:
        if arm.is_control:
            continue
        c = arm.comparisons.get(metric)
        if c is None:
            continue
        low, high = (c.interval.low, c.interval.high) if c.interval else (None, None)
        rows.append(UpliftRow(_arm_label(arm, names), c.uplift, low, high, c.p_value))
    return uplift_chart(
        f"{label}: each arm minus the control ({result.control})", rows, kind=kind,
        currency=result.currency,
    )  # fmt: skip


@router.get("/charts/{name}.svg")
def chart(name: str, request: Request, user: Strategist) -> Response:
    moment = _moment(request)
    key: tuple[Any, ...] = (user.creditor_id, name, moment.stamp)
    if name.startswith("weekly-"):
        which = name.removeprefix("weekly-")
        if which not in WEEKLY_CHARTS:
            raise Refused(404, "No such chart")
        weeks = _weeks(request, user, moment)
        return _chart(request, key, lambda: _weekly_chart(which, weeks))
    if name.startswith("persona-"):
        which = name.removeprefix("persona-")
        if which != "distribution" and which not in FIGURES:
            raise Refused(404, "No such chart")
        rows = _by_persona(request, user, moment)
        names = _persona_names(_office(request))
        return _chart(request, key, lambda: _persona_chart(which, rows, names))
    if name == "journeys":
        rows = _kpis(request, user, moment, ("journey",))
        return _chart(request, key, lambda: _journeys_chart(rows))
    if name == "journey-map":
        chosen = request.query_params.get("journey", "")
        if not _JOURNEY.fullmatch(chosen):
            raise Refused(404, "No such journey")
        found = _journey_map(request, user, moment, chosen)
        definition = _definition(_library(request), chosen)
        try:
            return _chart(request, (*key, chosen), lambda: journey_map_chart(found, definition))
        except ChartUnavailable as exc:
            raise Refused(503, "The journey map cannot be drawn here", str(exc)) from None
    if name.startswith("experiment-"):
        metric = name.removeprefix("experiment-")
        chosen = request.query_params.get("experiment", "")
        if metric not in EXPERIMENT_METRICS or not _KEY.fullmatch(chosen):
            raise Refused(404, "No such chart")
        result = _experiment(request, user, moment, chosen)
        names = _persona_names(_office(request))
        return _chart(request, (*key, chosen), lambda: _experiment_chart(metric, result, names))
    raise Refused(404, "No such chart")
