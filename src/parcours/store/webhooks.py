"""Outgoing webhooks in the store: each creditor's endpoints, and one delivery row per
event and endpoint — the queue the sender works through and the delivery log people read.

New events are found from a cursor kept per endpoint (the newest `recorded_at` seen),
looking back a while before it: an event recorded by a transaction that committed late
is still found, and the unique (endpoint, event) key keeps it from being queued twice.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection, and_, func, insert, select, update

from parcours.store.repositories import new_id
from parcours.store.schema import (
    CaseRow,
    DebtorRow,
    EventRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)

__all__ = [
    "LOOKBACK",
    "WEBHOOK_EVENT_TYPES",
    "DeliveryEntry",
    "DueDelivery",
    "WebhookEndpoint",
    "WebhookStore",
    "add_endpoint",
    "endpoints",
]

WEBHOOK_EVENT_TYPES: Final = (
    "case.paid",
    "promise.made",
    "promise.broken",
    "dispute.opened",
    "plan.created",
)
# Longer than any transaction that records events (a 100,000-line statement takes seconds).
LOOKBACK: Final = dt.timedelta(minutes=15)
_BATCH: Final = 1_000


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: uuid.UUID
    creditor_id: uuid.UUID
    url: str
    secret: str
    event_types: tuple[str, ...]
    active: bool
    created_at: dt.datetime
    cursor_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery to attempt now, with what signing and sending it needs."""

    id: uuid.UUID
    url: str
    secret: str
    event_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    attempts: int  # made before this one


@dataclass(frozen=True, slots=True)
class DeliveryEntry:
    """A line of the delivery log."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    event_id: uuid.UUID
    type: str
    status: str
    attempts: int
    next_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise ValueError(f"url: {url!r} is not an http(s) URL with a host")
    return url


def add_endpoint(
    connection: Connection,
    creditor_id: uuid.UUID,
    url: str,
    event_types: Iterable[str],
    now: dt.datetime,
    *,
    secret: str | None = None,
) -> WebhookEndpoint:
    """Subscribe `url` to these event types from now on; the secret that signs the
    deliveries is made here unless given (store it on the receiving side)."""
    chosen = tuple(dict.fromkeys(event_types))
    unknown = [t for t in chosen if t not in WEBHOOK_EVENT_TYPES]
    if unknown or not chosen:
        raise ValueError(
            f"events: {', '.join(unknown) or 'none given'} — choose from "
            + ", ".join(WEBHOOK_EVENT_TYPES)
        )
    endpoint = WebhookEndpoint(
        new_id(), creditor_id, _check_url(url), secret or "whsec_" + secrets.token_urlsafe(32),
        chosen, True, now, None,
    )  # fmt: skip
    connection.execute(
        insert(WebhookEndpointRow).values(
            id=endpoint.id, creditor_id=creditor_id, url=endpoint.url, secret=endpoint.secret,
            event_types=list(chosen), active=True, created_at=now,
        )
    )  # fmt: skip
    return endpoint


def endpoints(connection: Connection, creditor_id: uuid.UUID) -> list[WebhookEndpoint]:
    """The creditor's endpoints, oldest first."""
    t = WebhookEndpointRow
    rows = connection.execute(
        select(
            t.id, t.creditor_id, t.url, t.secret, t.event_types, t.active, t.created_at,
            t.cursor_at,
        )
        .where(t.creditor_id == creditor_id)
        .order_by(t.created_at, t.id)
    )  # fmt: skip
    return [
        WebhookEndpoint(r[0], r[1], r[2], r[3], tuple(r[4]), bool(r[5]), r[6], r[7]) for r in rows
    ]


