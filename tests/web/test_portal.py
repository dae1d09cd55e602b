"""The debtor's page over HTTP (starlette's TestClient), on SQLite and PostgreSQL: the
signed link, the second factor and its lock, what is shown, and every action's effect on
the case — with clock travel where time matters."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from jinja2.ext import babel_extract
from pydantic import SecretStr
from sqlalchemy import Engine, select

from parcours.channels.links import Links
from parcours.settings import Settings
from parcours.store.schema import (
    CaseRow,
    CsatRow,
    DebtorRow,
    DisputeRow,
    EventRow,
    PaymentPlanRow,
    PromiseRow,
    SurveyResponseRow,
)
from parcours.web.app import create_app
from parcours.web.portal.access import PORTAL_COOKIE
from parcours.web.portal.i18n import LOCALE_DIR, TEMPLATE_DIR
from tests.channels.conftest import write_channels
from tests.runtime.test_dispatch import DAY_TWO, journeys, plan
from tests.runtime.test_tick import rows

PUBLIC = "https://pay.example"
SECRET = "test-secret"


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Portal:
    client: TestClient
    engine: Engine
    clock: Clock

    def case(self, debtor_ref: str) -> str:
        with self.engine.connect() as connection:
            found = connection.execute(
                select(CaseRow.id)
                .join(DebtorRow, DebtorRow.id == CaseRow.debtor_id)
                .where(DebtorRow.ref == debtor_ref)
            ).scalar_one()
        return str(found)

    def token(self, debtor_ref: str, purpose: Any = "page", at: dt.datetime | None = None) -> str:
        return Links(SECRET, PUBLIC).token(purpose, self.case(debtor_ref), at or self.clock.now)

    def enter(self, debtor_ref: str = "D1", answer: str = "1000") -> str:
        """Open the debtor's link and pass the check; the page's token."""
        token = self.token(debtor_ref)
        assert self.client.get(f"/p/{token}").status_code == 200
        passed = self.client.post(
            f"/p/{token}/check", data={"answer": answer}, follow_redirects=False
        )
        assert passed.status_code == 303, passed.text
        return token

    def csrf(self, token: str, path: str = "") -> str:
        page = self.client.get(f"/p/{token}{path}")
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found is not None, page.text
        return found.group(1)

    def events(self) -> list[str]:
        return [t for (t,) in rows(self.engine, EventRow.type)]


def debtor(portal: Portal, *columns: Any, ref: str = "D1") -> tuple[Any, ...]:
    """Columns of one debtor's row."""
    with portal.engine.connect() as connection:
        return tuple(connection.execute(select(*columns).where(DebtorRow.ref == ref)).one())


@pytest.fixture
def portal(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Portal]:
    plan(engine, tmp_path, journeys())
    settings = Settings(
        database_url=db_url,
        secret_key=SecretStr(SECRET),
        public_url=PUBLIC,
        channels_file=write_channels(tmp_path / "channels.yaml"),
    )
    clock = Clock(DAY_TWO)
    with TestClient(create_app(settings, journeys(), clock=clock), base_url=PUBLIC) as client:
        yield Portal(client, engine, clock)


def test_the_link_asks_the_second_factor_then_shows_what_is_owed(portal: Portal) -> None:
    token = portal.token("D1")
    first = portal.client.get(f"/p/{token}")
    assert first.status_code == 200
    assert "Rue Haute" not in first.text and "120" not in first.text  # nothing before the check
    assert 'autocomplete="postal-code"' in first.text
    assert portal.events() == ["message.clicked"]
    assert portal.client.post(f"/p/{token}/check", data={"answer": "9999"}).status_code == 400
    passed = portal.client.post(
        f"/p/{token}/check", data={"answer": " 1000 "}, follow_redirects=False
    )
    assert passed.status_code == 303
    cookie = passed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/p/" in cookie and "Secure" in cookie
    page = portal.client.get(f"/p/{token}")
    assert page.status_code == 200
    # French by default for Alice: amounts and dates in her locale, the OGM, the QR code.
    assert "120,00\xa0€" in page.text and "5 déc. 2026" in page.text
    assert re.search(r"\+\+\+\d{3}/\d{4}/\d{5}\+\+\+", page.text)
    assert "payto://iban/BE71096123456769" in page.text
    qr = portal.client.get(f"/p/{token}/qr.svg?total=12000")
    assert qr.headers["content-type"] == "image/svg+xml" and qr.text.startswith("<svg")
    assert qr.headers["cache-control"] == "private, max-age=3600"
    assert "Ce que je dois" in page.text
    headers = page.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"


