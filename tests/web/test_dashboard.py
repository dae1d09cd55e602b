"""The strategists' dashboard through the real app (starlette's TestClient) on SQLite and
PostgreSQL: sign-in required, roles (an agent gets a 403 page), tenant isolation (another
creditor's figures never show, its simulation runs are a 404), every page rendering the
hand-made history of `tests.store.test_analytics` with its charts, the `?at=` moment, and
the audit of every view."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, insert

from parcours.journeys.library import load_library
from parcours.settings import Settings
from parcours.store.schema import AuditRow, CaseRow, CreditorRow, CsatRow
from parcours.store.simulations import SimulationStore
from parcours.web.app import create_app
from tests.channels.conftest import write_channels
from tests.runtime.test_tick import rows
from tests.sim.test_html_report import make_report
from tests.store.test_analytics import NOW, build
from tests.web.test_backoffice import FAST, PASSWORD, SECRET, add_users, sign_in

PUBLIC = "https://bo.example"
HOME = "/backoffice/dashboard"
PAGES = (HOME, f"{HOME}/personas", f"{HOME}/journeys", f"{HOME}/experiments?experiment=exp",
         f"{HOME}/simulations")  # fmt: skip


@dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Dash:
    app: FastAPI
    engine: Engine
    acme: uuid.UUID
    globex: uuid.UUID
    acme_run: uuid.UUID
    globex_run: uuid.UUID

    def browser(self, email: str) -> TestClient:
        """A browser signed in as `email`."""
        client = TestClient(self.app, base_url=PUBLIC)
        answer = sign_in(client, email)
        assert answer.status_code == 303, answer.text
        return client

    def audit(self) -> list[tuple[str, str, str | None]]:
        return [
            (a, b, c) for a, b, c in rows(self.engine, AuditRow.actor, AuditRow.action,
                                          AuditRow.subject)
        ]  # fmt: skip


@pytest.fixture
def dash(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Dash]:
    acme, globex = build(engine)  # six cases for acme, one for globex (see that module)
    add_users(engine, acme, "acme.example", "admin", "strategist", "viewer", "agent")
    add_users(engine, globex, "globex.example", "strategist")
    with engine.begin() as connection:
        acme_run = SimulationStore(connection, acme).save(make_report(), NOW, "acme trial")
        globex_run = SimulationStore(connection, globex).save(
            make_report(arms=False), NOW, "globex secret trial"
        )
    settings = Settings(
        database_url=db_url, secret_key=SecretStr(SECRET), public_url=PUBLIC,
        channels_file=write_channels(tmp_path / "channels.yaml"),
    )  # fmt: skip
    app = create_app(settings, load_library())
    app.state.backoffice.clock = Clock()
    app.state.backoffice.hasher = FAST
    with TestClient(app, base_url=PUBLIC):
        yield Dash(app, engine, acme, globex, acme_run, globex_run)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.styled = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found)
        if tag in ("style", "script") or "style" in found:
            self.styled = True


def images(html: str) -> list[dict[str, str | None]]:
    parser = _Images()
    parser.feed(html)
    assert not parser.styled, "inline style or script: the CSP would block it"
    return parser.images


def text_of(html: str) -> str:
    """The page's words, one space apart (tags dropped)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_dashboard_needs_a_sign_in(dash: Dash) -> None:
    anonymous = TestClient(dash.app, base_url=PUBLIC)
    for path in (HOME, f"{HOME}/charts/persona-distribution.svg",
                 f"{HOME}/simulations/{dash.acme_run}"):  # fmt: skip
        answer = anonymous.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/backoffice/login")


@pytest.mark.parametrize("role", ["admin", "strategist", "viewer"])
def test_strategists_viewers_and_admins_read_it(dash: Dash, role: str) -> None:
    page = dash.browser(f"{role}@acme.example").get(HOME)
    assert page.status_code == 200
    assert 'href="/backoffice/dashboard" aria-current="page">Dashboard' in page.text


