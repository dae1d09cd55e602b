"""The sms-http provider against a real loopback gateway, and Twilio's webhooks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from parcours.channels.base import DeliveryKind, Outcome, Provider
from parcours.channels.content import Channel, EmailBody, SmsBody
from parcours.channels.gsm import encoding, segments
from parcours.channels.sms import (
    SmsHttpConfig,
    SmsHttpProvider,
    UnsendableSms,
    is_valid_sender,
    parse_inbound,
    parse_status_callback,
    twilio_signature,
    verify_twilio_signature,
)
from tests.channels.conftest import make_content
from tests.channels.fake_sms_gateway import (
    ACCOUNT_SID,
    API_TOKEN,
    AUTH_TOKEN,
    GENERIC_PATH,
    FakeSmsGateway,
    WebhookReceiver,
)

NOW = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
MOBILE = "+32470123456"
TEXT = (
    "Demo Energy: il reste 157,00 € à payer avant le 20/12. "
    "Payez en 2 clics: https://pay.parcours.example/p/tok3n"
)


@pytest.fixture
def gateway() -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway() as running:
        yield running


def twilio_config(gateway: FakeSmsGateway, **changes: Any) -> SmsHttpConfig:
    fields: dict[str, Any] = {
        "preset": "twilio",
        "base_url": gateway.base_url,
        "account_sid": ACCOUNT_SID,
        "token": SecretStr(AUTH_TOKEN),
        "read_timeout_s": 2.0,
    }
    return SmsHttpConfig(**(fields | changes))


def generic_config(gateway: FakeSmsGateway, **changes: Any) -> SmsHttpConfig:
    fields: dict[str, Any] = {
        "preset": "generic",
        "base_url": gateway.base_url,
        "path": GENERIC_PATH,
        "token": SecretStr(API_TOKEN),
        "read_timeout_s": 2.0,
    }
    return SmsHttpConfig(**(fields | changes))


@pytest.fixture(params=["twilio", "generic"])
def provider(request: pytest.FixtureRequest, gateway: FakeSmsGateway) -> Iterator[SmsHttpProvider]:
    make = twilio_config if request.param == "twilio" else generic_config
    with SmsHttpProvider(make(gateway), clock=lambda: NOW) as opened:
        yield opened


def sms(**changes: Any) -> Any:
    return make_content(channel=Channel.SMS, **changes)


# -- sending -------------------------------------------------------------------------


def test_it_is_a_provider() -> None:
    assert SmsHttpProvider.name == "sms-http"
    assert SmsHttpProvider.channel is Channel.SMS
    assert SmsHttpProvider.Config is SmsHttpConfig
    as_provider: type[Provider] = SmsHttpProvider
    assert as_provider is SmsHttpProvider


def test_twilio_send_posts_the_documented_form(gateway: FakeSmsGateway) -> None:
    config = twilio_config(gateway, status_callback_url="https://app.example/sms/status")
    content = sms()
    with SmsHttpProvider(config) as provider:
        result = provider.send(content, SmsBody(TEXT))
    (message,) = gateway.messages
    assert result.outcome is Outcome.SENT
    assert result.provider_ref == message.ref and message.ref.startswith("SM")
    assert result.units == segments(TEXT) == 1
    assert (message.to, message.sender, message.text) == (MOBILE, "DemoEnergy", TEXT)
    assert message.idempotency_key == content.attempt_id
    assert message.status_callback == (
        f"https://app.example/sms/status?attempt={content.attempt_id}"
    )


def test_twilio_messaging_service_replaces_from(gateway: FakeSmsGateway) -> None:
    service = "MG" + "ab" * 16
    with SmsHttpProvider(twilio_config(gateway, messaging_service_sid=service)) as provider:
        payload = provider.build_payload(sms(), SmsBody(TEXT))
        result = provider.send(sms(), SmsBody(TEXT))
    assert "From" not in payload and payload["MessagingServiceSid"] == service
    assert result.outcome is Outcome.SENT
    assert gateway.messages[0].sender == service


def test_generic_send_posts_json(gateway: FakeSmsGateway) -> None:
    content = sms()
    with SmsHttpProvider(generic_config(gateway, sender="+3225550199")) as provider:
        result = provider.send(content, SmsBody(TEXT))
    (message,) = gateway.messages
    assert result.outcome is Outcome.SENT
    assert result.provider_ref == message.ref and message.ref.startswith("msg_")
    assert (message.to, message.sender, message.text) == (MOBILE, "+3225550199", TEXT)
    assert message.idempotency_key == content.attempt_id


def test_units_are_the_segments_billed(provider: SmsHttpProvider) -> None:
    long_french = "Votre échéance est dépassée, merci de régler le solde restant. " * 4
    assert (encoding(long_french), segments(long_french)) == ("GSM-7", 2)
    assert provider.send(sms(), SmsBody(long_french)).units == 2
    ucs2 = "Il reste dû: merci de régler au plus tôt. " * 3  # û, ô: UCS-2
    assert (encoding(ucs2), segments(ucs2)) == ("UCS-2", 2)
    assert provider.send(sms(attempt_id="other"), SmsBody(ucs2)).units == 2


def test_the_same_attempt_twice_is_sent_once(
    provider: SmsHttpProvider, gateway: FakeSmsGateway
) -> None:
    first = provider.send(sms(), SmsBody(TEXT))
    again = provider.send(sms(), SmsBody(TEXT))
    other = provider.send(sms(attempt_id="another-attempt"), SmsBody(TEXT))
    assert first.outcome is again.outcome is Outcome.SENT
    assert again.provider_ref == first.provider_ref != other.provider_ref
    assert len(gateway.messages) == 2
    assert gateway.requests == 3


def test_a_lost_reply_is_retried_without_a_second_sms(gateway: FakeSmsGateway) -> None:
    """The gateway accepts but answers too late: TRANSIENT, and the retry finds the sid."""
    gateway.stall_next(1.0)
    with SmsHttpProvider(twilio_config(gateway, read_timeout_s=0.2)) as provider:
        lost = provider.send(sms(), SmsBody(TEXT))
        retried = provider.send(sms(), SmsBody(TEXT))
    (message,) = gateway.messages
    assert lost.outcome is Outcome.TRANSIENT and lost.detail == "timeout (ReadTimeout)"
    assert retried.outcome is Outcome.SENT and retried.provider_ref == message.ref


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "outcome", "delay"),
    [
        (500, None, None, Outcome.TRANSIENT, None),
        (503, None, "30", Outcome.TRANSIENT, dt.timedelta(seconds=30)),
        (429, 20429, "7", Outcome.TRANSIENT, dt.timedelta(seconds=7)),
        (
            429,
            20429,
            email.utils.format_datetime(NOW + dt.timedelta(minutes=2), usegmt=True),
            Outcome.TRANSIENT,
            dt.timedelta(minutes=2),
        ),
        (429, 20429, "999999999", Outcome.TRANSIENT, dt.timedelta(days=1)),
        (400, 21211, None, Outcome.PERMANENT, None),
        (400, 21614, None, Outcome.PERMANENT, None),
        (404, None, None, Outcome.PERMANENT, None),
    ],
)
def test_failures_are_classified(
    provider: SmsHttpProvider,
    gateway: FakeSmsGateway,
    status: int,
    code: int | None,
    retry_after: str | None,
    outcome: Outcome,
    delay: dt.timedelta | None,
) -> None:
    gateway.fail_next(1, status, code=code, retry_after=retry_after)
    failed = provider.send(sms(), SmsBody(TEXT))
    assert (failed.outcome, failed.retry_after, failed.units) == (outcome, delay, 0)
    assert failed.detail is not None and failed.detail.startswith(f"HTTP {status}")
    assert gateway.messages == []
    assert provider.send(sms(), SmsBody(TEXT)).outcome is Outcome.SENT


def test_twilio_refusals_are_permanent_and_named(gateway: FakeSmsGateway) -> None:
    gateway.opt_out("+32470000001")
    gateway.no_such_number("+32470000002")
    with (
        capture_logs() as logs,
        SmsHttpProvider(twilio_config(gateway)) as provider,
    ):
        unsubscribed = provider.send(sms(mobile="+32470000001"), SmsBody(TEXT))
        unknown = provider.send(sms(mobile="+32470000002"), SmsBody(TEXT))
    assert unsubscribed.outcome is unknown.outcome is Outcome.PERMANENT
    assert unsubscribed.detail == (
        "HTTP 400, twilio error 21610: recipient unsubscribed (replied STOP)"
    )
    # Twilio's own message repeats the number: it must reach neither detail nor logs.
    assert unknown.detail == "HTTP 400, twilio error 21211: invalid 'To' number"
    assert len(logs) == 2
    assert "+32470000002" not in repr(logs)


def test_wrong_credentials_pause_the_provider(gateway: FakeSmsGateway) -> None:
    config = twilio_config(gateway, token=SecretStr("not-the-token"))
    with SmsHttpProvider(config) as provider:
        result = provider.send(sms(), SmsBody(TEXT))
    assert result.outcome is Outcome.PROVIDER
    assert result.detail == "HTTP 401, twilio error 20003: authentication failed"
    assert gateway.messages == []


@pytest.mark.parametrize(
    ("changes", "text", "detail"),
    [
        ({"mobile": None}, TEXT, "no mobile number"),
        ({"mobile": ""}, TEXT, "no mobile number"),
        ({"mobile": "0470 12 34 56"}, TEXT, "the mobile number is not in E.164 form"),
        ({}, "", "empty text"),
        ({}, "x" * 1531, "11 segments, more than the 10 allowed"),
    ],
)
def test_unsendable_messages_never_reach_the_gateway(
    provider: SmsHttpProvider,
    gateway: FakeSmsGateway,
    changes: dict[str, Any],
    text: str,
    detail: str,
) -> None:
    with capture_logs() as logs:
        result = provider.send(sms(**changes), SmsBody(text))
    assert (result.outcome, result.detail, result.units) == (Outcome.PERMANENT, detail, 0)
    assert gateway.requests == 0
    assert "0470 12 34 56" not in repr(logs)


def test_an_invalid_creditor_sender_is_permanent(provider: SmsHttpProvider) -> None:
    creditor = dataclasses.replace(sms().creditor, sms_sender="Demo-Energy!")
    with pytest.raises(UnsendableSms, match="sender id"):
        provider.build_payload(sms(creditor=creditor), SmsBody(TEXT))
    assert provider.send(sms(creditor=creditor), SmsBody(TEXT)).outcome is Outcome.PERMANENT


def test_only_sms_bodies_are_sent(provider: SmsHttpProvider) -> None:
    with pytest.raises(TypeError, match="EmailBody"):
        provider.send(sms(), EmailBody("s", "t", "<p>t</p>"))


def test_network_errors_are_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = SmsHttpConfig(
        preset="generic", base_url=f"http://127.0.0.1:{port}", token=SecretStr("t")
    )
    with SmsHttpProvider(config) as provider:
        result = provider.send(sms(), SmsBody(TEXT))
    assert (result.outcome, result.detail) == (Outcome.TRANSIENT, "network (ConnectError)")


def test_one_connection_serves_many_sends(
    provider: SmsHttpProvider, gateway: FakeSmsGateway
) -> None:
    for n in range(25):
        assert provider.send(sms(attempt_id=f"a{n}"), SmsBody(TEXT)).outcome is Outcome.SENT
    assert (gateway.requests, gateway.connections) == (25, 1)


def test_the_connection_counter_sees_new_connections(gateway: FakeSmsGateway) -> None:
    for n in range(5):
        with SmsHttpProvider(twilio_config(gateway)) as provider:
            provider.send(sms(attempt_id=f"a{n}"), SmsBody(TEXT))
    assert gateway.connections == 5


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"preset": "twilio"},  # no account sid
        {"preset": "twilio", "account_sid": "AC123"},
        {"preset": "twilio", "account_sid": ACCOUNT_SID, "messaging_service_sid": "MG1"},
        {"preset": "generic", "sender": "ParcoursDemoBE"},  # 14 characters
        {"preset": "generic", "sender": "0470123456"},  # neither E.164 nor with a letter
        {"preset": "generic", "read_timeout_s": 0},
        {"preset": "generic", "unknown": 1},
    ],
)
def test_config_rejects_what_cannot_work(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SmsHttpConfig(token=SecretStr("t"), **fields)


def test_config_keeps_the_token_secret() -> None:
    config = SmsHttpConfig(preset="generic", token=SecretStr("s3cr3t"), base_url="http://x/")
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in config.model_dump_json()
    assert config.base_url == "http://x"


@pytest.mark.parametrize(
    ("sender", "valid"),
    [
        ("DemoEnergy", True),
        ("Demo Energy", True),
        ("Parcours123", True),
        ("ParcoursDemo", False),
        ("12345", False),
        ("+3225550100", True),
        ("+0225550100", False),
        ("Démo", False),
        ("", False),
    ],
)
def test_sender_ids(sender: str, valid: bool) -> None:
    assert is_valid_sender(sender) is valid


# -- webhooks --------------------------------------------------------------------------


def test_status_callbacks_arrive_signed_and_parse(gateway: FakeSmsGateway) -> None:
    with WebhookReceiver() as app:
        config = twilio_config(gateway, status_callback_url=app.url("/sms/status"))
        content = sms()
        with SmsHttpProvider(config) as provider:
            sid = provider.send(content, SmsBody(TEXT)).provider_ref
        assert sid is not None
        for status in ("sent", "delivered"):
            assert gateway.post_status_callback(sid, status).status_code == 204
        gateway.post_status_callback(sid, "undelivered", error_code="30003")
        received = list(app.received)

    events = []
    for webhook in received:
        url = app.url("") + webhook.path
        signature = webhook.headers["X-Twilio-Signature"]
        assert verify_twilio_signature(url, webhook.form, signature, SecretStr(AUTH_TOKEN))
        tampered = webhook.form | {"MessageStatus": "delivered", "ErrorCode": ""}
        assert not verify_twilio_signature(url, tampered, signature, AUTH_TOKEN)
        attempt = parse_qs(urlsplit(webhook.path).query)["attempt"][0]
        events.append(parse_status_callback(webhook.form, attempt_id=attempt, now=NOW))

    sent, delivered, undelivered = events
    assert sent is None
    assert delivered is not None and undelivered is not None
    assert (delivered.kind, undelivered.kind) == (DeliveryKind.DELIVERED, DeliveryKind.BOUNCED)
    assert delivered.provider_ref == undelivered.provider_ref == sid
    assert delivered.attempt_id == content.attempt_id
    assert delivered.at == NOW


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("delivered", DeliveryKind.DELIVERED),
        ("undelivered", DeliveryKind.BOUNCED),
        ("failed", DeliveryKind.BOUNCED),
        ("read", DeliveryKind.OPENED),
        ("queued", None),
        ("accepted", None),
        ("sending", None),
        ("sent", None),
        ("canceled", None),
    ],
)
def test_status_kinds(status: str, kind: DeliveryKind | None) -> None:
    event = parse_status_callback({"MessageSid": "SM1", "MessageStatus": status}, now=NOW)
    assert (event.kind if event else None) == kind


def test_a_status_callback_needs_a_sid() -> None:
    with pytest.raises(ValueError, match="MessageSid"):
        parse_status_callback({"MessageStatus": "delivered"})


def test_an_inbound_stop_arrives_signed_and_opts_out(gateway: FakeSmsGateway) -> None:
    with WebhookReceiver() as app:
        url = app.url("/sms/inbound")
        gateway.post_inbound(url, sender=MOBILE, to="+3225550100", body="Arrêt")
        gateway.post_inbound(url, sender=MOBILE, to="+3225550100", body="J'ai payé hier")
        stop, reply = app.received
    for webhook in (stop, reply):
        assert verify_twilio_signature(
            url, webhook.form, webhook.headers["X-Twilio-Signature"], AUTH_TOKEN
        )
    opted_out, replied = parse_inbound(stop.form, now=NOW), parse_inbound(reply.form, now=NOW)
    assert (opted_out.kind, opted_out.address) == (DeliveryKind.OPTED_OUT, MOBILE)
    assert (replied.kind, replied.text) == (DeliveryKind.REPLIED, "J'ai payé hier")


@pytest.mark.parametrize(
    "body",
    [
        *("STOP", "stop", " Stop! ", "STOPALL", "Unsubscribe", "cancel", "END", "quit."),
        *("ARRÊT", "arret", "Arrêt.", "AFMELDEN", "uitschrijven", "«STOP»"),
    ],
)
def test_opt_out_keywords(body: str) -> None:
    event = parse_inbound({"From": MOBILE, "Body": body}, now=NOW)
    assert event.kind is DeliveryKind.OPTED_OUT
    assert event.address == MOBILE and event.text == body


@pytest.mark.parametrize(
    "body",
    ["", "Oui", "End of the month I pay", "Cancel the fees please", "stop it", "STOPP", "ARRETE"],
)
def test_other_replies(body: str) -> None:
    assert parse_inbound({"From": MOBILE, "Body": body}).kind is DeliveryKind.REPLIED


# -- signatures ------------------------------------------------------------------------

DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="  # Twilio's example (docs, helper library tests)


def test_twilio_documented_example() -> None:
    assert twilio_signature(DOC_URL, DOC_PARAMS, "12345") == DOC_SIGNATURE
    assert verify_twilio_signature(DOC_URL, DOC_PARAMS, DOC_SIGNATURE, "12345")
    # Twilio may have signed the URL with or without the port: both verify.
    assert verify_twilio_signature(
        DOC_URL.replace(".com", ".com:443"), DOC_PARAMS, DOC_SIGNATURE, "12345"
    )
    assert not verify_twilio_signature(
        DOC_URL, DOC_PARAMS | {"Digits": "9999"}, DOC_SIGNATURE, "12345"
    )
    assert not verify_twilio_signature(DOC_URL, DOC_PARAMS, DOC_SIGNATURE, "54321")
    assert not verify_twilio_signature(DOC_URL + "&baz=3", DOC_PARAMS, DOC_SIGNATURE, "12345")


def test_repeated_parameters_sign_like_twilio_helpers() -> None:
    """twilio-python's vector for a form with Digits twice."""
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert verify_twilio_signature(DOC_URL, pairs, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", "12345")


@given(
    st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=30), max_size=8),
    st.text(min_size=1, max_size=20),
)
def test_signatures_verify_only_what_was_signed(params: dict[str, str], token: str) -> None:
    signature = twilio_signature(DOC_URL, params, token)
    assert verify_twilio_signature(DOC_URL, params, signature, token)
    extra = max(params, default="") + "z"  # a name the form does not have
    assert not verify_twilio_signature(DOC_URL, params | {extra: "1"}, signature, token)
    assert not verify_twilio_signature(DOC_URL, params, signature, token + "x")
