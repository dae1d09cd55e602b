"""Hosted checkout through a payment service provider (PSP): a Mollie and a Stripe preset.

A debtor who pays online goes to the PSP's checkout page; the PSP then calls our webhook and
`payment_from_webhook` turns that call into the payment's authoritative state, or refuses it.
Our `reference` travels as the ``Idempotency-Key`` header, so a retried `create_checkout`
(after a timeout, or a crash before commit) returns the same payment instead of a second one.

Mollie (https://docs.mollie.com/reference/create-payment, /get-payment, /handling-errors,
/webhooks-best-practices): ``POST /v2/payments`` with JSON ``amount {currency, value}``
(``value`` a string with the currency's decimals, "10.00"), ``description``, ``redirectUrl``,
``webhookUrl``, ``metadata``; the reply's ``id`` (tr_...) and ``_links.checkout.href``.
``GET /v2/payments/{id}`` gives ``status`` (open, pending, authorized, paid, canceled,
expired, failed), ``amount``, ``amountRefunded``, ``amountChargedBack``, ``paidAt``,
``metadata``. A refund leaves the status at paid: we report "refunded" once refunds and
chargebacks cover the amount. The classic webhook is an unsigned form post ``id=tr_...``;
what makes it safe is that we fetch the state with our own key, so a forged id yields
nothing and a replayed one only re-reads the current state (hence no replay window). With
`webhook_secret` set, the signed webhooks' ``X-Mollie-Signature: sha256=<hex HMAC-SHA256 of
the raw body>`` is required too (several values are accepted while Mollie rotates secrets);
their JSON body names the payment in ``entityId``. Errors: ``{status, title, detail, field}``.

Stripe (https://docs.stripe.com/api/checkout/sessions/create, /webhooks#verify-manually):
``POST /v1/checkout/sessions`` form-encoded, one line item of the whole amount; the reply's
``id`` (cs_..., the payment id we key on) and ``url``. Stripe has no per-session webhook URL
(endpoints are set in the dashboard), so `webhook_url` is not sent. Webhooks carry
``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`` and are refused outside
the replay window. ``charge.refunded`` names a payment intent; the session is looked up by
it. Errors: ``{"error": {type, code, param, message}}``.

Exceptions and logs quote only the PSP's error title/type and field names, never its free
text (Stripe's messages can repeat an address), nor descriptions, URLs or metadata.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self, cast
from urllib.parse import parse_qsl, quote

import httpx
import structlog
from pydantic import SecretStr

from parcours.domain.money import currency_exponent, is_iso_currency

__all__ = [
    "MOLLIE_API",
    "STRIPE_API",
    "Checkout",
    "MolliePsp",
    "PaymentStatus",
    "Psp",
    "PspError",
    "PspPayment",
    "StripePsp",
    "WebhookIgnored",
    "WebhookRejected",
    "format_amount_value",
    "parse_amount_value",
    "psp_from_config",
    "stripe_signature",
]

log = structlog.get_logger("parcours.payments.psp")

MOLLIE_API: Final = "https://api.mollie.com"
STRIPE_API: Final = "https://api.stripe.com"

PaymentStatus = Literal["paid", "pending", "failed", "canceled", "expired", "refunded"]

_MOLLIE_ID: Final = re.compile(r"tr_[A-Za-z0-9]{1,64}")
_STRIPE_SESSION: Final = re.compile(r"cs_[A-Za-z0-9_]{1,250}")
_STRIPE_INTENT: Final = re.compile(r"pi_[A-Za-z0-9_]{1,250}")
_REFERENCE: Final = re.compile(r"[A-Za-z0-9._:\-]{1,200}")
_METADATA_KEY: Final = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
_VALUE: Final = re.compile(r"(0|[1-9][0-9]{0,17})(?:\.([0-9]+))?")
_TOKEN: Final = re.compile(r"[A-Za-z0-9 _.\-\[\]]{1,80}")  # a title or field we may quote
_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_MOLLIE_STATUSES: Final[dict[str, PaymentStatus]] = {
    "open": "pending",
    "pending": "pending",
    "authorized": "pending",  # held, not captured: not money yet
    "paid": "paid",
    "canceled": "canceled",
    "expired": "expired",
    "failed": "failed",
}
_STRIPE_SESSION_EVENTS: Final = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }
)


@dataclass(frozen=True, slots=True)
class Checkout:
    """A payment the PSP created, and the page where the debtor pays it."""

    psp_payment_id: str
    checkout_url: str


@dataclass(frozen=True, slots=True)
class PspPayment:
    """A payment's state as the PSP states it (read from its API or a verified webhook)."""

    psp_payment_id: str
    status: PaymentStatus
    amount_minor: int
    currency: str
    paid_at: dt.datetime | None
    metadata: dict[str, str] = field(hash=False)


