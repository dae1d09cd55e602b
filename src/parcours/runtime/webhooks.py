"""Outgoing webhooks: a creditor's systems hear of payments, promises, plans and disputes.

Each event becomes a JSON POST `{id, type, occurred_at, data}` to every endpoint that
subscribed to its type, signed like Stripe's: `Parcours-Signature: t=<unix time>,v1=<hex
HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>`. A delivery that fails (no 2xx,
no answer) is retried after 1 min, 5 min, 30 min, 2 h and 12 h, then marked failed; every
attempt is in the delivery log. Delivery is at least once: receivers dedupe on `id`.

`sign` and `verify_signature` are what a receiver needs:

    from parcours.runtime.webhooks import verify_signature
    verify_signature(request_body, headers["Parcours-Signature"], secret)  # or raises
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Final

import httpx
import structlog
from sqlalchemy import Engine

from parcours.store.webhooks import DueDelivery, WebhookStore

__all__ = [
    "BACKOFF",
    "SIGNATURE_HEADER",
    "TOLERANCE",
    "DeliveryReport",
    "SignatureError",
    "body_bytes",
    "deliver_webhooks",
    "sign",
    "verify_signature",
]

log = structlog.get_logger("parcours.webhooks")

SIGNATURE_HEADER: Final = "Parcours-Signature"
# Waits after the 1st, 2nd… failed attempt; after the last one the delivery has failed.
BACKOFF: Final = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=12),
)
TOLERANCE: Final = dt.timedelta(minutes=5)  # how old a signature a receiver accepts
# A claimed delivery is retried after this if its sender died before recording it.
LEASE: Final = dt.timedelta(minutes=2)


class SignatureError(ValueError):
    """A webhook whose signature is missing, malformed, wrong or too old."""


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The `Parcours-Signature` header value of `body` sent at `timestamp` (Unix time)."""
    return f"t={timestamp},v1={_mac(body, secret, timestamp)}"


def verify_signature(
    body: bytes,
    header: str,
    secret: str,
    *,
    now: dt.datetime | None = None,
    tolerance: dt.timedelta = TOLERANCE,
) -> None:
    """Check a received webhook: raise SignatureError unless `header` signs exactly these
    bytes with `secret`, no more than `tolerance` from `now` (replays are refused).

    Several `v1=` entries may be present (while a secret is rotated): one must match.
    """
    timestamp: int | None = None
    signatures = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError(f"{SIGNATURE_HEADER} must read t=<unix time>,v1=<hex signature>")
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    if abs(moment - timestamp) > tolerance.total_seconds():
        raise SignatureError(
            f"the signature's time t={timestamp} is more than "
            f"{int(tolerance.total_seconds())} s from now: a replay or a wrong clock"
        )
    expected = _mac(body, secret, timestamp)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("the signature does not match this body and secret")


@dataclass
class DeliveryReport:
    """What one run did: counts only."""

    queued: int = 0
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for a delivery: the same on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def deliver_webhooks(
    engine: Engine,
    creditor_id: uuid.UUID,
    now: dt.datetime,
    client: httpx.Client,
    *,
    limit: int = 100,
) -> DeliveryReport:
    """Queue the creditor's new events for its endpoints, then POST every delivery due
    by `now` (its clock also dates the signatures); each outcome is committed at once."""
    report = DeliveryReport()
    with engine.begin() as connection:
        report.queued = WebhookStore(connection, creditor_id).enqueue(now)
    while True:
        with engine.begin() as connection:
            due = WebhookStore(connection, creditor_id).claim(now, now + LEASE, limit)
        if not due:
            break
        for delivery in due:
            status, error = _post(client, delivery, now)
            attempts = delivery.attempts + 1
            report.attempted += 1
            with engine.begin() as connection:
                store = WebhookStore(connection, creditor_id)
                if status is not None and 200 <= status < 300:
                    store.delivered(delivery.id, attempts, status, now)
                    report.delivered += 1
                    continue
                retry_at = now + BACKOFF[attempts - 1] if attempts <= len(BACKOFF) else None
                store.failed_attempt(delivery.id, attempts, retry_at, status, error)
            if retry_at is None:
                report.failed += 1
            else:
                report.retrying += 1
    if report.attempted or report.queued:
        log.info("webhooks.run", **report.as_dict())
    return report


def _post(client: httpx.Client, delivery: DueDelivery, now: dt.datetime) -> tuple[int | None, str]:
    """(HTTP status or None, what went wrong) of one attempt; never raises for the
    receiver's faults."""
    body = body_bytes(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "parcours-webhooks/1",
        SIGNATURE_HEADER: sign(body, delivery.secret, int(now.timestamp())),
        "Parcours-Event-Id": str(delivery.event_id),
        "Parcours-Event-Type": delivery.type,
    }
    started = time.perf_counter()
    try:
        response = client.post(delivery.url, content=body, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return None, f"{type(error).__name__}: {error}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    elapsed = time.perf_counter() - started
    return response.status_code, f"HTTP {response.status_code} after {elapsed:.2f} s"