def test_five_wrong_answers_lock_the_page_for_a_while(portal: Portal) -> None:
    token = portal.token("D1")
    portal.client.get(f"/p/{token}")
    codes = [
        portal.client.post(f"/p/{token}/check", data={"answer": "0000"}).status_code
        for _ in range(5)
    ]
    assert codes == [400, 400, 400, 400, 429]
    # Locked: even the right answer is refused until the lock ends.
    assert portal.client.post(f"/p/{token}/check", data={"answer": "1000"}).status_code == 429
    portal.clock.now += dt.timedelta(minutes=16)
    token = portal.token("D1")
    passed = portal.client.post(
        f"/p/{token}/check", data={"answer": "1000"}, follow_redirects=False
    )
    assert passed.status_code == 303


def test_failures_spread_over_time_do_not_lock(portal: Portal) -> None:
    token = portal.token("D1")
    for _ in range(3):
        for _ in range(4):
            assert portal.client.post(f"/p/{token}/check", data={"answer": "0"}).status_code == 400
        portal.clock.now += dt.timedelta(minutes=16)
        token = portal.token("D1")


def test_forged_expired_and_other_debtors_links_show_nothing(portal: Portal) -> None:
    token = portal.enter("D1")
    assert portal.client.get(f"/p/{token[:-3]}AAA").status_code == 404
    old = portal.token("D1", at=portal.clock.now - dt.timedelta(days=91))
    assert portal.client.get(f"/p/{old}").status_code == 410
    opt_out_token = portal.token("D1", purpose="opt-out")
    assert portal.client.get(f"/p/{opt_out_token}").status_code == 404  # wrong purpose
    # Alice's cookie does not open Bruno's page: he is asked his own postcode.
    other = portal.token("D2")
    page = portal.client.get(f"/p/{other}")
    assert page.status_code == 200 and "80" not in page.text and 'name="answer"' in page.text
    # Nor can it act on his case.
    csrf = portal.csrf(token)
    answer = portal.client.post(
        f"/p/{other}/promise", data={"csrf": csrf, "date": "2026-12-20", "amount": "80"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == f"/p/{other}"
    assert rows(portal.engine, PromiseRow.id) == []


def test_forms_without_the_page_token_are_refused(portal: Portal) -> None:
    token = portal.enter()
    answer = portal.client.post(f"/p/{token}/promise", data={"date": "2026-12-20", "amount": "120"})
    assert answer.status_code == 403
    assert rows(portal.engine, PromiseRow.id) == []


def test_a_promise_is_recorded_and_shown(portal: Portal) -> None:
    token = portal.enter()
    csrf = portal.csrf(token, "/promise")
    bad = portal.client.post(
        f"/p/{token}/promise", data={"csrf": csrf, "date": "20/12", "amount": "12O"}
    )
    assert bad.status_code == 422 and 'value="12O"' in bad.text  # the input is kept
    too_late = portal.client.post(
        f"/p/{token}/promise", data={"csrf": csrf, "date": "2027-06-01", "amount": "120"}
    )
    assert too_late.status_code == 422
    done = portal.client.post(
        f"/p/{token}/promise", data={"csrf": csrf, "date": "2026-12-20", "amount": "120,00"}
    )
    assert done.status_code == 200 and 'name="score"' in done.text
    assert rows(portal.engine, PromiseRow.amount_minor, PromiseRow.due_on, PromiseRow.source) == [
        (12_000, dt.date(2026, 12, 20), "debtor")
    ]
    assert "promise.made" in portal.events()
    assert "20 décembre 2026" in portal.client.get(f"/p/{token}").text


def test_a_plan_shows_its_schedule_before_it_is_confirmed(portal: Portal) -> None:
    token = portal.enter("D3", "3000")  # Chris owes 300.00: plans of up to 12 x 25.00
    preview = portal.client.get(f"/p/{token}/plan?count=3")
    assert preview.status_code == 200 and "Confirm this plan" in preview.text
    assert preview.text.count("100,00\xa0€") == 3  # English as written in Belgium
    fragment = portal.client.get(
        f"/p/{token}/plan?count=3", headers={"HX-Request": "true", "HX-Target": "schedule"}
    )
    assert "<html" not in fragment.text and "Confirm this plan" in fragment.text
    assert rows(portal.engine, PaymentPlanRow.id) == []  # nothing before the confirmation
    csrf = portal.csrf(token)
    refused = portal.client.post(f"/p/{token}/plan", data={"csrf": csrf, "count": "40"})
    assert refused.status_code == 422
    made = portal.client.post(f"/p/{token}/plan", data={"csrf": csrf, "count": "3"})
    assert made.status_code == 200 and made.text.count('class="qr small"') == 3
    assert rows(portal.engine, PaymentPlanRow.total_minor, PaymentPlanRow.source) == [
        (30_000, "debtor")
    ]


def test_a_dispute_pauses_and_is_shown(portal: Portal) -> None:
    token = portal.enter("D2", "2000")
    csrf = portal.csrf(token, "/dispute")
    assert (
        portal.client.post(f"/p/{token}/dispute", data={"csrf": csrf, "reason": "x"}).status_code
        == 422
    )
    done = portal.client.post(
        f"/p/{token}/dispute",
        data={"csrf": csrf, "reason": "already_paid", "evidence": "Betaald op 1/12"},
    )
    assert done.status_code == 200
    assert rows(portal.engine, DisputeRow.reason, DisputeRow.opened_by, DisputeRow.state) == [
        ("already_paid", "debtor", "open")
    ]
    assert "U hebt dit dossier betwist" in portal.client.get(f"/p/{token}").text


def test_preferences_change_language_reminders_and_consent(portal: Portal) -> None:
    token = portal.enter()
    csrf = portal.csrf(token, "/preferences")
    saved = portal.client.post(
        f"/p/{token}/preferences",
        data={"csrf": csrf, "language": "nl", "remind": "yes", "preferred_channel": "sms",
              "channels": ["sms", "letter"]},
    )  # fmt: skip
    assert saved.status_code == 200 and "Uw voorkeuren zijn opgeslagen" in saved.text
    assert debtor(
        portal, DebtorRow.language, DebtorRow.remind_before_due, DebtorRow.preferred_channel,
        DebtorRow.email_consent, DebtorRow.phone_consent,
    ) == ("nl", True, "sms", "opted_out", "granted")  # fmt: skip
    assert "Wat ik verschuldigd ben" in portal.client.get(f"/p/{token}").text
    assert "preferences.changed" in portal.events()


def test_the_language_switcher_changes_only_the_display(portal: Portal) -> None:
    token = portal.enter()
    assert "What I owe" in portal.client.get(f"/p/{token}?lang=en").text
    assert "What I owe" in portal.client.get(f"/p/{token}").text  # remembered
    assert debtor(portal, DebtorRow.language) == ("fr",)


def test_objecting_to_profiling(portal: Portal) -> None:
    token = portal.enter()
    csrf = portal.csrf(token, "/privacy")
    done = portal.client.post(f"/p/{token}/privacy", data={"csrf": csrf, "objects": "yes"})
    assert done.status_code == 200
    assert debtor(portal, DebtorRow.profiling_objection) == (True,)
    assert "profiling.objection" in portal.events()


def test_the_survey_is_scored_and_stored(portal: Portal) -> None:
    token = portal.enter()
    form = portal.client.get(f"/p/{token}/survey").text
    assert form.count("<fieldset>") >= 8
    csrf = portal.csrf(token, "/survey")
    assert portal.client.post(f"/p/{token}/survey", data={"csrf": csrf}).status_code == 422
    answers = {"late_reason": "forgot", "csrf": csrf}
    assert portal.client.post(f"/p/{token}/survey", data=answers).status_code == 200
    stored = rows(portal.engine, SurveyResponseRow.source, SurveyResponseRow.answers)
    assert stored == [("page", {"late_reason": "forgot"})]
    assert "survey.answered" in portal.events()


def test_satisfaction_is_stored_with_persona_and_journey(portal: Portal) -> None:
    token = portal.enter()
    csrf = portal.csrf(token)
    bad = portal.client.post(
        f"/p/{token}/csat", data={"csrf": csrf, "context": "promise", "score": "7"}
    )
    assert bad.status_code == 422
    good = portal.client.post(
        f"/p/{token}/csat",
        data={"csrf": csrf, "context": "promise", "score": "4", "comment": "Simple"},
    )
    assert good.status_code == 200
    assert rows(portal.engine, CsatRow.context, CsatRow.score, CsatRow.journey) == [
        ("promise", 4, "nudge@1")
    ]
    assert "csat.answered" in portal.events()


def test_opting_out_needs_no_second_factor(portal: Portal) -> None:
    token = portal.token("D1", purpose="opt-out")
    assert "Arrêter les messages" in portal.client.get(f"/o/{token}").text
    done = portal.client.post(f"/o/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert debtor(portal, DebtorRow.email_consent) == ("opted_out",)
    assert portal.client.post(f"/o/{token}", data={"channel": "fax"}).status_code == 400


def test_the_cookie_is_scoped_and_signed(portal: Portal) -> None:
    token = portal.enter()
    portal.client.cookies.set(PORTAL_COOKIE, "forged", domain="pay.example", path="/p/")
    assert 'name="answer"' in portal.client.get(f"/p/{token}").text


def _template_messages() -> set[str]:
    found: set[str] = set()
    for path in sorted((TEMPLATE_DIR / "portal").glob("*.html")):
        with path.open("rb") as handle:
            options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "1", "lstrip_blocks": "1"}
            for _, _, message, _ in babel_extract(handle, ("_", "ngettext"), [], options):
                if isinstance(message, str):
                    found.add(message)
                elif message is not None and message[0]:
                    found.add(message[0])
    return found


@pytest.mark.parametrize("language", ["fr", "nl"])
def test_every_word_of_the_page_is_translated(language: str) -> None:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "portal.po").open("rb") as handle:
        catalog = read_po(handle)
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string}
    wanted = _template_messages()
    assert len(wanted) > 100
    assert wanted - translated == set()