@dataclass(frozen=True, slots=True)
class _Order:
    """What `create_checkout` was asked, checked, for the preset to send."""

    amount_minor: int
    currency: str
    description: str
    reference: str
    redirect_url: str
    webhook_url: str
    metadata: Mapping[str, str]


class PspError(Exception):
    """The PSP refused a request, answered nonsense or could not be reached.

    `transient` says whether the same request may succeed later (5xx, 429, timeouts); the
    message names the PSP, the HTTP status, its error title and field, never a person.
    """

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class WebhookRejected(ValueError):
    """A webhook not to act on (bad signature, stale timestamp, malformed): answer 4xx."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookIgnored(WebhookRejected):
    """A genuine webhook about something we do not track: answer 2xx so it is not retried."""


def format_amount_value(amount_minor: int, currency: str) -> str:
    """Minor units as the PSP's decimal string: 1230 EUR → "12.30", 1230 JPY → "1230"."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
        raise ValueError("amount_minor: must be a non-negative integer")
    exponent = currency_exponent(currency)
    if exponent == 0:
        return str(amount_minor)
    whole, fraction = divmod(amount_minor, int(10**exponent))
    return f"{whole}.{fraction:0{exponent}d}"


def parse_amount_value(value: str, currency: str) -> int:
    """A decimal string with exactly the currency's decimals ("12.30" EUR) as minor units."""
    exponent = currency_exponent(currency)
    match = _VALUE.fullmatch(value)
    if match is None or len(match.group(2) or "") != exponent:
        raise ValueError(f"not an amount with {exponent} decimals for {currency}")
    return int(match.group(1)) * int(10**exponent) + int(match.group(2) or "0")


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value Stripe would send: ``t=<timestamp>,v1=<hex>``."""
    return f"t={timestamp},v1={_stripe_v1(secret, body, timestamp)}"


def _stripe_v1(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: each new one loads the CA bundle again (tens of ms)."""
    return httpx.create_ssl_context()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever the case of the mapping's keys."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