class WebhookStore:
    """One creditor's delivery queue, inside the caller's transaction."""

    def __init__(self, connection: Connection, creditor_id: uuid.UUID) -> None:
        self.connection = connection
        self.creditor_id = creditor_id
        self.sqlite = connection.dialect.name == "sqlite"

    def enqueue(self, now: dt.datetime, lookback: dt.timedelta = LOOKBACK) -> int:
        """Queue a delivery for each new event an active endpoint subscribed to; returns
        how many."""
        queued = 0
        for endpoint in endpoints(self.connection, self.creditor_id):
            if endpoint.active:
                queued += self._enqueue_for(endpoint, now, lookback)
        return queued

    def _enqueue_for(
        self, endpoint: WebhookEndpoint, now: dt.datetime, lookback: dt.timedelta
    ) -> int:
        e, w, c, d = EventRow, WebhookDeliveryRow, CaseRow, DebtorRow
        floor = endpoint.created_at
        if endpoint.cursor_at is not None:
            floor = max(floor, endpoint.cursor_at - lookback)
        newest, queued = endpoint.cursor_at, 0
        while True:
            rows = self.connection.execute(
                select(
                    e.id, e.type, e.occurred_at, e.recorded_at, e.payload,
                    c.ref.label("case_ref"), d.ref.label("debtor_ref"),
                )
                .outerjoin(w, and_(w.endpoint_id == endpoint.id, w.event_id == e.id))
                .outerjoin(c, and_(c.id == e.case_id, c.creditor_id == e.creditor_id))
                .outerjoin(d, and_(d.id == e.debtor_id, d.creditor_id == e.creditor_id))
                .where(
                    e.creditor_id == self.creditor_id,
                    e.recorded_at >= floor,
                    e.type.in_(endpoint.event_types),
                    w.id.is_(None),
                )
                .order_by(e.recorded_at, e.id)
                .limit(_BATCH)
            ).all()  # fmt: skip
            if rows:
                self.connection.execute(
                    insert(w),
                    [
                        {
                            "id": new_id(), "endpoint_id": endpoint.id,
                            "creditor_id": self.creditor_id, "event_id": r.id, "type": r.type,
                            "payload": _body(r), "attempts": 0, "status": "pending",
                            "next_at": now, "created_at": now,
                        }
                        for r in rows
                    ],
                )  # fmt: skip
                queued += len(rows)
                floor = rows[-1].recorded_at
                if newest is None or floor > newest:
                    newest = floor
            if len(rows) < _BATCH:
                break
        if newest is not None and newest != endpoint.cursor_at:
            t = WebhookEndpointRow
            self.connection.execute(update(t).where(t.id == endpoint.id).values(cursor_at=newest))
        return queued

    def claim(self, now: dt.datetime, lease_end: dt.datetime, limit: int) -> list[DueDelivery]:
        """Take up to `limit` due deliveries until `lease_end` (a sender that dies leaves
        them to be retried then); rows another sender holds are skipped (PostgreSQL)."""
        w, t = WebhookDeliveryRow, WebhookEndpointRow
        query = (
            select(w.id, t.url, t.secret, w.event_id, w.type, w.payload, w.attempts)
            .join(t, t.id == w.endpoint_id)
            .where(
                w.creditor_id == self.creditor_id,
                w.status == "pending",
                w.next_at <= now,
                t.active.is_(True),
            )
            .order_by(w.next_at, w.id)
            .limit(limit)
        )
        if not self.sqlite:
            query = query.with_for_update(of=w, skip_locked=True)
        due = [DueDelivery(*r) for r in self.connection.execute(query)]
        if due:
            self.connection.execute(
                update(w).where(w.id.in_([d.id for d in due])).values(next_at=lease_end)
            )
        return due

    def delivered(
        self, delivery: uuid.UUID, attempts: int, status_code: int, now: dt.datetime
    ) -> None:
        w = WebhookDeliveryRow
        self.connection.execute(
            update(w)
            .where(w.id == delivery, w.creditor_id == self.creditor_id)
            .values(
                status="delivered", attempts=attempts, next_at=None, delivered_at=now,
                last_status_code=status_code, last_error=None,
            )
        )  # fmt: skip

    def failed_attempt(
        self,
        delivery: uuid.UUID,
        attempts: int,
        next_at: dt.datetime | None,
        status_code: int | None,
        error: str,
    ) -> None:
        """Record a failed attempt: retried at `next_at`, or given up when it is None."""
        w = WebhookDeliveryRow
        self.connection.execute(
            update(w)
            .where(w.id == delivery, w.creditor_id == self.creditor_id)
            .values(
                status="pending" if next_at is not None else "failed", attempts=attempts,
                next_at=next_at, last_status_code=status_code, last_error=error[:500],
            )
        )  # fmt: skip

    def log(self, limit: int = 50, status: str | None = None) -> list[DeliveryEntry]:
        """The latest deliveries, newest first."""
        w, t = WebhookDeliveryRow, WebhookEndpointRow
        query = (
            select(
                w.id, w.endpoint_id, t.url, w.event_id, w.type, w.status, w.attempts, w.next_at,
                w.last_status_code, w.last_error, w.created_at, w.delivered_at,
            )
            .join(t, t.id == w.endpoint_id)
            .where(w.creditor_id == self.creditor_id)
            .order_by(w.created_at.desc(), w.id.desc())
            .limit(limit)
        )  # fmt: skip
        if status is not None:
            query = query.where(w.status == status)
        return [DeliveryEntry(*tuple(r)) for r in self.connection.execute(query)]

    def counts(self) -> dict[uuid.UUID, dict[str, int]]:
        """Endpoint → deliveries by status."""
        w = WebhookDeliveryRow
        found: dict[uuid.UUID, dict[str, int]] = {}
        for endpoint, status, n in self.connection.execute(
            select(w.endpoint_id, w.status, func.count())
            .where(w.creditor_id == self.creditor_id)
            .group_by(w.endpoint_id, w.status)
        ):
            found.setdefault(endpoint, {})[status] = int(n)
        return found


def _body(row: Any) -> dict[str, Any]:
    """What the receiver gets: the event's id, type and time, and its data with the case
    and debtor references (events hold amounts and ids, never personal data)."""
    data = dict(row.payload or {})
    data.update(case_ref=row.case_ref, debtor_ref=row.debtor_ref)
    return {
        "id": str(row.id),
        "type": row.type,
        "occurred_at": row.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
