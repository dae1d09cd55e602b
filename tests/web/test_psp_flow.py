"""Paying online end to end: the debtor's link → the PSP's hosted checkout (a local server
speaking Mollie's or Stripe's API) → the PSP's webhook to our app on a real port → the
payment booked once → the next tick exits the journey and sends nothing more."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select

from parcours.channels.links import Links
from parcours.settings import Settings
from parcours.store.schema import CaseRow, EnrolmentRow, OutboxRow, PaymentRow
from parcours.web.app import create_app
from tests.channels.conftest import write_channels
from tests.payments.fake_psp import MOLLIE_KEY, STRIPE_KEY, STRIPE_WEBHOOK_SECRET, FakePsp
from tests.runtime.test_tick import START, library, load, rows, tick
from tests.web.served import Served, free_port

SECRET = "test-secret"


@pytest.fixture(params=["mollie", "stripe"])
def world(
    request: pytest.FixtureRequest, engine: Engine, db_url: str, tmp_path: Path
) -> Iterator[tuple[FakePsp, str, Any]]:
    kind = request.param
    load(engine, tmp_path)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with FakePsp(stripe_webhook_url=f"{public}/webhooks/psp/acme") as psp:
        setting: dict[str, Any] = {"kind": kind, "base_url": psp.base_url}
        if kind == "mollie":
            setting["api_key"] = MOLLIE_KEY
        else:
            setting |= {"api_key": STRIPE_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET}
        channels = write_channels(tmp_path / "channels.yaml", psp=setting)
        settings = Settings(
            database_url=db_url,
            secret_key=SecretStr(SECRET),
            public_url=public,
            channels_file=channels,
        )
        with Served(create_app(settings, library()), port):
            yield psp, public, kind


def enter(client: httpx.Client, page: str, answer: str) -> str:
    """Pass the page's second factor; the form token of the page."""
    client.get(page)
    assert client.post(f"{page}/check", data={"answer": answer}).status_code == 303
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(page).text)
    assert found is not None
    return found.group(1)


def _alice(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(select(CaseRow.id).where(CaseRow.ref == "C-D1")).scalar_one())


def test_paying_online_stops_the_journey(
    world: tuple[FakePsp, str, Any], engine: Engine, tmp_path: Path
) -> None:
    psp, public, kind = world
    outbox = tmp_path / "outbox"
    tick(engine, START, outbox)
    case_text = _alice(engine)
    now = dt.datetime.now(dt.UTC)
    link = Links(SECRET, public).url("page", case_text, now)
    token = link.rsplit("/", 1)[1]
    with httpx.Client() as client:
        csrf = enter(client, f"{public}/p/{token}", "1000")
        started = client.post(
            f"{public}/p/{token}/pay", data={"csrf": csrf}, follow_redirects=False
        )
        assert started.status_code == 303
        checkout = started.headers["location"]
        assert checkout.startswith(psp.base_url)
        [payment] = psp.payments.values()
        assert payment.amount_minor == 12_000
        delivered = psp.pay(payment.id)  # the debtor pays; the PSP posts the webhook
        assert delivered is not None and delivered.status == 200, delivered
        back = client.get(f"{public}/p/{token}/paid")
        assert (back.status_code == 200 and "received" in back.text.lower()) or "reçu" in back.text
        # The PSP retries its webhook: booked once.
        again = psp.pay(payment.id) if kind == "mollie" else psp.pay(payment.id, "paid")
        assert again is not None and again.status == 200
    refs = [r for (r,) in rows(engine, PaymentRow.ref)]
    assert refs == [f"psp:{payment.id}"]
    tick(engine, START + dt.timedelta(days=1), outbox)
    for day in range(2, 30):
        tick(engine, START + dt.timedelta(days=day), outbox)
    exits = dict(rows(engine, EnrolmentRow.case_id, EnrolmentRow.exit_reason))
    alice = next(k for k in exits if str(k) == case_text)
    assert exits[alice] == "paid"
    after = START + dt.timedelta(days=1)
    sent = rows(engine, OutboxRow.case_id, OutboxRow.status, OutboxRow.sent_at)
    assert not [r for r in sent if r[0] == alice and r[1] == "sent" and r[2] > after]


def test_forged_or_stale_webhooks_are_refused(
    world: tuple[FakePsp, str, Any], engine: Engine
) -> None:
    psp, public, kind = world
    with httpx.Client() as client:
        if kind == "mollie":  # an id the PSP does not know: fetched back, refused
            answer = client.post(f"{public}/webhooks/psp/acme", data={"id": "tr_forged123"})
        else:
            body = psp.stripe_event("checkout.session.completed", {"id": "cs_x"})
            stale = psp.sign_stripe(body, timestamp=int(time.time()) - 3_600)
            answer = client.post(
                f"{public}/webhooks/psp/acme",
                content=body,
                headers={"Stripe-Signature": stale, "Content-Type": "application/json"},
            )
        assert answer.status_code == 400, answer.text
        bad = client.post(f"{public}/webhooks/psp/nobody", data={"id": "tr_x"})
        assert bad.status_code == 404
    assert rows(engine, PaymentRow.id) == []
