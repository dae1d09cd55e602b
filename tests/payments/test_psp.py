"""The PSP adapter (Mollie and Stripe presets) against a real loopback fake of both APIs."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from parcours.payments.psp import (
    MolliePsp,
    PspError,
    StripePsp,
    WebhookIgnored,
    WebhookRejected,
    format_amount_value,
    parse_amount_value,
    psp_from_config,
    stripe_signature,
)
from tests.payments.fake_psp import (
    MOLLIE_KEY,
    MOLLIE_WEBHOOK_SECRET,
    STRIPE_KEY,
    STRIPE_WEBHOOK_SECRET,
    FakePsp,
    WebhookReceiver,
)

NOW = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
STAMP = int(NOW.timestamp())
PERSONAL = "jan.peeters@example.be"
FIXTURES_OK = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def fake(receiver: WebhookReceiver) -> Iterator[FakePsp]:
    with FakePsp(
        mollie_webhook_secret=MOLLIE_WEBHOOK_SECRET,
        stripe_webhook_url=receiver.url("/webhooks/stripe"),
    ) as running:
        yield running


@pytest.fixture
def mollie(fake: FakePsp) -> Iterator[MolliePsp]:
    with MolliePsp(MOLLIE_KEY, base_url=fake.base_url) as psp:
        yield psp


@pytest.fixture
def signed_mollie(fake: FakePsp) -> Iterator[MolliePsp]:
    with MolliePsp(MOLLIE_KEY, fake.base_url, MOLLIE_WEBHOOK_SECRET) as psp:
        yield psp


@pytest.fixture
def stripe(fake: FakePsp) -> Iterator[StripePsp]:
    with StripePsp(STRIPE_KEY, STRIPE_WEBHOOK_SECRET, base_url=fake.base_url) as psp:
        yield psp


def order(receiver: WebhookReceiver, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "amount_minor": 15730,
        "currency": "EUR",
        "description": "Dossier 2026-0042",
        "reference": "case-42.attempt-1",
        "redirect_url": "https://pay.parcours.example/p/tok3n/done",
        "webhook_url": receiver.url("/webhooks/mollie"),
        "metadata": {"case_id": "42"},
    }
    return fields | changes


def pay(fake: FakePsp, payment_id: str, outcome: str = "paid") -> httpx.Response:
    """The debtor on the checkout page: load it, press pay (the PSP then posts the webhook)."""
    with httpx.Client(base_url=fake.base_url) as client:
        assert client.get(f"/checkout/{payment_id}").status_code == 200
        return client.post(f"/checkout/{payment_id}/pay", data={"outcome": outcome})


def last_webhook(receiver: WebhookReceiver) -> tuple[dict[str, str], bytes]:
    received = receiver.received[-1]
    return received.headers, received.body


def api_requests(fake: FakePsp, prefix: str) -> list[Any]:
    return [r for r in fake.requests if r.path.startswith(prefix)]


# -- amounts ---------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(["EUR", "JPY", "BHD", "USD"]))
def test_amount_value_round_trips_exactly(minor: int, currency: str) -> None:
    """Minor units → decimal string → minor units is the identity, with the currency's decimals."""
    value = format_amount_value(minor, currency)
    exponent = {"EUR": 2, "USD": 2, "JPY": 0, "BHD": 3}[currency]
    assert Decimal(value) == Decimal(minor).scaleb(-exponent)
    assert len(value.partition(".")[2]) == exponent
    assert parse_amount_value(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency"),
    [("12.3", "EUR"), ("12.300", "EUR"), ("12", "EUR"), ("1e3", "EUR"), ("-1.00", "EUR"),
     (" 1.00", "EUR"), ("01.00", "EUR"), ("1,00", "EUR"), ("12.00", "JPY"), ("1.000", "XXX")],
)  # fmt: skip
def test_amount_value_with_wrong_decimals_is_refused(value: str, currency: str) -> None:
    with pytest.raises(ValueError, match=r"decimals|ISO 4217"):
        parse_amount_value(value, currency)