@pytest.mark.parametrize(
    ("role", "first_page"),
    [("agent", "/backoffice/inbox"), ("strategist", HOME), ("viewer", HOME), ("admin", HOME)],
)
def test_each_role_lands_on_its_own_first_page(dash: Dash, role: str, first_page: str) -> None:
    client = TestClient(dash.app, base_url=PUBLIC)
    answer = sign_in(client, f"{role}@acme.example")
    assert answer.status_code == 303 and answer.headers["location"] == first_page


def test_an_agent_gets_a_clear_refusal(dash: Dash) -> None:
    agent = dash.browser("agent@acme.example")
    assert 'href="/backoffice/dashboard"' not in agent.get("/backoffice/inbox").text
    for path in (HOME, f"{HOME}/journeys", f"{HOME}/charts/weekly-collected.svg",
                 f"{HOME}/simulations/{dash.acme_run}/report.html"):  # fmt: skip
        answer = agent.get(path)
        assert answer.status_code == 403, path
        assert "Not allowed for your role" in answer.text
        assert "cannot do this" in answer.text


def test_the_overview_shows_the_portfolio_and_its_weeks(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    page = client.get(HOME)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    words = text_of(page.text)
    # The hand-made history: six cases, 500.00 collected of 690.00 placed, 80.00 open,
    # DSO 60 days, promises 1 kept of 2 judged, calls 2 of 3 with the right person.
    assert "Portfolio overview 6 cases" in words
    assert "Collection rate 72.5% 500.00 EUR collected" in words
    assert "Open balance 80.00 EUR of 690.00 EUR placed" in words
    assert "DSO 60.0 d" in words
    assert "Promises kept 50.0% 1 kept, 1 broken of 5 made" in words
    assert "Right-party contact 66.7% of 3 call attempts" in words
    charts = [i["src"] or "" for i in images(page.text)]
    assert len(charts) == 5
    for image in images(page.text):
        assert image["alt"], image
    for src in charts:
        answer = client.get(src)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/svg+xml"
        assert answer.headers["cache-control"].startswith("private")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        svg = ElementTree.fromstring(answer.text)  # noqa: S314 - our own SVG
        assert svg.get("role") == "img"
    collected = client.get(f"{HOME}/charts/weekly-collected.svg").text
    assert "Collected per week (EUR)" in collected


def test_another_creditor_sees_only_its_own(dash: Dash) -> None:
    globex = dash.browser("strategist@globex.example")
    words = text_of(globex.get(HOME).text)
    assert "Portfolio overview 1 cases" in words
    assert "Open balance 0.00 EUR of 999.00 EUR placed" in words
    assert "globex secret trial" in globex.get(f"{HOME}/simulations").text
    acme = dash.browser("strategist@acme.example")
    listing = acme.get(f"{HOME}/simulations").text
    assert "acme trial" in listing and "globex secret trial" not in listing
    for path in (f"{HOME}/simulations/{dash.globex_run}",
                 f"{HOME}/simulations/{dash.globex_run}/report.html",
                 f"{HOME}/simulations/{dash.globex_run}/charts/collection.svg",
                 f"{HOME}/simulations/{uuid.uuid4()}", f"{HOME}/simulations/not-a-run"):  # fmt: skip
        answer = acme.get(path)
        assert answer.status_code == 404, path
        assert "No such simulation run" in answer.text
    assert globex.get(f"{HOME}/simulations/{dash.globex_run}").status_code == 200


def test_the_personas_page_shows_the_cards_and_kpis_per_persona(dash: Dash) -> None:
    client = dash.browser("viewer@acme.example")
    page = client.get(f"{HOME}/personas")
    assert page.status_code == 200
    words = text_of(page.text)
    # Cases per persona: occasional C1, C2, C6; struggling C3, C4; C5 has none.
    assert "The Occasional 3 50.0% 20.0%" in words
    assert "The Struggling Payer 2 33.3% 20.0%" in words
    assert "No persona 1 16.7%" in words
    assert "Dennis, 44" in words  # the Occasional's card
    assert "All cases 6" in words
    srcs = [i["src"] or "" for i in images(page.text)]
    assert f"{HOME}/charts/persona-distribution.svg" in srcs
    distribution = client.get(f"{HOME}/charts/persona-distribution.svg").text
    assert ">3 (50.0%)<" in distribution and ">The Occasional<" in distribution
    rate = client.get(f"{HOME}/charts/persona-collection_rate.svg").text
    assert "whole portfolio: 72.5%" in rate
    assert client.get(f"{HOME}/charts/persona-nothing.svg").status_code == 404


def test_the_journeys_page_draws_the_busiest_journey_and_any_other(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    page = client.get(f"{HOME}/journeys")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Journey map: occasional@1" in words
    assert "occasional@1 3" in words and "struggling@1 2" in words
    srcs = [i["src"] or "" for i in images(page.text)]
    mapped = next(s for s in srcs if "journey-map" in s)
    assert mapped == f"{HOME}/charts/journey-map.svg?journey=occasional%401"
    if _has_dot():
        svg = client.get(mapped)
        assert svg.status_code == 200
        assert "send_pre_due" in svg.text and "cases entered" in svg.text
    other = client.get(f"{HOME}/journeys", params={"journey": "struggling@1"})
    assert "Journey map: struggling@1" in text_of(other.text)
    assert client.get(f"{HOME}/journeys", params={"journey": "nope"}).status_code == 404
    assert client.get(f"{HOME}/charts/journey-map.svg?journey=x").status_code == 404


def _has_dot() -> bool:
    from parcours.analytics.charts import graphviz_available

    return graphviz_available()


def test_the_experiments_page_compares_each_arm_with_the_control(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    page = client.get(f"{HOME}/experiments", params={"experiment": "exp"})
    assert page.status_code == 200
    words = text_of(page.text)
    assert "against the control arm holdout" in words
    for arm in ("holdout (control)", "no_pre_due", "pre_due"):
        assert arm in words
    # The experiment is not in the library: it is offered anyway, and selected.
    assert '<option value="exp" selected>' in page.text
    srcs = [i["src"] or "" for i in images(page.text)]
    assert len(srcs) == 4
    uplift = client.get(srcs[0]).text
    assert "each arm minus the control (holdout)" in uplift
    assert ">pre_due (all)<" in uplift
    listed = client.get(f"{HOME}/experiments").text  # the library's own experiments
    assert "occasional-pre-due-2026" in listed
    assert client.get(f"{HOME}/experiments?experiment=NOT%20A%20KEY").status_code == 404


def test_a_simulation_run_shows_its_charts_and_tables(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    page = client.get(f"{HOME}/simulations/{dash.acme_run}")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "acme trial" in words and "This is a model, not a forecast." in words
    # The persona strategy's overall collection rate, with half its interval.
    rate = next(
        g
        for g in make_report()["groups"]
        if g["strategy"] == "persona" and g["arm"] is None and g["persona"] == "(all)"
    )["metrics"]["collection_rate"]
    half = (rate["ci95"][1] - rate["ci95"][0]) / 2
    assert f"{rate['mean'] * 100:.1f}% ± {half * 100:.1f}" in words
    assert "split · a" not in words  # arms are rows of the tables, not strategies
    assert "Differences to the baseline (universal)" in words and "(better)" in words
    srcs = [i["src"] or "" for i in images(page.text)]
    assert f"{HOME}/simulations/{dash.acme_run}/charts/collection.svg" in srcs
    chart = client.get(srcs[0])
    assert chart.status_code == 200 and chart.headers["cache-control"] == "private, max-age=600"
    assert client.get(f"{HOME}/simulations/{dash.acme_run}/charts/nope.svg").status_code == 404
    download = client.get(f"{HOME}/simulations/{dash.acme_run}/report.html")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith('attachment; filename="parcours-')
    assert "<svg" in download.text and "<script" not in download.text


def test_figures_as_they_stood_on_a_past_day(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    words = text_of(client.get(HOME, params={"at": "2026-08-15"}).text)
    # On 15 August nothing had been paid since placement (C1 paid on the 20th), and
    # C4 and C5 were not opened yet.
    assert "Portfolio overview 4 cases" in words
    assert "Collection rate 0.0% 0.00 EUR collected" in words
    page = client.get(f"{HOME}/personas", params={"at": "2026-08-15"})
    assert f'href="{HOME}/journeys?at=2026-08-15"' in page.text  # the moment is kept
    bad = client.get(HOME, params={"at": "15/08/2026"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text


def test_every_page_view_is_audited(dash: Dash) -> None:
    client = dash.browser("viewer@acme.example")
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    client.get(f"{HOME}/simulations/{dash.acme_run}")
    client.get(f"{HOME}/simulations/{dash.acme_run}/report.html")
    seen = {(action, subject) for actor, action, subject in dash.audit()
            if actor == "user:viewer@acme.example"}  # fmt: skip
    for page in ("overview", "personas", "journeys", "experiments", "simulations"):
        assert ("dashboard.viewed", f"dashboard:{page}") in seen, page
    assert ("simulation.viewed", f"simulation:{dash.acme_run}") in seen
    assert ("simulation.downloaded", f"simulation:{dash.acme_run}") in seen


def test_figures_are_kept_a_minute(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    assert "of 5, 4 answers" in text_of(client.get(HOME).text)
    case = next(c for c, owner in rows(dash.engine, CaseRow.id, CaseRow.creditor_id)
                if owner == dash.acme)  # fmt: skip
    with dash.engine.begin() as connection:
        connection.execute(
            insert(CsatRow).values(id=uuid.uuid4(), creditor_id=dash.acme, case_id=case,
                                   context="payment", score=1, at=NOW - dt.timedelta(hours=1))
        )  # fmt: skip
    assert "of 5, 4 answers" in text_of(client.get(HOME).text)  # the same minute: kept
    dash.app.state.backoffice.clock.now = NOW + dt.timedelta(seconds=61)
    assert "of 5, 5 answers" in text_of(client.get(HOME).text)


def test_charts_are_kept_and_answer_the_same(dash: Dash) -> None:
    client = dash.browser("strategist@acme.example")
    first = client.get(f"{HOME}/charts/weekly-contacts.svg").text
    assert client.get(f"{HOME}/charts/weekly-contacts.svg").text == first
    # Another moment is other figures, drawn anew.
    earlier = client.get(f"{HOME}/charts/weekly-contacts.svg", params={"at": "2026-09-01"})
    assert earlier.status_code == 200 and earlier.text != first


def test_an_empty_portfolio_still_renders(engine: Engine, db_url: str, tmp_path: Path) -> None:
    empty = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(CreditorRow).values(id=empty, name="empty", created_at=NOW - dt.timedelta(1))
        )
    add_users(engine, empty, "empty.example", "strategist")
    settings = Settings(database_url=db_url, secret_key=SecretStr(SECRET), public_url=PUBLIC,
                        channels_file=write_channels(tmp_path / "c.yaml"))  # fmt: skip
    app = create_app(settings, load_library())
    app.state.backoffice.clock = lambda: NOW
    app.state.backoffice.hasher = FAST
    client = TestClient(app, base_url=PUBLIC)
    assert sign_in(client, "strategist@empty.example", PASSWORD).status_code == 303
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        for image in images(page.text):
            assert client.get(image["src"] or "").status_code == 200, image
    assert "No simulation saved yet." in client.get(f"{HOME}/simulations").text