def _token(value: object) -> str | None:
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class Psp(ABC):
    """A PSP's hosted checkout: create a payment page, then read its outcome from webhooks."""

    name: ClassVar[str]

    def __init__(
        self,
        api_key: str | SecretStr,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ValueError("api_key: must not be empty")
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            verify=_tls(),
        )

    def create_checkout(
        self,
        *,
        amount_minor: int,
        currency: str,
        description: str,
        reference: str,
        redirect_url: str,
        webhook_url: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Checkout:
        """Create a payment of `amount_minor` under idempotency key `reference`.

        The reply is read back: a payment for another amount or currency than asked is
        refused with `PspError`, as is one without a checkout URL.
        """
        order = _Order(
            amount_minor,
            currency,
            description,
            reference,
            redirect_url,
            webhook_url,
            metadata or {},
        )
        _check_order(order)
        payment, url = self._create(order)
        if (payment.amount_minor, payment.currency) != (amount_minor, currency):
            raise PspError(f"{self.name}: the payment created is not for the amount asked")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PspError(f"{self.name}: the reply has no checkout URL")
        return Checkout(payment.psp_payment_id, url)

    @abstractmethod
    def _create(self, order: _Order) -> tuple[PspPayment, object]:
        """Send the order; the payment created and its checkout URL as the PSP gave it."""

    @abstractmethod
    def payment_from_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> PspPayment:
        """Verify a webhook call and return the payment's state; raise `WebhookRejected`."""

    def close(self) -> None:
        """Close the kept-alive connection(s) to the PSP."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @abstractmethod
    def _error_summary(self, data: dict[str, Any]) -> str:
        """The PSP's error title and field from an error reply, quotable (no free text)."""

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise PspError(f"{self.name}: no answer in time", transient=True) from exc
        except httpx.TransportError as exc:
            message = f"{self.name}: unreachable ({type(exc).__name__})"
            raise PspError(message, transient=True) from exc
        status = response.status_code
        data = _json_object(response.content)
        if response.is_success:
            if data is None:
                raise PspError(f"{self.name}: the reply is not a JSON object", status=status)
            return data
        summary = self._error_summary(data or {})
        log.warning("psp_refused", psp=self.name, status=status, error=summary)
        message = f"{self.name} refused the request: HTTP {status}"
        if summary:
            message += f", {summary}"
        raise PspError(message, status=status, transient=status >= 500 or status == 429)

    def _money(self, value: object, currency: object, place: str) -> tuple[int, str]:
        """An amount read back from the PSP, exactly, with its (upper-case) currency."""
        code = currency.upper() if isinstance(currency, str) else ""
        if not is_iso_currency(code):
            raise PspError(f"{self.name}: {place} has no ISO 4217 currency")
        if isinstance(value, str):
            try:
                return parse_amount_value(value, code), code
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value, code
        raise PspError(f"{self.name}: {place} is not an amount in {code}")


def _check_order(order: _Order) -> None:
    amount = order.amount_minor
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("amount_minor: must be a positive integer")
    if not is_iso_currency(order.currency):
        raise ValueError("currency: not an ISO 4217 currency in use")
    if not order.description.strip() or len(order.description) > 255:
        raise ValueError("description: must have 1 to 255 characters")
    if not _REFERENCE.fullmatch(order.reference):
        raise ValueError("reference: 1 to 200 letters, digits and . _ : -")
    for key, value in order.metadata.items():
        if not _METADATA_KEY.fullmatch(key) or not isinstance(value, str) or len(value) > 500:
            raise ValueError("metadata: keys of 1-40 letters, digits, _ . -; text values ≤ 500")


def _metadata(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


class MolliePsp(Psp):
    """Mollie's Payments API v2; webhooks are verified by fetching the payment with our key."""

    name = "mollie"

    def __init__(
        self,
        api_key: str | SecretStr,
        base_url: str = MOLLIE_API,
        webhook_secret: str | SecretStr | None = None,
        tolerance: int = 300,  # kept for a uniform config: see the module docstring
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout=timeout, transport=transport)
        secret = webhook_secret
        self._secret = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self._tolerance = tolerance

    def _create(self, order: _Order) -> tuple[PspPayment, object]:
        value = format_amount_value(order.amount_minor, order.currency)
        body: dict[str, Any] = {
            "amount": {"currency": order.currency, "value": value},
            "description": order.description,
            "redirectUrl": order.redirect_url,
            "webhookUrl": order.webhook_url,
        }
        if order.metadata:
            body["metadata"] = dict(order.metadata)
        headers = {"Idempotency-Key": order.reference}
        data = self._request("POST", "/v2/payments", json=body, headers=headers)
        links = data.get("_links")
        checkout = links.get("checkout") if isinstance(links, dict) else None
        return self._payment(data), checkout.get("href") if isinstance(checkout, dict) else None

    def get_payment(self, psp_payment_id: str) -> PspPayment:
        """The payment's current state, read from Mollie with our key."""
        if not _MOLLIE_ID.fullmatch(psp_payment_id):
            raise ValueError("psp_payment_id: not a Mollie payment id (tr_...)")
        return self._payment(self._request("GET", f"/v2/payments/{quote(psp_payment_id)}"))

    def payment_from_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> PspPayment:
        """Check the signature (if a secret is set), then fetch the payment the body names."""
        if self._secret is not None:
            given = _header(headers, "X-Mollie-Signature")
            if not given:
                raise WebhookRejected("no X-Mollie-Signature header")
            expected = hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
            candidates = [v.strip().removeprefix("sha256=") for v in given.split(",")]
            if not any(_HEX_SHA256.fullmatch(c) for c in candidates):
                raise WebhookRejected("malformed X-Mollie-Signature header")
            if not any(hmac.compare_digest(expected, c) for c in candidates):
                raise WebhookRejected("the X-Mollie-Signature does not match the body")
        payment_id = self._webhook_payment_id(body)
        try:
            return self.get_payment(payment_id)
        except PspError as exc:
            if exc.status == 404:
                raise WebhookRejected("Mollie knows no such payment") from exc
            raise

    @staticmethod
    def _webhook_payment_id(body: bytes) -> str:
        if body.lstrip().startswith(b"{"):  # a signed (next-gen) event
            event = _json_object(body)
            payment_id = event.get("entityId") if event is not None else None
        else:
            try:
                form = parse_qsl(body.decode("ascii"), strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                raise WebhookRejected("the body is not a form post id=tr_...") from None
            ids = [value for name, value in form if name == "id"]
            payment_id = ids[0] if len(ids) == 1 else None
        if not isinstance(payment_id, str) or not _MOLLIE_ID.fullmatch(payment_id):
            raise WebhookRejected("the body names no Mollie payment (id=tr_...)")
        return payment_id

    def _payment(self, data: dict[str, Any]) -> PspPayment:
        payment_id = data.get("id")
        if not isinstance(payment_id, str) or not _MOLLIE_ID.fullmatch(payment_id):
            raise PspError("mollie: the reply has no payment id")
        minor, currency = self._money(*_value_currency(data.get("amount")), "amount")
        raw_status = data.get("status")
        status = _MOLLIE_STATUSES.get(raw_status) if isinstance(raw_status, str) else None
        if status is None:
            log.warning("mollie_unknown_status", status=_token(raw_status))
            status = "pending"
        if status == "paid":
            returned = 0
            for name in ("amountRefunded", "amountChargedBack"):
                if data.get(name) is not None:
                    value, code = self._money(*_value_currency(data[name]), name)
                    if code != currency:
                        raise PspError(f"mollie: {name} is not in the payment's currency")
                    returned += value
            if returned >= minor:
                status = "refunded"
        paid_at: dt.datetime | None = None
        if isinstance(data.get("paidAt"), str):
            try:
                paid_at = dt.datetime.fromisoformat(data["paidAt"])
            except ValueError:
                raise PspError("mollie: paidAt is not an ISO 8601 time") from None
            if paid_at.tzinfo is None:
                raise PspError("mollie: paidAt has no UTC offset")
            paid_at = paid_at.astimezone(dt.UTC)
        return PspPayment(
            payment_id, status, minor, currency, paid_at, _metadata(data.get("metadata"))
        )

    def _error_summary(self, data: dict[str, Any]) -> str:
        title, place = _token(data.get("title")), _token(data.get("field"))
        return ", ".join(filter(None, [title, f"field {place}" if place else None]))


def _value_currency(amount: object) -> tuple[object, object]:
    if not isinstance(amount, dict):
        return None, None
    return amount.get("value"), amount.get("currency")


class StripePsp(Psp):
    """Stripe Checkout Sessions; webhooks are verified by their HMAC and timestamp."""

    name = "stripe"

    def __init__(
        self,
        api_key: str | SecretStr,
        webhook_secret: str | SecretStr,
        base_url: str = STRIPE_API,
        tolerance: int = 300,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout=timeout, transport=transport)
        secret = webhook_secret
        self._secret = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not self._secret:
            raise ValueError("webhook_secret: must not be empty (whsec_...)")
        self._tolerance = tolerance

    def _create(self, order: _Order) -> tuple[PspPayment, object]:
        form = {
            "mode": "payment",
            "line_items[0][price_data][currency]": order.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(order.amount_minor),
            "line_items[0][price_data][product_data][name]": order.description,
            "line_items[0][quantity]": "1",
            "success_url": order.redirect_url,
            "cancel_url": order.redirect_url,
            "client_reference_id": order.reference,
        }
        for key, value in order.metadata.items():  # on the intent too: charges carry it
            form[f"metadata[{key}]"] = value
            form[f"payment_intent_data[metadata][{key}]"] = value
        headers = {"Idempotency-Key": order.reference}
        data = self._request("POST", "/v1/checkout/sessions", data=form, headers=headers)
        return self._session_payment(data, "pending", None), data.get("url")

    def payment_from_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> PspPayment:
        """Verify ``Stripe-Signature`` and the replay window, then read the event."""
        if now.tzinfo is None:
            raise ValueError("now: must be timezone-aware")
        given = _header(headers, "Stripe-Signature")
        if not given:
            raise WebhookRejected("no Stripe-Signature header")
        timestamp, signatures = _parse_stripe_header(given)
        expected = _stripe_v1(self._secret, body, timestamp)
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            raise WebhookRejected("no v1 signature in Stripe-Signature matches the body")
        if abs(now.timestamp() - timestamp) > self._tolerance:
            raise WebhookRejected("the Stripe-Signature timestamp is outside the replay window")
        event = _json_object(body)
        data = event.get("data") if event is not None else None
        obj = data.get("object") if isinstance(data, dict) else None
        if event is None or not isinstance(obj, dict) or not isinstance(event.get("type"), str):
            raise WebhookRejected("the body is not a Stripe event (type, data.object)")
        kind = event["type"]
        created = event.get("created")
        at = dt.datetime.fromtimestamp(created, dt.UTC) if isinstance(created, int) else now
        if kind in _STRIPE_SESSION_EVENTS:
            status: PaymentStatus
            if kind == "checkout.session.completed":
                status = "paid" if obj.get("payment_status") == "paid" else "pending"
            elif kind == "checkout.session.async_payment_succeeded":
                status = "paid"
            else:
                status = "failed" if kind.endswith("failed") else "expired"
            return self._session_payment(obj, status, at if status == "paid" else None)
        if kind == "charge.refunded":
            return self._refunded(obj)
        shown = kind if re.fullmatch(r"[a-z_.]{1,80}", kind) else "unknown"
        raise WebhookIgnored(f"Stripe event type {shown} is not one parcours handles")

    def _refunded(self, charge: dict[str, Any]) -> PspPayment:
        intent = charge.get("payment_intent")
        if not isinstance(intent, str) or not _STRIPE_INTENT.fullmatch(intent):
            raise WebhookIgnored("the refunded charge has no payment intent")
        found = self._request(
            "GET", "/v1/checkout/sessions", params={"payment_intent": intent, "limit": "1"}
        ).get("data")
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            raise WebhookIgnored("the refunded charge is not from a Checkout Session")
        created = charge.get("created")
        paid_at = dt.datetime.fromtimestamp(created, dt.UTC) if isinstance(created, int) else None
        # A partial refund leaves the payment paid: only a full one undoes it.
        status: PaymentStatus = "refunded" if charge.get("refunded") is True else "paid"
        return self._session_payment(found[0], status, paid_at)

    def _session_payment(
        self, session: dict[str, Any], status: PaymentStatus, paid_at: dt.datetime | None
    ) -> PspPayment:
        session_id = session.get("id")
        if not isinstance(session_id, str) or not _STRIPE_SESSION.fullmatch(session_id):
            raise PspError("stripe: the Checkout Session has no id (cs_...)")
        minor, currency = self._money(
            session.get("amount_total"), session.get("currency"), "amount_total"
        )
        return PspPayment(
            session_id, status, minor, currency, paid_at, _metadata(session.get("metadata"))
        )

    def _error_summary(self, data: dict[str, Any]) -> str:
        error = data.get("error")
        if not isinstance(error, dict):
            return ""
        kind, code, param = (_token(error.get(k)) for k in ("type", "code", "param"))
        return ", ".join(filter(None, [kind, code, f"param {param}" if param else None]))


def _parse_stripe_header(value: str) -> tuple[int, list[str]]:
    """``t=...,v1=...[,v1=...][,v0=...]`` → (timestamp, v1 signatures)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        name, sep, content = item.strip().partition("=")
        if not sep:
            raise WebhookRejected("malformed Stripe-Signature header")
        if name == "t":
            if not content.isdigit() or len(content) > 12:
                raise WebhookRejected("malformed Stripe-Signature timestamp")
            timestamp = int(content)
        elif name == "v1" and _HEX_SHA256.fullmatch(content):
            signatures.append(content)
    if timestamp is None or not signatures:
        raise WebhookRejected("Stripe-Signature lacks t= or a v1= signature")
    return timestamp, signatures


def psp_from_config(kind: Literal["mollie", "stripe"], **settings: Any) -> Psp:
    """The PSP adapter of `kind`, built from its settings (api_key, webhook_secret, ...)."""
    if kind == "mollie":
        return MolliePsp(**settings)
    if kind == "stripe":
        return StripePsp(**settings)
    raise ValueError(f"psp: unknown kind {cast(str, kind)!r}, expected 'mollie' or 'stripe'")