@FIXTURES_OK
@given(minor=st.integers(min_value=1, max_value=10**9), currency=st.sampled_from(["EUR", "JPY"]))
def test_mollie_amount_is_read_back_exactly(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver, minor: int, currency: str
) -> None:
    """What the webhook reports is exactly what was asked, in the currency asked."""
    reference = f"prop-{len(fake.payments)}"
    checkout = mollie.create_checkout(
        **order(receiver, amount_minor=minor, currency=currency, reference=reference)
    )
    sent = json.loads(api_requests(fake, "/v2/payments")[-1].body)["amount"]
    assert Decimal(sent["value"]) * (100 if currency == "EUR" else 1) == minor
    pay(fake, checkout.psp_payment_id)
    payment = mollie.payment_from_webhook(*last_webhook(receiver), NOW)
    assert (payment.amount_minor, payment.currency) == (minor, currency)


@FIXTURES_OK
@given(minor=st.integers(min_value=50, max_value=10**9))
def test_stripe_amount_is_read_back_exactly(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver, minor: int
) -> None:
    reference = f"prop-{len(fake.payments)}"
    checkout = stripe.create_checkout(**order(receiver, amount_minor=minor, reference=reference))
    pay(fake, checkout.psp_payment_id)
    payment = stripe.payment_from_webhook(*last_webhook(receiver), dt.datetime.now(dt.UTC))
    assert (payment.amount_minor, payment.currency, payment.status) == (minor, "EUR", "paid")


# -- Mollie ----------------------------------------------------------------------------


