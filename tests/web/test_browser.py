"""The debtor's link in real headless Chromium (Debian's, driven by Playwright) on a phone
screen: open the link a sent SMS carries, read what is owed, pay through the PSP's
checkout, see the confirmation — and the next ticks send nothing more. axe-core checks
each page; screenshots go to build/screenshots/ (test artefacts)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import Engine

from parcours.channels.links import Links
from parcours.payments.epc import parse_epc_payload
from parcours.store.schema import (
    CaseRow,
    ChatMessageRow,
    CsatRow,
    DisputeRow,
    EnrolmentRow,
    OutboxRow,
    PaymentPlanRow,
    PromiseRow,
)
from parcours.store.users import UserStore
from tests.channels.test_epc import zbar_decode_raw
from tests.payments.fake_psp import FakePsp
from tests.runtime.test_tick import START, rows, tick
from tests.web.test_psp_flow import SECRET, world  # noqa: F401 - the server, PSP and portfolio

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}
AGENT_PASSWORD = "correct horse battery staple"
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


def follow(page: Page, link: Locator) -> None:
    """Click a link htmx boosts and wait until htmx has settled the new content: its
    elements listen for their triggers only from then on."""
    page.evaluate(
        "window.settled = false;"
        "document.body.addEventListener('htmx:afterSettle', () => { window.settled = true; },"
        " {once: true})"
    )
    link.click()
    deadline = time.monotonic() + 30  # polled from here: the page's CSP forbids eval
    while page.evaluate("window.settled") is not True:
        assert time.monotonic() < deadline, "htmx did not settle the new page"
        page.wait_for_timeout(20)


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


def enter(page: Page, url: str, answer: str) -> None:
    """Open the page and pass its second factor (the postcode)."""
    page.goto(url)
    accessible(page)
    page.get_by_label(re.compile("code postal|postcode", re.I)).fill(answer)
    page.get_by_role("button", name=re.compile("Continuer|Doorgaan|Continue")).click()
    page.locator("#owe").wait_for()  # "What I owe": the check is passed


def case_of(engine: Engine, ref: str) -> Any:
    return next(c for r, c in rows(engine, CaseRow.ref, CaseRow.id) if r == ref)


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
    alice = case_of(engine, "C-D1")
    token = sms_link(engine, outbox, alice)

    page = browser.new_page(viewport=PHONE, locale="fr-BE")
    page.goto(f"{public}/p/{token}")
    shot(page, "debtor-check")
    enter(page, f"{public}/p/{token}", "1000")
    text = page.inner_text("main")
    assert "C-D1" in text and "120,00\xa0€" in text and "+++" in text
    assert "5 déc. 2026" in text  # the due date
    accessible(page)
    shot(page, "debtor-page")
    # The QR code as a phone sees it on the screen, read by a real decoder (zbar).
    [data] = zbar_decode_raw(Image.open(io.BytesIO(page.locator("img.qr").screenshot())))
    scanned = parse_epc_payload(data.decode("utf-8"))
    assert scanned.amount_minor == 12_000 and scanned.iban == "BE71096123456769"
    assert scanned.structured_reference is not None
    assert scanned.structured_reference in text.replace("+", "").replace("/", "")

    page.get_by_role("button", name="Payer en ligne").click()
    page.wait_for_url(f"{psp.base_url}/checkout/*")
    page.get_by_role("button", name="Pay").click()  # the PSP's page; its webhook follows
    page.wait_for_url(f"{public}/p/{token}/paid")
    assert "reçu" in page.inner_text("body")
    accessible(page)
    shot(page, "debtor-paid")
    page.locator("label[for=score-4]").click()  # the visible button of the scale
    page.get_by_role("button", name="Envoyer mon avis").click()
    page.wait_for_url(f"{public}/p/{token}/csat")
    page.close()

    for day in range(2, 30):
        tick(engine, START + dt.timedelta(days=day), outbox)
    exits = dict(rows(engine, EnrolmentRow.case_id, EnrolmentRow.exit_reason))
    assert exits[alice] == "paid"
    after = START + dt.timedelta(days=2)
    sent = rows(engine, OutboxRow.case_id, OutboxRow.status, OutboxRow.sent_at)
    assert not [r for r in sent if r[0] == alice and r[1] == "sent" and r[2] >= after]
    assert rows(engine, CsatRow.context, CsatRow.score) == [("payment", 4)]


@pytest.mark.parametrize("world", ["mollie"], indirect=True)
def test_promise_plan_and_dispute_from_a_phone(
    world: tuple[FakePsp, str, Any],  # noqa: F811
    engine: Engine,
    browser: Browser,
) -> None:
    _, public, _ = world
    now = dt.datetime.now(dt.UTC)
    links = Links(SECRET, public)

    bruno = browser.new_page(viewport=PHONE, locale="nl-BE")  # Dutch, owes 80.00
    url = links.url("page", str(case_of(engine, "C-D2")), now)
    enter(bruno, url, "2000")
    bruno.get_by_role("link", name="Ik betaal op een datum").click()
    accessible(bruno)
    day = (now + dt.timedelta(days=10)).date()
    bruno.get_by_label("Datum").fill(day.isoformat())
    bruno.get_by_role("button", name="Mijn belofte bevestigen").click()
    bruno.get_by_text("Uw belofte is genoteerd.").wait_for()
    accessible(bruno)
    shot(bruno, "debtor-promise")
    bruno.close()
    assert rows(engine, PromiseRow.amount_minor, PromiseRow.due_on) == [(8_000, day)]

    chris = browser.new_page(viewport=PHONE, locale="en-BE")  # English, owes 300.00
    url = links.url("page", str(case_of(engine, "C-D3")), now)
    enter(chris, url, "3000")
    follow(chris, chris.get_by_role("link", name="I need a payment plan"))
    count = chris.get_by_label("Number of monthly payments")
    count.select_option("3")
    confirm = chris.get_by_role("button", name="Confirm this plan")
    for _ in range(3):  # under load htmx may still be wiring the form: change it again
        try:
            confirm.wait_for(timeout=5_000)  # htmx drew the schedule
            break
        except PlaywrightTimeout:
            count.dispatch_event("change")
    confirm.wait_for()
    assert chris.locator("ol.schedule li").count() == 3
    accessible(chris)
    shot(chris, "debtor-plan-schedule")
    chris.get_by_role("button", name="Confirm this plan").click()
    chris.get_by_text("Your payment plan is set up.").wait_for()
    assert chris.locator("img.qr").count() == 3
    shot(chris, "debtor-plan-made")
    chris.close()
    assert rows(engine, PaymentPlanRow.total_minor) == [(30_000,)]

    alice = browser.new_page(viewport=PHONE, locale="fr-BE")
    url = links.url("page", str(case_of(engine, "C-D1")), now)
    enter(alice, url, "1000")
    alice.get_by_role("link", name="Je conteste").click()
    alice.get_by_label("Le montant est incorrect").check()
    alice.get_by_label("Expliquez en quelques mots (facultatif)").fill("Compteur mal relevé")
    alice.get_by_role("button", name="Envoyer ma contestation").click()
    alice.get_by_text("Votre contestation est enregistrée.").wait_for()
    accessible(alice)
    shot(alice, "debtor-dispute")
    alice.close()
    assert rows(engine, DisputeRow.reason, DisputeRow.state) == [("amount_wrong", "open")]


@pytest.mark.parametrize("world", ["mollie"], indirect=True)
def test_a_chat_round_trip_with_an_agent_in_the_inbox(
    world: tuple[FakePsp, str, Any],  # noqa: F811
    engine: Engine,
    browser: Browser,
) -> None:
    _, public, _ = world
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        creditor = next(c for (c,) in rows(engine, CaseRow.creditor_id))
        UserStore(connection).add(
            creditor, "agent@acme.be", "Ann Agent", "agent", AGENT_PASSWORD, now
        )

    debtor = browser.new_page(viewport=PHONE, locale="fr-BE")
    enter(debtor, Links(SECRET, public).url("page", str(case_of(engine, "C-D1")), now), "1000")
    debtor.get_by_label("Votre message").fill("Puis-je payer en deux fois ?")
    debtor.get_by_role("button", name="Envoyer", exact=True).click()
    debtor.locator("#chat-log li.debtor").wait_for()

    agent = browser.new_page(viewport={"width": 1280, "height": 900})
    agent.goto(f"{public}/backoffice/login")
    agent.get_by_label("Email").fill("agent@acme.be")
    agent.get_by_label("Password").fill(AGENT_PASSWORD)
    agent.get_by_role("button", name="Sign in").click()
    agent.get_by_role("link", name=re.compile("C-D1")).first.click()
    agent.get_by_text("Puis-je payer en deux fois ?").wait_for()
    accessible(agent)
    shot(agent, "agent-conversation")
    agent.get_by_label("Reply").fill("Oui, choisissez « J'ai besoin d'un plan de paiement ».")
    agent.get_by_role("button", name="Send").click()

    # The debtor's page receives the answer over its WebSocket, without a reload.
    debtor.locator("#chat-log li.agent").wait_for()
    assert "plan de paiement" in debtor.inner_text("#chat-log")
    accessible(debtor)
    shot(debtor, "debtor-chat")
    debtor.close()
    agent.close()
    authors = [a for (a,) in rows(engine, ChatMessageRow.author)]
    assert sorted(authors) == ["agent", "debtor"]
