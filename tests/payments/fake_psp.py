"""A real HTTP server on 127.0.0.1 speaking the Mollie and Stripe APIs the PSP adapter uses.

Mollie: ``POST /v2/payments`` (JSON, ``Authorization: Bearer``), ``GET /v2/payments/{id}``,
error bodies ``{status, title, detail, field, _links}``; webhooks are form posts ``id=tr_...``
to the payment's ``webhookUrl`` (signed with ``X-Mollie-Signature: sha256=<hex>`` when the
fake has a Mollie webhook secret). Stripe: ``POST /v1/checkout/sessions`` (form-encoded,
bearer or basic auth, unknown parameters refused as Stripe does), ``GET
/v1/checkout/sessions/{id}`` and ``?payment_intent=``, error bodies ``{"error": {type, code,
param, message}}``; webhooks are JSON events signed ``Stripe-Signature: t=...,v1=...`` and
posted to the one endpoint URL set on the fake (Stripe's dashboard setting).

Both honour ``Idempotency-Key``: a key seen with a success replays that reply (Stripe
refuses the key with other parameters, ``idempotency_error``). The debtor's side is
``GET /checkout/{id}`` (a page) and ``POST /checkout/{id}/pay`` (``outcome=paid`` by
default), which settles the payment and posts the webhook before answering. Test hooks:
`pay`, `refund`, `fail_next`, `stall_next`, and the `payments`, `requests` and `deliveries`
records. Its signing and amount code is its own, written from the PSPs' documentation, so
that tests check the adapter rather than mirror it.

`WebhookReceiver` stands for our web app: a loopback server that records what it is sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http
import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx

MOLLIE_KEY = "test_fakeMollieApiKey4Parcours0000"
MOLLIE_WEBHOOK_SECRET = "fake-mollie-shared-secret"
STRIPE_KEY = "sk_test_fakeStripeKey4Parcours"
STRIPE_WEBHOOK_SECRET = "whsec_fakeStripeEndpointSecret"

# Currencies the fake Mollie accepts, with the decimals its `value` strings must have.
_MOLLIE_DECIMALS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "PLN": 2, "SEK": 2, "JPY": 0}
_STRIPE_FIELDS = {
    "mode",
    "line_items[0][price_data][currency]",
    "line_items[0][price_data][unit_amount]",
    "line_items[0][price_data][product_data][name]",
    "line_items[0][quantity]",
    "success_url",
    "cancel_url",
    "client_reference_id",
}
_METADATA = re.compile(r"metadata\[([^\[\]]+)\]")
_INTENT_METADATA = re.compile(r"payment_intent_data\[metadata\]\[([^\[\]]+)\]")
_ALNUM = string.ascii_letters + string.digits


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _mollie_value(minor: int, currency: str) -> str:
    decimals = _MOLLIE_DECIMALS[currency]
    text = str(minor).rjust(decimals + 1, "0")
    return f"{text[:-decimals]}.{text[-decimals:]}" if decimals else text


@dataclass
class FakePayment:
    """A Mollie payment or a Stripe Checkout Session, as the fake keeps it."""

    api: Literal["mollie", "stripe"]
    id: str
    amount_minor: int
    currency: str  # upper case
    description: str
    redirect_url: str
    webhook_url: str | None  # Mollie only: Stripe posts to the fake's endpoint URL
    metadata: dict[str, str]
    created: int
    status: str  # Mollie's status; for Stripe the session's (open, complete, expired)
    payment_status: str = "unpaid"  # Stripe
    client_reference_id: str | None = None
    intent_metadata: dict[str, str] = field(default_factory=dict)
    payment_intent: str | None = None
    paid_at: int | None = None
    refunded_minor: int = 0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Delivery:
    """A webhook the fake posted, and the status our side answered."""

    url: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class _Failure:
    status: int
    detail: str
    field: str | None


class _QuietServer(ThreadingHTTPServer):
    """A threaded server that says nothing when a client hangs up (a timed-out adapter)."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class FakePsp:
    """Mollie's and Stripe's checkout APIs on a random loopback port (a context manager)."""

    def __init__(
        self,
        *,
        mollie_key: str = MOLLIE_KEY,
        stripe_key: str = STRIPE_KEY,
        stripe_webhook_secret: str = STRIPE_WEBHOOK_SECRET,
        mollie_webhook_secret: str | None = None,
        stripe_webhook_url: str | None = None,
    ) -> None:
        self.mollie_key = mollie_key
        self.stripe_key = stripe_key
        self.stripe_webhook_secret = stripe_webhook_secret
        self.mollie_webhook_secret = mollie_webhook_secret
        self.stripe_webhook_url = stripe_webhook_url
        self.payments: dict[str, FakePayment] = {}
        self.requests: list[Request] = []
        self.deliveries: list[Delivery] = []
        self.lock = threading.RLock()
        self._replies: dict[tuple[str, str], tuple[bytes, int, bytes]] = {}
        self._failures: list[_Failure] = []
        self._stalls: list[float] = []
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,))
        self._thread.daemon = True

    def __enter__(self) -> FakePsp:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- what to do next -------------------------------------------------------------
    def fail_next(
        self, status: int, *, count: int = 1, detail: str = "", field: str | None = None
    ) -> None:
        """Answer the next `count` authenticated API requests with `status` and an error body."""
        with self.lock:
            self._failures.extend(_Failure(status, detail, field) for _ in range(count))

    def stall_next(self, seconds: float) -> None:
        """Wait `seconds` before handling the next authenticated API request."""
        with self.lock:
            self._stalls.append(seconds)

    # -- the debtor's side -----------------------------------------------------------
    def pay(self, payment_id: str, outcome: str = "paid") -> Delivery | None:
        """What the debtor does on the checkout page, then the webhook the PSP posts.

        Mollie outcomes: paid, failed, canceled, expired, pending (no webhook for pending,
        as Mollie). Stripe: paid, pending (completed, payment still unpaid: SEPA debit),
        settled (a pending one succeeds), failed (a pending one fails), expired.
        """
        now = int(time.time())
        with self.lock:
            payment = self.payments[payment_id]
            if payment.api == "mollie":
                payment.status = outcome
                payment.paid_at = now if outcome == "paid" else None
                event = None if outcome == "pending" else "mollie"
            else:
                event = self._stripe_outcome(payment, outcome, now)
        if event is None:
            return None
        if payment.api == "mollie":
            return self._post_mollie(payment)
        return self._post_stripe(event, self._session(payment))

    def _stripe_outcome(self, payment: FakePayment, outcome: str, now: int) -> str:
        if outcome == "expired":
            payment.status = "expired"
            return "checkout.session.expired"
        payment.status = "complete"
        payment.payment_intent = payment.payment_intent or _random_id("pi_", 24)
        if outcome in ("paid", "settled"):
            payment.payment_status, payment.paid_at = "paid", now
        if outcome == "paid" or outcome == "pending":
            return "checkout.session.completed"
        return f"checkout.session.async_payment_{'succeeded' if outcome == 'settled' else 'failed'}"

    def refund(self, payment_id: str, amount_minor: int | None = None) -> Delivery | None:
        """Refund all (or `amount_minor` of) a paid payment, and post the webhook."""
        with self.lock:
            payment = self.payments[payment_id]
            payment.refunded_minor += payment.amount_minor if amount_minor is None else amount_minor
        if payment.api == "mollie":
            return self._post_mollie(payment)
        charge = {
            "id": _random_id("ch_", 24),
            "object": "charge",
            "amount": payment.amount_minor,
            "amount_refunded": payment.refunded_minor,
            "currency": payment.currency.lower(),
            "created": payment.paid_at,
            "metadata": payment.intent_metadata,
            "payment_intent": payment.payment_intent,
            "refunded": payment.refunded_minor >= payment.amount_minor,
            "status": "succeeded",
        }
        return self._post_stripe("charge.refunded", charge)

    # -- webhooks --------------------------------------------------------------------
    def sign_mollie(self, body: bytes) -> str:
        """``X-Mollie-Signature``: sha256= and the hex HMAC-SHA256 of the raw body."""
        assert self.mollie_webhook_secret is not None
        mac = hmac.new(self.mollie_webhook_secret.encode(), body, hashlib.sha256)
        return "sha256=" + mac.hexdigest()

    def sign_stripe(self, body: bytes, timestamp: int | None = None) -> str:
        """``Stripe-Signature``: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
        stamp = int(time.time()) if timestamp is None else timestamp
        payload = f"{stamp}.".encode() + body
        mac = hmac.new(self.stripe_webhook_secret.encode(), payload, hashlib.sha256)
        return f"t={stamp},v1={mac.hexdigest()}"

    def stripe_event(self, event_type: str, obj: dict[str, Any]) -> bytes:
        """A Stripe event's JSON body, as the endpoint receives it."""
        event = {
            "id": _random_id("evt_", 24),
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
        }
        return json.dumps(event).encode()

    def _post_mollie(self, payment: FakePayment) -> Delivery:
        assert payment.webhook_url is not None
        body = f"id={payment.id}".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.mollie_webhook_secret is not None:
            headers["X-Mollie-Signature"] = self.sign_mollie(body)
        return self._deliver(payment.webhook_url, headers, body)

    def _post_stripe(self, event_type: str, obj: dict[str, Any]) -> Delivery | None:
        if self.stripe_webhook_url is None:
            return None
        body = self.stripe_event(event_type, obj)
        headers = {"Content-Type": "application/json", "Stripe-Signature": self.sign_stripe(body)}
        return self._deliver(self.stripe_webhook_url, headers, body)

    def _deliver(self, url: str, headers: dict[str, str], body: bytes) -> Delivery:
        headers = {**headers, "User-Agent": "FakePsp/1.0"}
        with httpx.Client(timeout=5) as client:
            status = client.post(url, content=body, headers=headers).status_code
        delivery = Delivery(url, headers, body, status)
        with self.lock:
            self.deliveries.append(delivery)
        return delivery

    # -- resources -------------------------------------------------------------------
    def _mollie(self, payment: FakePayment) -> dict[str, Any]:
        base, value = self.base_url, _mollie_value(payment.amount_minor, payment.currency)
        links: dict[str, Any] = {
            "self": {"href": f"{base}/v2/payments/{payment.id}", "type": "application/hal+json"},
            "documentation": {
                "href": "https://docs.mollie.com/reference/get-payment",
                "type": "text/html",
            },
        }
        if payment.status == "open":
            links["checkout"] = {"href": f"{base}/checkout/{payment.id}", "type": "text/html"}
        resource: dict[str, Any] = {
            "resource": "payment",
            "id": payment.id,
            "mode": "test",
            "createdAt": _iso(payment.created),
            "amount": {"value": value, "currency": payment.currency},
            "description": payment.description,
            "method": None,
            "metadata": payment.metadata or None,
            "status": payment.status,
            "isCancelable": False,
            "expiresAt": _iso(payment.created + 900),
            "profileId": "pfl_FakeProfile",
            "sequenceType": "oneoff",
            "redirectUrl": payment.redirect_url,
            "webhookUrl": payment.webhook_url,
            "_links": links,
        }
        if payment.status == "paid":
            refunded = _mollie_value(payment.refunded_minor, payment.currency)
            remaining = payment.amount_minor - payment.refunded_minor
            resource["paidAt"] = _iso(payment.paid_at or payment.created)
            resource["amountRefunded"] = {"value": refunded, "currency": payment.currency}
            resource["amountRemaining"] = {
                "value": _mollie_value(remaining, payment.currency),
                "currency": payment.currency,
            }
        return resource

    def _session(self, payment: FakePayment) -> dict[str, Any]:
        return {
            "id": payment.id,
            "object": "checkout.session",
            "amount_subtotal": payment.amount_minor,
            "amount_total": payment.amount_minor,
            "cancel_url": payment.redirect_url,
            "client_reference_id": payment.client_reference_id,
            "created": payment.created,
            "currency": payment.currency.lower(),
            "expires_at": payment.created + 86400,
            "livemode": False,
            "metadata": payment.metadata,
            "mode": "payment",
            "payment_intent": payment.payment_intent,
            "payment_status": payment.payment_status,
            "status": payment.status,
            "success_url": payment.redirect_url,
            "url": f"{self.base_url}/checkout/{payment.id}" if payment.status == "open" else None,
        }