def test_mollie_checkout_sends_the_documented_request(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    checkout = mollie.create_checkout(**order(receiver))
    assert checkout.psp_payment_id.startswith("tr_")
    assert checkout.checkout_url == f"{fake.base_url}/checkout/{checkout.psp_payment_id}"
    (request,) = api_requests(fake, "/v2/payments")
    assert request.headers["Idempotency-Key"] == "case-42.attempt-1"
    assert request.headers["Authorization"] == f"Bearer {MOLLIE_KEY}"
    assert json.loads(request.body) == {
        "amount": {"currency": "EUR", "value": "157.30"},
        "description": "Dossier 2026-0042",
        "redirectUrl": "https://pay.parcours.example/p/tok3n/done",
        "webhookUrl": receiver.url("/webhooks/mollie"),
        "metadata": {"case_id": "42"},
    }


def test_mollie_same_reference_gives_the_same_payment(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    """A retry after a lost reply must not create a second payment for the debtor."""
    first = mollie.create_checkout(**order(receiver))
    again = mollie.create_checkout(**order(receiver))
    other = mollie.create_checkout(**order(receiver, reference="case-42.attempt-2"))
    assert again == first
    assert other.psp_payment_id != first.psp_payment_id
    assert len(fake.payments) == 2


def test_mollie_paid_flow_fetches_the_state_from_the_api(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    checkout = mollie.create_checkout(**order(receiver))
    reply = pay(fake, checkout.psp_payment_id)
    assert reply.status_code == 303
    headers, body = last_webhook(receiver)
    assert body == f"id={checkout.psp_payment_id}".encode()
    fetched_before = len(api_requests(fake, "/v2/payments/"))
    payment = mollie.payment_from_webhook(headers, body, NOW)
    assert len(api_requests(fake, "/v2/payments/")) == fetched_before + 1
    assert payment.psp_payment_id == checkout.psp_payment_id
    assert (payment.status, payment.amount_minor, payment.currency) == ("paid", 15730, "EUR")
    assert payment.metadata == {"case_id": "42"}
    assert payment.paid_at is not None and payment.paid_at.tzinfo is dt.UTC
    assert abs(payment.paid_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


@pytest.mark.parametrize("outcome", ["failed", "canceled", "expired"])
def test_mollie_unsuccessful_outcomes(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver, outcome: str
) -> None:
    checkout = mollie.create_checkout(**order(receiver))
    pay(fake, checkout.psp_payment_id, outcome)
    payment = mollie.payment_from_webhook(*last_webhook(receiver), NOW)
    assert (payment.status, payment.paid_at) == (outcome, None)


def test_mollie_pending_payment_reads_as_pending(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    checkout = mollie.create_checkout(**order(receiver))
    assert fake.pay(checkout.psp_payment_id, "pending") is None  # Mollie calls no webhook
    assert mollie.get_payment(checkout.psp_payment_id).status == "pending"


def test_mollie_full_refund_reads_as_refunded_partial_as_paid(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    checkout = mollie.create_checkout(**order(receiver))
    pay(fake, checkout.psp_payment_id)
    fake.refund(checkout.psp_payment_id, 5000)
    assert mollie.payment_from_webhook(*last_webhook(receiver), NOW).status == "paid"
    fake.refund(checkout.psp_payment_id, 10730)
    assert mollie.payment_from_webhook(*last_webhook(receiver), NOW).status == "refunded"


def test_mollie_forged_id_for_an_unknown_payment_is_refused(
    fake: FakePsp, mollie: MolliePsp
) -> None:
    """The unsigned webhook is only a hint: the API, asked with our key, knows no such payment."""
    with pytest.raises(WebhookRejected, match="no such payment"):
        mollie.payment_from_webhook({}, b"id=tr_Forged12345", NOW)
    assert api_requests(fake, "/v2/payments/tr_Forged12345")


@pytest.mark.parametrize(
    "body",
    [b"", b"id=", b"id=tr_abc&id=tr_def", b"id=../../v1/checkout/sessions", b"id=cs_test_1",
     b"foo=tr_abc", b"\xff\xfe", b"id=tr_abc%00", b"{}", b'{"entityId": 12}', b"{not json"],
)  # fmt: skip
def test_mollie_malformed_webhook_body_is_refused_without_calling_the_api(
    fake: FakePsp, mollie: MolliePsp, body: bytes
) -> None:
    with pytest.raises(WebhookRejected, match="body"):
        mollie.payment_from_webhook({}, body, NOW)
    assert not api_requests(fake, "/v2/payments")


def test_mollie_signed_webhook_is_verified(
    fake: FakePsp, signed_mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    checkout = signed_mollie.create_checkout(**order(receiver))
    pay(fake, checkout.psp_payment_id)
    headers, body = last_webhook(receiver)
    assert headers["X-Mollie-Signature"].startswith("sha256=")
    assert signed_mollie.payment_from_webhook(headers, body, NOW).status == "paid"
    lower = {k.lower(): v for k, v in headers.items()}
    assert signed_mollie.payment_from_webhook(lower, body, NOW).status == "paid"


@pytest.mark.parametrize(
    ("header", "reason"),
    [(None, "no X-Mollie-Signature"), ("", "no X-Mollie-Signature"),
     ("sha256=zz", "malformed"), ("md5=abcd", "malformed"),
     ("sha256=" + "0" * 64, "does not match")],
)  # fmt: skip
def test_mollie_bad_signature_is_refused(
    fake: FakePsp, signed_mollie: MolliePsp, receiver: WebhookReceiver,
    header: str | None, reason: str,
) -> None:  # fmt: skip
    checkout = signed_mollie.create_checkout(**order(receiver))
    headers = {} if header is None else {"X-Mollie-Signature": header}
    with pytest.raises(WebhookRejected, match=reason):
        signed_mollie.payment_from_webhook(headers, f"id={checkout.psp_payment_id}".encode(), NOW)


def test_mollie_signature_of_another_body_is_refused(
    fake: FakePsp, signed_mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    first = signed_mollie.create_checkout(**order(receiver))
    second = signed_mollie.create_checkout(**order(receiver, reference="case-43"))
    signature = fake.sign_mollie(f"id={first.psp_payment_id}".encode())
    body = f"id={second.psp_payment_id}".encode()
    with pytest.raises(WebhookRejected, match="does not match"):
        signed_mollie.payment_from_webhook({"X-Mollie-Signature": signature}, body, NOW)


def test_mollie_signature_during_secret_rotation_and_next_gen_body(
    fake: FakePsp, signed_mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    """While Mollie rotates secrets it sends two signatures; a JSON event names `entityId`."""
    checkout = signed_mollie.create_checkout(**order(receiver))
    body = json.dumps(
        {"resource": "event", "id": "event_GvJ8WHrp5isUdRub9CJyH", "type": "payment.paid",
         "entityId": checkout.psp_payment_id, "createdAt": NOW.isoformat()}
    ).encode()  # fmt: skip
    header = f"sha256={'ab' * 32}, {fake.sign_mollie(body)}"
    payment = signed_mollie.payment_from_webhook({"X-Mollie-Signature": header}, body, NOW)
    assert payment.psp_payment_id == checkout.psp_payment_id


def test_mollie_api_refusal_names_status_title_and_field_only(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    fake.fail_next(422, detail=f"Not accepted for {PERSONAL}", field="amount.value")
    with capture_logs() as logs, pytest.raises(PspError) as caught:
        mollie.create_checkout(**order(receiver))
    message = str(caught.value)
    assert "422" in message and "Unprocessable Entity" in message and "amount.value" in message
    assert PERSONAL not in message and PERSONAL not in repr(logs)
    assert (caught.value.status, caught.value.transient) == (422, False)
    assert logs[0]["event"] == "psp_refused"


def test_mollie_refuses_a_currency_it_does_not_support(
    mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    with pytest.raises(PspError, match=r"422.*field amount\.currency"):
        mollie.create_checkout(**order(receiver, currency="NOK", amount_minor=1000))


def test_mollie_wrong_key_is_a_401(fake: FakePsp, receiver: WebhookReceiver) -> None:
    with (
        MolliePsp("test_wrongKey", base_url=fake.base_url) as psp,
        pytest.raises(PspError, match="HTTP 401, Unauthorized") as caught,
    ):
        psp.create_checkout(**order(receiver))
    assert not caught.value.transient
    assert not fake.payments


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_are_transient(
    fake: FakePsp, mollie: MolliePsp, stripe: StripePsp, receiver: WebhookReceiver, status: int
) -> None:
    for psp in (mollie, stripe):
        fake.fail_next(status)
        with pytest.raises(PspError, match=f"HTTP {status}") as caught:
            psp.create_checkout(**order(receiver))
        assert caught.value.transient


def test_mollie_webhook_when_the_api_is_down_is_an_error_not_a_rejection(
    fake: FakePsp, mollie: MolliePsp, receiver: WebhookReceiver
) -> None:
    """So that our endpoint answers 5xx and Mollie retries, rather than 4xx and gives up."""
    checkout = mollie.create_checkout(**order(receiver))
    fake.fail_next(503)
    with pytest.raises(PspError) as caught:
        mollie.payment_from_webhook({}, f"id={checkout.psp_payment_id}".encode(), NOW)
    assert not isinstance(caught.value, WebhookRejected) and caught.value.transient


def test_timeout_is_a_transient_error(fake: FakePsp, receiver: WebhookReceiver) -> None:
    fake.stall_next(1.0)
    with (
        MolliePsp(MOLLIE_KEY, base_url=fake.base_url, timeout=0.2) as psp,
        pytest.raises(PspError, match="no answer in time") as caught,
    ):
        psp.create_checkout(**order(receiver))
    assert caught.value.transient


def test_unreachable_psp_is_a_transient_error(receiver: WebhookReceiver) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        StripePsp(STRIPE_KEY, "whsec_x", base_url=f"http://127.0.0.1:{port}") as psp,
        pytest.raises(PspError, match="unreachable") as caught,
    ):
        psp.create_checkout(**order(receiver))
    assert caught.value.transient


def reply_with(payload: dict[str, Any], status: int = 201) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=payload))


def test_mollie_payment_in_another_currency_than_asked_is_refused(
    receiver: WebhookReceiver,
) -> None:
    payload = {
        "id": "tr_Wrong1234", "status": "open", "amount": {"value": "157.30", "currency": "USD"},
        "_links": {"checkout": {"href": "https://www.mollie.com/checkout/x"}},
    }  # fmt: skip
    with (
        MolliePsp(MOLLIE_KEY, transport=reply_with(payload)) as psp,
        pytest.raises(PspError, match="not for the amount asked"),
    ):
        psp.create_checkout(**order(receiver))


@pytest.mark.parametrize(
    "amount",
    [{"value": "157.3", "currency": "EUR"}, {"value": 157.30, "currency": "EUR"},
     {"value": "157.30", "currency": "XYZ"}, None],
)  # fmt: skip
def test_mollie_malformed_amount_in_reply_is_refused(
    receiver: WebhookReceiver, amount: object
) -> None:
    payload = {"id": "tr_Odd12345", "status": "open", "amount": amount}
    with (
        MolliePsp(MOLLIE_KEY, transport=reply_with(payload)) as psp,
        pytest.raises(PspError, match="amount"),
    ):
        psp.create_checkout(**order(receiver))


# -- Stripe ----------------------------------------------------------------------------


def test_stripe_checkout_sends_the_documented_form(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver
) -> None:
    checkout = stripe.create_checkout(**order(receiver))
    assert checkout.psp_payment_id.startswith("cs_test_")
    assert checkout.checkout_url == f"{fake.base_url}/checkout/{checkout.psp_payment_id}"
    (request,) = api_requests(fake, "/v1/checkout/sessions")
    assert request.headers["Idempotency-Key"] == "case-42.attempt-1"
    assert dict(parse_qsl(request.body.decode())) == {
        "mode": "payment",
        "line_items[0][price_data][currency]": "eur",
        "line_items[0][price_data][unit_amount]": "15730",
        "line_items[0][price_data][product_data][name]": "Dossier 2026-0042",
        "line_items[0][quantity]": "1",
        "success_url": "https://pay.parcours.example/p/tok3n/done",
        "cancel_url": "https://pay.parcours.example/p/tok3n/done",
        "client_reference_id": "case-42.attempt-1",
        "metadata[case_id]": "42",
        "payment_intent_data[metadata][case_id]": "42",
    }


def test_stripe_same_reference_gives_the_same_session(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver
) -> None:
    first = stripe.create_checkout(**order(receiver))
    assert stripe.create_checkout(**order(receiver)) == first
    assert len(fake.payments) == 1
    with pytest.raises(PspError, match="HTTP 400, idempotency_error"):
        stripe.create_checkout(**order(receiver, amount_minor=999))


def test_stripe_paid_flow(fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver) -> None:
    checkout = stripe.create_checkout(**order(receiver))
    assert pay(fake, checkout.psp_payment_id).status_code == 303
    headers, body = last_webhook(receiver)
    assert json.loads(body)["type"] == "checkout.session.completed"
    payment = stripe.payment_from_webhook(headers, body, dt.datetime.now(dt.UTC))
    assert payment.psp_payment_id == checkout.psp_payment_id
    assert (payment.status, payment.amount_minor, payment.currency) == ("paid", 15730, "EUR")
    assert payment.metadata == {"case_id": "42"}
    assert payment.paid_at is not None and payment.paid_at.tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("outcomes", "statuses"),
    [(["pending", "settled"], ["pending", "paid"]), (["pending", "failed"], ["pending", "failed"]),
     (["expired"], ["expired"])],
)  # fmt: skip
def test_stripe_async_and_expired_sessions(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver,
    outcomes: list[str], statuses: list[str],
) -> None:  # fmt: skip
    checkout = stripe.create_checkout(**order(receiver))
    seen = []
    for outcome in outcomes:
        fake.pay(checkout.psp_payment_id, outcome)
        payment = stripe.payment_from_webhook(*last_webhook(receiver), dt.datetime.now(dt.UTC))
        seen.append(payment.status)
        assert (payment.paid_at is not None) == (payment.status == "paid")
    assert seen == statuses


def test_stripe_refund_finds_the_session_of_the_charge(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver
) -> None:
    stripe.create_checkout(**order(receiver, reference="someone-else"))
    checkout = stripe.create_checkout(**order(receiver))
    pay(fake, checkout.psp_payment_id)
    fake.refund(checkout.psp_payment_id, 730)
    partial = stripe.payment_from_webhook(*last_webhook(receiver), dt.datetime.now(dt.UTC))
    assert (partial.psp_payment_id, partial.status) == (checkout.psp_payment_id, "paid")
    fake.refund(checkout.psp_payment_id, 15000)
    full = stripe.payment_from_webhook(*last_webhook(receiver), dt.datetime.now(dt.UTC))
    assert (full.psp_payment_id, full.status) == (checkout.psp_payment_id, "refunded")
    assert full.metadata == {"case_id": "42"}


def session_body(fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver) -> bytes:
    checkout = stripe.create_checkout(**order(receiver))
    session = fake._session(fake.payments[checkout.psp_payment_id])
    return fake.stripe_event("checkout.session.completed", session | {"payment_status": "paid"})


@pytest.mark.parametrize("age", [-300, 0, 300])
def test_stripe_signature_within_the_window_is_accepted(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver, age: int
) -> None:
    body = session_body(fake, stripe, receiver)
    headers = {"stripe-signature": fake.sign_stripe(body, STAMP - age)}
    assert stripe.payment_from_webhook(headers, body, NOW).status == "paid"


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_stripe_signature_outside_the_window_is_a_replay(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver, age: int
) -> None:
    body = session_body(fake, stripe, receiver)
    headers = {"Stripe-Signature": fake.sign_stripe(body, STAMP - age)}
    with pytest.raises(WebhookRejected, match="replay window"):
        stripe.payment_from_webhook(headers, body, NOW)


def test_stripe_signature_helper_matches_the_fake(fake: FakePsp) -> None:
    """Our helper and the fake's own code, each written from Stripe's docs, agree."""
    body = b'{"id": "evt_1"}'
    assert stripe_signature(STRIPE_WEBHOOK_SECRET, body, STAMP) == fake.sign_stripe(body, STAMP)


def test_stripe_bad_signatures_are_refused(
    fake: FakePsp, stripe: StripePsp, receiver: WebhookReceiver
) -> None:
    body = session_body(fake, stripe, receiver)
    forged = stripe_signature("whsec_someone_else", body, STAMP)
    tampered = body.replace(b'"amount_total": 15730', b'"amount_total": 1')
    assert tampered != body
    good = fake.sign_stripe(body, STAMP)
    for headers, payload in [
        ({"Stripe-Signature": forged}, body),
        ({"Stripe-Signature": good}, tampered),
        ({"Stripe-Signature": good.replace(f"t={STAMP}", f"t={STAMP + 1}")}, body),
    ]:
        with pytest.raises(WebhookRejected, match="matches"):
            stripe.payment_from_webhook(headers, payload, NOW)
    rotated = f"{good},v1={forged.partition('v1=')[2]},v0={'0' * 64}"
    assert stripe.payment_from_webhook({"Stripe-Signature": rotated}, body, NOW).status == "paid"


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=" + "a" * 64, "v1=" + "a" * 64, f"t={STAMP}",
     f"t={STAMP},v0={'a' * 64}", f"t={STAMP},v1=xyz", f"t={STAMP},,v1={'a' * 64}"],
)  # fmt: skip
def test_stripe_malformed_signature_header_is_refused(
    stripe: StripePsp, header: str | None
) -> None:
    headers = {} if header is None else {"Stripe-Signature": header}
    with pytest.raises(WebhookRejected, match="Stripe-Signature"):
        stripe.payment_from_webhook(headers, b"{}", NOW)


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"type": "checkout.session.completed"}',
             b'{"type": 7, "data": {"object": {}}}', b'{"data": {"object": {}}}'],
)  # fmt: skip
def test_stripe_signed_but_malformed_body_is_refused(stripe: StripePsp, body: bytes) -> None:
    headers = {"Stripe-Signature": stripe_signature(STRIPE_WEBHOOK_SECRET, body, STAMP)}
    with pytest.raises(WebhookRejected, match="not a Stripe event"):
        stripe.payment_from_webhook(headers, body, NOW)


def test_stripe_event_we_do_not_handle_is_ignored_not_rejected(
    fake: FakePsp, stripe: StripePsp
) -> None:
    body = fake.stripe_event("customer.created", {"id": "cus_1", "email": PERSONAL})
    headers = {"Stripe-Signature": fake.sign_stripe(body, STAMP)}
    with pytest.raises(WebhookIgnored, match=r"customer\.created") as caught:
        stripe.payment_from_webhook(headers, body, NOW)
    assert PERSONAL not in str(caught.value)


def test_stripe_naive_now_is_a_programming_error(stripe: StripePsp) -> None:
    with pytest.raises(ValueError, match="now"):
        stripe.payment_from_webhook({}, b"{}", NOW.replace(tzinfo=None))


def test_stripe_refusals_quote_type_code_and_param_never_the_message(
    fake: FakePsp, receiver: WebhookReceiver
) -> None:
    with (
        StripePsp("sk_test_wrong", "whsec_x", base_url=fake.base_url) as psp,
        pytest.raises(PspError, match="HTTP 401, invalid_request_error") as caught,
    ):
        psp.create_checkout(**order(receiver))
    assert "Invalid API Key" not in str(caught.value)
    with (
        StripePsp(STRIPE_KEY, "whsec_x", base_url=fake.base_url) as psp,
        pytest.raises(PspError, match="HTTP 400, invalid_request_error, amount_too_small"),
    ):
        psp.create_checkout(**order(receiver, amount_minor=30))
        fake.fail_next(402, detail=f"Card of {PERSONAL} declined", field="payment_method")
        with pytest.raises(PspError, match="param payment_method") as caught:
            psp.create_checkout(**order(receiver))
    assert PERSONAL not in str(caught.value)


def test_stripe_session_in_another_currency_than_asked_is_refused(
    receiver: WebhookReceiver,
) -> None:
    session = {"id": "cs_test_x1", "url": "https://checkout.stripe.com/c/pay/cs_test_x1",
               "amount_total": 15730, "currency": "usd"}  # fmt: skip
    with (
        StripePsp(STRIPE_KEY, "whsec_x", transport=reply_with(session, 200)) as psp,
        pytest.raises(PspError, match="not for the amount asked"),
    ):
        psp.create_checkout(**order(receiver))
    with (
        StripePsp(STRIPE_KEY, "whsec_x", transport=reply_with(session | {"url": None})) as psp,
        pytest.raises(PspError, match="checkout URL"),
    ):
        psp.create_checkout(**order(receiver, currency="USD"))


# -- both ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"amount_minor": 0}, "amount_minor"), ({"amount_minor": -5}, "amount_minor"),
     ({"amount_minor": True}, "amount_minor"), ({"amount_minor": 12.5}, "amount_minor"),
     ({"currency": "EURO"}, "currency"), ({"currency": "eur"}, "currency"),
     ({"description": "  "}, "description"), ({"reference": "case 42"}, "reference"),
     ({"reference": ""}, "reference"), ({"metadata": {"a[b]": "x"}}, "metadata"),
     ({"metadata": {"k": "x" * 501}}, "metadata")],
)  # fmt: skip
def test_bad_orders_are_refused_before_any_request(
    fake: FakePsp, mollie: MolliePsp, stripe: StripePsp, receiver: WebhookReceiver,
    changes: dict[str, Any], field: str,
) -> None:  # fmt: skip
    for psp in (mollie, stripe):
        with pytest.raises(ValueError, match=f"^{field}:"):
            psp.create_checkout(**order(receiver, **changes))
    assert not fake.requests


def test_psp_from_config_builds_either_preset(fake: FakePsp) -> None:
    mollie = psp_from_config("mollie", api_key=MOLLIE_KEY, base_url=fake.base_url)
    stripe = psp_from_config("stripe", api_key=STRIPE_KEY, webhook_secret=STRIPE_WEBHOOK_SECRET)
    assert isinstance(mollie, MolliePsp) and isinstance(stripe, StripePsp)
    mollie.close()
    stripe.close()
    with pytest.raises(ValueError, match="unknown kind 'adyen'"):
        psp_from_config("adyen", api_key="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="webhook_secret"):
        psp_from_config("stripe", api_key=STRIPE_KEY, webhook_secret="")
    with pytest.raises(ValueError, match="api_key"):
        psp_from_config("mollie", api_key="")
