"""The append-only event log (what happened to a case) and audit log (who did what).

Events drive journeys; audit entries are evidence. Neither carries personal data in its
payload: they point at records by id, so a GDPR erasure of the debtor leaves them valid.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

__all__ = ["AuditEntry", "Event", "EventType"]


class EventType(enum.StrEnum):
    CASE_OPENED = "case.opened"
    INVOICE_ADDED = "invoice.added"
    PAYMENT_BOOKED = "payment.booked"
    PROMISE_MADE = "promise.made"
    DEBTOR_ERASED = "debtor.erased"
    # The debtor engaging with a message (channels record them; personas count them).
    MESSAGE_OPENED = "message.opened"
    MESSAGE_CLICKED = "message.clicked"
    MESSAGE_REPLIED = "message.replied"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a case or debtor, at `occurred_at`."""

    id: UUID
    creditor_id: UUID
    type: EventType
    occurred_at: dt.datetime
    case_id: UUID | None = None
    debtor_id: UUID | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A record of an action by a person or a process, kept as evidence."""

    id: UUID
    at: dt.datetime
    actor: str
    action: str
    creditor_id: UUID | None = None
    subject: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
