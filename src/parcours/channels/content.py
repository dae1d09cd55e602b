"""What every message says, whatever carries it: the facts of one case, ready to render.

A `MessageContent` is built once per outbox row from the store (creditor profile, debtor,
open invoices, fees booked, structured communication, personal links) and handed to the
renderer (templates, per step, persona tone and language) and then to the provider of the
row's channel. Amounts are integer minor units (cents); nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from parcours.domain.structured_communication import StructuredCommunication

__all__ = [
    "Address",
    "Channel",
    "CreditorProfile",
    "EmailBody",
    "FeeLine",
    "InvoiceLine",
    "LetterBody",
    "MessageContent",
    "PhoneScript",
    "Rendered",
    "SmsBody",
]

LANGUAGES = ("fr", "nl", "en")


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    LETTER = "letter"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address as printed: name first, then street, postcode and city, country."""

    name: str
    street: str
    postcode: str
    city: str
    country: str  # ISO 3166-1 alpha-2

    def lines(self) -> tuple[str, ...]:
        return (self.name, self.street, f"{self.postcode} {self.city}".strip(), self.country)


@dataclass(frozen=True, slots=True)
class CreditorProfile:
    """What a creditor's messages show about it (letterhead, where to pay, how to get help)."""

    name: str
    iban: str  # electronic format, no spaces: BE71096123456769
    bic: str | None
    address: Address
    help_email: str
    help_phone: str  # E.164
    sms_sender: str = "parcours"  # alphanumeric sender id (≤ 11 chars) or a number
    email_from: str = "noreply@parcours.invalid"
    company_number: str | None = None  # Belgian enterprise number, printed on letters


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    ref: str
    issued_on: dt.date
    due_on: dt.date
    amount_minor: int  # the invoice as issued
    open_minor: int  # what is still owed on it (after partial payments)


@dataclass(frozen=True, slots=True)
class FeeLine:
    """A fee booked on the case, always shown on its own line with its legal basis."""

    kind: str  # reminder_fee | flat_indemnity | late_interest
    amount_minor: int
    legal_basis: str  # e.g. "Code de droit économique, art. XIX.4"


@dataclass(frozen=True, slots=True)
class MessageContent:
    """Everything one message says. `template` is the journey step's template key."""

    attempt_id: str  # the outbox row's deterministic id: idempotency key, Message-ID
    case_ref: str
    debtor_ref: str
    channel: Channel
    template: str
    language: str  # fr | nl | en
    persona: str | None  # the tone: None for the universal (one-size) voice
    creditor: CreditorProfile
    debtor_name: str
    email: str | None
    mobile: str | None  # E.164
    address: Address | None
    invoices: tuple[InvoiceLine, ...]
    fees: tuple[FeeLine, ...]
    currency: str
    pay_by: dt.date  # the date the message asks to pay by
    structured_communication: StructuredCommunication
    pay_link: str
    opt_out_link: str
    chat_link: str | None = None
    reminder: bool = False  # a Book XIX reminder (the first one is free)
    sent_on: dt.date = field(default_factory=dt.date.today)

    @property
    def invoices_minor(self) -> int:
        return sum(i.open_minor for i in self.invoices)

    @property
    def fees_minor(self) -> int:
        return sum(f.amount_minor for f in self.fees)

    @property
    def total_minor(self) -> int:
        """What the debtor is asked to pay: open invoices plus every fee line."""
        return self.invoices_minor + self.fees_minor


@dataclass(frozen=True, slots=True)
class EmailBody:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class SmsBody:
    text: str


@dataclass(frozen=True, slots=True)
class LetterBody:
    """The words of a letter; the letter provider lays out the rest (tables, QR, address)."""

    subject: str
    salutation: str
    paragraphs: tuple[str, ...]
    closing: str


@dataclass(frozen=True, slots=True)
class PhoneScript:
    """What the agent says, step by step, in the persona's helper role."""

    title: str
    lines: tuple[str, ...]


Rendered = EmailBody | SmsBody | LetterBody | PhoneScript
