"""The strategists' dashboard in real headless Chromium (Debian's, driven by Playwright) on
a laptop screen: sign in as a strategist, go through every page by the keyboard and the
links, and check that each chart image loaded and drew (a non-zero natural size), that
axe-core finds no serious or critical violation, and that the self-contained report opens
from the file system with its charts drawn. Screenshots go to build/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from pydantic import SecretStr
from sqlalchemy import Engine

from parcours.journeys.library import load_library
from parcours.settings import Settings
from parcours.sim.html_report import CHARTS, write_report
from parcours.store.simulations import SimulationStore
from parcours.web.app import create_app
from tests.channels.conftest import write_channels
from tests.sim.test_html_report import NAMES, make_report
from tests.store.test_analytics import NOW, build
from tests.web.served import Served, free_port
from tests.web.test_backoffice import FAST, PASSWORD, add_users
from tests.web.test_browser import CHROMIUM, accessible, browser, shot  # noqa: F401

LAPTOP = {"width": 1366, "height": 900}
AT = "at=2026-12-01"  # the history's "now" (the server's clock is the real one)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is installed by `make test`"
)


@pytest.fixture
def site(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    acme, _ = build(engine)
    add_users(engine, acme, "acme.example", "strategist")
    with engine.begin() as connection:
        run = SimulationStore(connection, acme).save(make_report(), NOW, "persona vs universal")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=db_url, secret_key=SecretStr("browser-test-secret"), public_url=public,
        channels_file=write_channels(tmp_path / "channels.yaml"),
    )  # fmt: skip
    app = create_app(settings, load_library())
    app.state.backoffice.hasher = FAST
    with Served(app, port):
        yield public, run


def charts_drawn(page: Page) -> int:
    """Every image of the page loaded as a picture with a size; how many there are."""
    page.wait_for_load_state("networkidle")
    found = page.evaluate(
        "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
        "i.naturalWidth, i.naturalHeight, i.alt])"
    )
    for src, complete, width, height, alt in found:
        assert complete and width > 100 and height > 50, (src, width, height)
        assert alt, src
    return len(found)


# The pages' storage is covered on both databases by test_dashboard.py; here, SQLite.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_strategist_reads_the_dashboard(site: tuple[str, Any], browser: Browser) -> None:  # noqa: F811
    public, run = site
    page = browser.new_page(viewport=LAPTOP)
    page.goto(f"{public}/backoffice/login")
    page.get_by_label("Email").fill("strategist@acme.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url(re.compile(r"/backoffice/dashboard$"))
    page.goto(f"{public}/backoffice/dashboard?{AT}")
    assert "6 cases" in page.inner_text("h1")
    assert charts_drawn(page) == 5
    accessible(page)
    shot(page, "dashboard-overview")

    # By the keyboard: the skip link first, then the dashboard's own navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    personas = page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Personas")
    personas.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard/personas\?at=2026-12-01$"))
    page.get_by_role("heading", name="The persona cards").wait_for()
    assert charts_drawn(page) == 5
    accessible(page)
    shot(page, "dashboard-personas")

    page.get_by_role("link", name="Journeys").click()
    page.wait_for_url(re.compile(r"/dashboard/journeys"))
    page.get_by_label("Journey", exact=True).select_option("struggling@1")
    page.get_by_role("button", name="Show the map").click()
    page.wait_for_url(re.compile(r"journey=struggling%401"))
    assert charts_drawn(page) == 2
    journey_map = page.locator("img[src*='journey-map']")
    assert journey_map.evaluate("i => i.naturalHeight") > 300  # a diagram, not a stub
    accessible(page)
    shot(page, "dashboard-journeys")

    page.goto(f"{public}/backoffice/dashboard/experiments?experiment=exp&{AT}")
    assert "against the control arm holdout" in page.inner_text("main")
    assert charts_drawn(page) == 4
    accessible(page)
    shot(page, "dashboard-experiments")

    page.get_by_role("link", name="Simulations").click()
    page.get_by_role("link", name="persona vs universal").click()
    page.wait_for_url(re.compile(rf"/simulations/{run}$"))
    assert charts_drawn(page) == len(CHARTS)
    assert "This is a model, not a forecast." in page.inner_text("main")
    accessible(page)
    shot(page, "dashboard-simulation")
    page.close()


def test_the_report_opens_from_the_file_system(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    path = tmp_path / "report.html"
    write_report(make_report(), path, persona_names=NAMES)
    page = browser.new_page(viewport=LAPTOP)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    assert requests == [path.as_uri()]  # nothing else fetched
    sizes = page.evaluate(
        "Array.from(document.querySelectorAll('figure svg'))"
        ".map(s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])"
    )
    assert len(sizes) == len(CHARTS)
    assert all(w > 300 and h > 100 for w, h in sizes), sizes
    accessible(page)
    shot(page, "dashboard-report")
    page.close()