class _Handler(BaseHTTPRequestHandler):
    owner: FakePsp
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in {"Content-Type": "application/json", **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, data: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._reply(status, json.dumps(data).encode(), extra)

    def _mollie_error(self, status: int, detail: str, field: str | None = None) -> None:
        error: dict[str, Any] = {
            "status": status,
            "title": http.HTTPStatus(status).phrase,
            "detail": detail,
            "_links": {
                "documentation": {
                    "href": "https://docs.mollie.com/overview/handling-errors",
                    "type": "text/html",
                }
            },
        }
        if field is not None:
            error["field"] = field
        self._json(status, error)

    def _stripe_error(
        self, status: int, message: str, *, kind: str | None = None, code: str | None = None,
        param: str | None = None,
    ) -> None:  # fmt: skip
        kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
        error = {"type": kind, "message": message}
        error |= {k: v for k, v in (("code", code), ("param", param)) if v is not None}
        self._json(status, {"error": error})

    # -- plumbing shared by both APIs ------------------------------------------------
    def _read(self) -> bytes:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.owner.lock:
            self.owner.requests.append(Request(self.command, self.path, dict(self.headers), body))
        return body

    def _authorised(self, api: Literal["mollie", "stripe"]) -> bool:
        given = self.headers.get("Authorization", "").encode()
        if api == "mollie":
            if hmac.compare_digest(given, f"Bearer {self.owner.mollie_key}".encode()):
                return True
            self._mollie_error(401, "Missing authentication, or failed to authenticate")
            return False
        basic = base64.b64encode(f"{self.owner.stripe_key}:".encode()).decode()
        if hmac.compare_digest(given, f"Bearer {self.owner.stripe_key}".encode()) or (
            hmac.compare_digest(given, f"Basic {basic}".encode())
        ):
            return True
        self._stripe_error(
            401, "Invalid API Key provided: sk_test_****" + self.owner.stripe_key[-4:]
        )
        return False

    def _failed(self, api: Literal["mollie", "stripe"]) -> bool:
        with self.owner.lock:
            failure = self.owner._failures.pop(0) if self.owner._failures else None
            stall = self.owner._stalls.pop(0) if self.owner._stalls else 0.0
        if stall:
            time.sleep(stall)
        if failure is None:
            return False
        detail = failure.detail or http.HTTPStatus(failure.status).description
        if api == "mollie":
            self._mollie_error(failure.status, detail, failure.field)
        else:
            code = "rate_limit" if failure.status == 429 else None
            self._stripe_error(failure.status, detail, code=code, param=failure.field)
        return True

    def _replayed(self, api: str, body: bytes) -> bool:
        key = self.headers.get("Idempotency-Key")
        with self.owner.lock:
            stored = self.owner._replies.get((api, key)) if key else None
        if stored is None:
            return False
        first_body, status, payload = stored
        if api == "stripe" and first_body != body:
            self._stripe_error(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with.",
                kind="idempotency_error",
            )
        else:
            self._reply(status, payload, {"Idempotent-Replayed": "true"})
        return True

    def _created(
        self, api: str, body: bytes, payment: FakePayment, resource: dict[str, Any]
    ) -> None:
        status, payload = (201 if api == "mollie" else 200), json.dumps(resource).encode()
        key = self.headers.get("Idempotency-Key")
        with self.owner.lock:
            self.owner.payments[payment.id] = payment
            if key:
                self.owner._replies[(api, key)] = (body, status, payload)
        self._reply(status, payload)

    # -- routes ----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._read()
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        owner = self.owner
        if parts[:2] == ["v2", "payments"] and len(parts) == 3:
            if self._authorised("mollie") and not self._failed("mollie"):
                payment = owner.payments.get(parts[2])
                if payment is None or payment.api != "mollie":
                    self._mollie_error(404, f"No payment exists with token {parts[2]}.")
                else:
                    self._json(200, owner._mollie(payment))
        elif parts[:2] == ["v1", "checkout"] and parts[2:3] == ["sessions"]:
            if self._authorised("stripe") and not self._failed("stripe"):
                self._stripe_get(parts[3] if len(parts) == 4 else None, url.query)
        elif parts[0] == "checkout" and len(parts) == 2 and parts[1] in owner.payments:
            page = (
                f"<!doctype html><title>Fake checkout</title><form method=post "
                f'action="/checkout/{parts[1]}/pay"><button>Pay</button></form>'
            ).encode()
            self._reply(200, page, {"Content-Type": "text/html; charset=utf-8"})
        else:
            self._reply(404, b"{}")

    def _stripe_get(self, session_id: str | None, query: str) -> None:
        owner = self.owner
        if session_id is None:
            intent = dict(parse_qsl(query)).get("payment_intent")
            found = [
                owner._session(p)
                for p in owner.payments.values()
                if p.api == "stripe" and intent is not None and p.payment_intent == intent
            ]
            url = "/v1/checkout/sessions"
            self._json(200, {"object": "list", "data": found, "has_more": False, "url": url})
            return
        payment = owner.payments.get(session_id)
        if payment is None or payment.api != "stripe":
            message = f"No such checkout.session: '{session_id}'"
            self._stripe_error(404, message, code="resource_missing", param="session")
        else:
            self._json(200, owner._session(payment))

    def do_POST(self) -> None:
        body = self._read()
        path = urlsplit(self.path).path
        if path in ("/v2/payments", "/v1/checkout/sessions"):
            api: Literal["mollie", "stripe"] = "mollie" if path == "/v2/payments" else "stripe"
            if self._authorised(api) and not self._failed(api):
                with self.owner.lock:  # a concurrent twin with the same key waits, then replays
                    if not self._replayed(api, body):
                        (self._create_mollie if api == "mollie" else self._create_stripe)(body)
        elif (match := re.fullmatch(r"/checkout/([A-Za-z0-9_]+)/pay", path)) and (
            match.group(1) in self.owner.payments
        ):
            payment_id = match.group(1)
            outcome = dict(parse_qsl(body.decode())).get("outcome", "paid")
            self.owner.pay(payment_id, outcome)
            location = self.owner.payments[payment_id].redirect_url
            self._reply(303, b"", {"Location": location, "Content-Type": "text/plain"})
        else:
            self._reply(404, b"{}")

    def _create_mollie(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            self._mollie_error(400, "The request body is not valid JSON")
            return
        amount = data.get("amount") if isinstance(data, dict) else None
        if not isinstance(amount, dict):
            self._mollie_error(422, "The amount is required", "amount")
            return
        currency, value = amount.get("currency"), amount.get("value")
        decimals = _MOLLIE_DECIMALS.get(currency) if isinstance(currency, str) else None
        pattern = rf"[0-9]+\.[0-9]{{{decimals}}}" if decimals else r"[0-9]+"
        if decimals is None:
            self._mollie_error(422, "The currency is not supported", "amount.currency")
        elif not isinstance(value, str) or not re.fullmatch(pattern, value):
            self._mollie_error(422, "The amount contains an invalid value", "amount.value")
        elif int(value.replace(".", "")) < 1:
            self._mollie_error(422, "The amount is lower than the minimum", "amount.value")
        elif not isinstance(data.get("description"), str) or not data["description"].strip():
            self._mollie_error(422, "The description is required", "description")
        elif not isinstance(data.get("redirectUrl"), str):
            self._mollie_error(422, "The redirect URL is required", "redirectUrl")
        elif not str(data.get("webhookUrl", "")).startswith(("http://", "https://")):
            self._mollie_error(422, "The webhook URL is invalid", "webhookUrl")
        elif len(json.dumps(data.get("metadata"))) > 1024:
            self._mollie_error(422, "The metadata is too large", "metadata")
        else:
            assert isinstance(currency, str) and isinstance(value, str)
            payment = FakePayment(
                api="mollie",
                id=_random_id("tr_", 10),
                amount_minor=int(value.replace(".", "")),
                currency=currency,
                description=data["description"],
                redirect_url=data["redirectUrl"],
                webhook_url=data["webhookUrl"],
                metadata=dict(data.get("metadata") or {}),
                created=int(time.time()),
                status="open",
            )
            self._created("mollie", raw, payment, self.owner._mollie(payment))

    def _create_stripe(self, raw: bytes) -> None:
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            self._stripe_error(400, "Invalid request: expected a form-encoded body")
            return
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        metadata, intent_metadata = {}, {}
        for name, value in form.items():
            if match := _METADATA.fullmatch(name):
                metadata[match.group(1)] = value
            elif match := _INTENT_METADATA.fullmatch(name):
                intent_metadata[match.group(1)] = value
            elif name not in _STRIPE_FIELDS:
                self._stripe_error(400, f"Received unknown parameter: {name}", param=name)
                return
        currency = form.get("line_items[0][price_data][currency]", "")
        unit_amount = form.get("line_items[0][price_data][unit_amount]", "")
        name = form.get("line_items[0][price_data][product_data][name]", "")
        quantity = form.get("line_items[0][quantity]", "")
        for param, ok in (
            ("mode", form.get("mode") == "payment"),
            ("line_items[0][price_data][currency]", re.fullmatch("[a-z]{3}", currency)),
            ("line_items[0][price_data][unit_amount]", unit_amount.isdigit()),
            ("line_items[0][price_data][product_data][name]", name.strip()),
            ("line_items[0][quantity]", quantity.isdigit() and int(quantity) > 0),
        ):
            if not ok:
                self._stripe_error(400, f"Invalid value for {param}.", param=param)
                return
        total = int(unit_amount) * int(quantity)
        if currency not in ("jpy", "krw") and total < 50:
            message = "The Checkout Session's total amount due must add up to at least €0.50"
            self._stripe_error(400, message, code="amount_too_small")
            return
        payment = FakePayment(
            api="stripe",
            id=_random_id("cs_test_", 58),
            amount_minor=total,
            currency=currency.upper(),
            description=name,
            redirect_url=form.get("success_url", ""),
            webhook_url=None,
            metadata=metadata,
            created=int(time.time()),
            status="open",
            client_reference_id=form.get("client_reference_id"),
            intent_metadata=intent_metadata,
        )
        self._created("stripe", raw, payment, self.owner._session(payment))


@dataclass(frozen=True)
class Received:
    """A webhook as our web app received it: path, headers, raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Our web app's side of the PSPs' webhooks, on a random loopback port: records posts."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,))
        self._thread.daemon = True

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
