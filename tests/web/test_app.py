"""The web side: Twilio webhooks (signed), debtors' links (signed, expiring), opt-outs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from parcours.channels.sms import twilio_signature
from parcours.runtime.dispatch import dispatch
from parcours.settings import Settings
from parcours.store.schema import DebtorRow, EventRow
from parcours.web.app import create_app
from tests.channels.conftest import write_channels
from tests.channels.fake_sms_gateway import ACCOUNT_SID, AUTH_TOKEN, FakeSmsGateway
from tests.runtime.test_dispatch import DAY_TWO, channel_set, journeys, plan, sms_provider
from tests.runtime.test_tick import rows

PUBLIC = "https://pay.example"
SECRET = "test-secret"


@pytest.fixture
def app(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    creditor = plan(engine, tmp_path, journeys())
    channels = write_channels(
        tmp_path / "channels.yaml",
        providers={
            "sms": {
                "provider": "sms-http", "preset": "twilio", "base_url": "http://127.0.0.1:9",
                "account_sid": ACCOUNT_SID, "token": AUTH_TOKEN,
            }
        },
    )  # fmt: skip
    settings = Settings(
        database_url=db_url,
        secret_key=SecretStr(SECRET),
        public_url=PUBLIC,
        channels_file=channels,
    )
    with TestClient(create_app(settings, journeys()), base_url=PUBLIC) as client:
        yield client, creditor


def send_sms(engine: Engine, tmp_path: Path, creditor: Any) -> dict[str, str]:
    """Dispatch the nudges through the fake gateway; number → Twilio sid."""
    with FakeSmsGateway() as gateway:
        channels = channel_set(tmp_path, journeys(), sms=sms_provider(gateway))
        dispatch(engine, creditor, channels, DAY_TWO)
        channels.close()
        return {m.to: m.ref for m in gateway.messages}


def post_signed(
    client: TestClient, path: str, form: dict[str, str], token: str = AUTH_TOKEN
) -> Any:
    signature = twilio_signature(f"{PUBLIC}{path}", form, token)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_a_signed_delivery_report_becomes_an_event_and_a_forged_one_is_refused(
    app: tuple[TestClient, Any], engine: Engine, tmp_path: Path
) -> None:
    client, creditor = app
    sids = send_sms(engine, tmp_path, creditor)
    path = "/webhooks/sms/acme/status"
    report = {
        "MessageSid": sids["+32470654321"],
        "MessageStatus": "delivered",
        "To": "+32470654321",
    }
    assert post_signed(client, path, report).status_code == 204
    assert post_signed(client, path, report, token="not-the-token").status_code == 403
    assert client.post(path, data=report).status_code == 403  # unsigned
    assert post_signed(client, "/webhooks/sms/nobody/status", report).status_code == 404
    events = [t for (t,) in rows(engine, EventRow.type)]
    assert events.count("message.delivered") == 1


def test_stop_by_sms_opts_the_number_out(
    app: tuple[TestClient, Any], engine: Engine, tmp_path: Path
) -> None:
    client, creditor = app
    send_sms(engine, tmp_path, creditor)
    form = {"From": "+32470123456", "To": "+3225550100", "Body": "Stop", "MessageSid": "SMx"}
    answer = post_signed(client, "/webhooks/sms/acme/inbound", form)
    assert answer.status_code == 200 and answer.text == "<Response/>"
    consent = dict(rows(engine, DebtorRow.ref, DebtorRow.phone_consent))
    assert consent["D1"] == "opted_out" and consent["D2"] == "unknown"
    reply = {"From": "+32470654321", "To": "+3225550100", "Body": "I pay on Friday"}
    assert post_signed(client, "/webhooks/sms/acme/inbound", reply).status_code == 200
    events = [t for (t,) in rows(engine, EventRow.type)]
    assert events.count("message.opted_out") == 1 and events.count("message.replied") == 1
