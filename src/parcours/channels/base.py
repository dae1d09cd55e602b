"""The provider interface: one typed provider per channel, configured with pydantic.

A provider sends one rendered message under its attempt id (the idempotency key: a
provider that can be asked twice for the same attempt must not deliver twice) and says
what happened. Transient failures are retried with backoff by the dispatcher; permanent
ones are not, and make the journey fall back to its next channel. Inbound traffic
(delivery reports, bounces, replies, clicks) becomes `DeliveryEvent`s keyed by the
attempt id or the provider's own message reference.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import ClassVar, Protocol

from pydantic import BaseModel

from parcours.channels.content import MessageContent, Rendered

__all__ = ["DeliveryEvent", "DeliveryKind", "Outcome", "Provider", "SendResult"]


class Outcome(enum.StrEnum):
    SENT = "sent"  # accepted by the carrier (not yet delivered)
    TRANSIENT = "transient"  # try again later (timeout, 4xx SMTP, HTTP 429/5xx)
    PERMANENT = "permanent"  # never retry this message (invalid address, 5xx SMTP, HTTP 4xx)
    # The carrier refuses us, not the message (credentials, TLS, a service not offered):
    # no message can pass until an operator fixes it, so nothing falls back to another
    # channel — the channel pauses and its messages wait.
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    provider_ref: str | None = None  # the carrier's id for the message (SMS sid, ...)
    detail: str | None = None  # why, without personal data
    units: int = 1  # what is billed: SMS segments, letter pages (sheets), 1 e-mail
    retry_after: dt.timedelta | None = None  # a carrier's own hint (HTTP Retry-After)


class DeliveryKind(enum.StrEnum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # permanent failure after acceptance (hard bounce, undeliverable)
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    OPTED_OUT = "opted_out"  # STOP by SMS, List-Unsubscribe, the visible opt-out link


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """Something a carrier told us about a message we sent."""

    kind: DeliveryKind
    at: dt.datetime
    attempt_id: str | None = None
    provider_ref: str | None = None
    address: str | None = None  # the number or e-mail concerned (opt-outs); never logged
    text: str | None = None  # a reply's words; never logged


class Provider(Protocol):
    """A channel's carrier, built from its `Config`. `close` releases what `send` kept
    open (an SMTP connection, an HTTP client)."""

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def send(self, content: MessageContent, rendered: Rendered) -> SendResult: ...

    def close(self) -> None: ...
