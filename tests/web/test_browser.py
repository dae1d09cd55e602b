"""The debtor's link in real headless Chromium (Debian's, driven by Playwright) on a phone
screen: open the link a sent SMS carries, read what is owed, pay through the PSP's
checkout, see the confirmation — and the next ticks send nothing more. axe-core checks
each page; screenshots go to build/screenshots/ (test artefacts)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine

from parcours.store.schema import CaseRow, EnrolmentRow, OutboxRow
from tests.payments.fake_psp import FakePsp
from tests.runtime.test_tick import START, rows, tick
from tests.web.test_psp_flow import world  # noqa: F401 - the server, PSP and portfolio

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}
# Without these, Chromium tries Google's hosts at start and on this closed network waits.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is installed by `make test`"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def accessible(page: Page) -> None:
    """axe-core finds no serious or critical WCAG violation on the page."""
    found = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"]) for v in found if v["impact"] in ("serious", "critical")]
    assert bad == [], bad


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sms_link(engine: Engine, outbox: Path, case: Any) -> str:
    """The token of the personal link in the SMS sent on this case (the file outbox
    writes each message as `<attempt id>.sms.json`)."""
    for attempt, on, channel, status in rows(
        engine, OutboxRow.attempt_id, OutboxRow.case_id, OutboxRow.channel, OutboxRow.status
    ):
        if on == case and channel == "sms" and status == "sent":
            text = json.loads((outbox / f"{attempt}.sms.json").read_text(encoding="utf-8"))["text"]
            found = re.search(r"/p/([A-Za-z0-9_.\-]+)", text)
            assert found, text
            return found.group(1)
    raise AssertionError("no SMS sent on this case")


@pytest.mark.parametrize("world", ["mollie"], indirect=True)
def test_a_debtor_pays_from_the_link_in_her_sms(
    world: tuple[FakePsp, str, Any],  # noqa: F811
    engine: Engine,
    tmp_path: Path,
    browser: Browser,
) -> None:
    psp, public, _ = world
    outbox = tmp_path / "outbox"
    tick(engine, START + dt.timedelta(days=1), outbox)  # the pre-due SMS with her link
    alice = next(c for r, c in rows(engine, CaseRow.ref, CaseRow.id) if r == "C-D1")
    token = sms_link(engine, outbox, alice)

    page = browser.new_page(viewport=PHONE, locale="fr-BE")
    page.goto(f"{public}/p/{token}")
    text = page.inner_text("main")
    assert "C-D1" in text and "120.00 EUR" in text and "+++" in text
    accessible(page)
    shot(page, "debtor-page")

    page.get_by_role("button", name="Payer en ligne").click()
    page.wait_for_url(f"{psp.base_url}/checkout/*")
    page.get_by_role("button", name="Pay").click()  # the PSP's page; its webhook follows
    page.wait_for_url(f"{public}/p/{token}/paid")
    assert "reçu" in page.inner_text("body")
    accessible(page)
    shot(page, "debtor-paid")
    page.close()

    for day in range(2, 30):
        tick(engine, START + dt.timedelta(days=day), outbox)
    exits = dict(rows(engine, EnrolmentRow.case_id, EnrolmentRow.exit_reason))
    assert exits[alice] == "paid"
    after = START + dt.timedelta(days=2)
    sent = rows(engine, OutboxRow.case_id, OutboxRow.status, OutboxRow.sent_at)
    assert not [r for r in sent if r[0] == alice and r[1] == "sent" and r[2] >= after]