def test_a_debtor_posting_too_fast_by_the_plain_form_gets_a_page_saying_so(
    portal: Portal,
) -> None:
    from parcours.web.throttle import Throttle

    portal.client.app.state.chat_hub.debtor_messages = Throttle("1 per minute")  # type: ignore[attr-defined]
    token = portal.enter()
    csrf = portal.csrf(token)
    first = portal.client.post(
        f"/p/{token}/chat", data={"csrf": csrf, "body": "Une question"}, follow_redirects=False
    )
    assert first.status_code == 303
    again = portal.client.post(f"/p/{token}/chat", data={"csrf": csrf, "body": "Encore ?"})
    assert again.status_code == 429
    assert "Trop de messages" in again.text and "attendre une minute" in again.text
    assert "Encore ?" not in portal.client.get(f"/p/{token}/chat").text


def test_the_chat_works_without_javascript(portal: Portal) -> None:
    from parcours.runtime.chat import agent_says
    from parcours.store.schema import ConversationRow

    token = portal.enter()
    csrf = portal.csrf(token)
    assert (
        portal.client.post(f"/p/{token}/chat", data={"csrf": csrf, "body": "  "}).status_code == 422
    )
    sent = portal.client.post(
        f"/p/{token}/chat", data={"csrf": csrf, "body": "Puis-je payer le 20 ?"},
        follow_redirects=False,
    )  # fmt: skip
    assert sent.status_code == 303
    page = portal.client.get(f"/p/{token}/chat")
    assert "Puis-je payer le 20 ?" in page.text and 'name="score"' not in page.text
    assert "dans un délai de 48 heures" in page.text  # the default persona's answer time
    assert "question.asked" in portal.events()
    [(conversation, creditor)] = rows(
        portal.engine, ConversationRow.id, ConversationRow.creditor_id
    )
    agent_says(
        portal.engine, creditor, conversation, None, "Oui, bien sûr.", portal.clock.now, False
    )
    page = portal.client.get(f"/p/{token}/chat")
    assert "Oui, bien sûr." in page.text and 'value="chat"' in page.text  # then: how was it?
