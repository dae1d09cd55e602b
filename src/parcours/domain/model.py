"""Entities of a creditor's portfolio: debtors, their cases, invoices, payments, promises.

Plain frozen dataclasses; repositories in `store/` build them from rows. Identifiers are
UUIDs (time-ordered v7 when created by parcours); `ref` fields are the creditor's own
references, unique per creditor.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from uuid import UUID

from parcours.domain.money import Money
from parcours.domain.structured_communication import StructuredCommunication

__all__ = [
    "Case",
    "CaseStatus",
    "ConsentState",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "Invoice",
    "Payment",
    "PostalAddress",
    "PromiseState",
    "PromiseToPay",
]


class ConsentState(enum.StrEnum):
    """What the debtor said about being contacted through one contact point."""

    UNKNOWN = "unknown"  # no statement: contact rests on the contract / legitimate interest
    GRANTED = "granted"
    OPTED_OUT = "opted_out"


@dataclass(frozen=True, slots=True)
class ContactPoint:
    """An email address or a mobile number (E.164) with its own consent state."""

    value: str
    consent: ConsentState = ConsentState.UNKNOWN

    @property
    def usable(self) -> bool:
        return self.consent is not ConsentState.OPTED_OUT


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """A postal address with its own consent state (letters can be refused too)."""

    street: str
    postcode: str
    city: str
    country: str
    consent: ConsentState = ConsentState.UNKNOWN

    @property
    def usable(self) -> bool:
        return self.consent is not ConsentState.OPTED_OUT

    def lines(self) -> tuple[str, ...]:
        return (self.street, f"{self.postcode} {self.city}".strip(), self.country)


@dataclass(frozen=True, slots=True)
class Creditor:
    """A tenant: every other record belongs to exactly one creditor."""

    id: UUID
    name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Debtor:
    """A person who owes a creditor money, with how (and whether) to reach them."""

    id: UUID
    creditor_id: UUID
    ref: str
    name: str
    language: str
    country: str | None = None
    timezone: str | None = None
    birth_year: int | None = None
    email: ContactPoint | None = None
    mobile: ContactPoint | None = None
    postal: PostalAddress | None = None
    # Vulnerability (FCA FG21/1 drivers) changes treatment across personas; it is a flag,
    # not a persona, and special-category data when health-related: keep it minimal.
    vulnerable: bool = False
    # GDPR art. 21: a debtor who objects is not profiled and gets the default journey.
    profiling_objection: bool = False
    erased_at: dt.datetime | None = None

    @property
    def erased(self) -> bool:
        return self.erased_at is not None


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Invoice:
    """One invoice of a case; `paid` is the sum of the payments booked on it."""

    id: UUID
    case_id: UUID
    ref: str
    amount: Money
    issue_date: dt.date
    due_date: dt.date
    structured_communication: StructuredCommunication
    description: str | None = None
    paid: Money | None = None

    @property
    def balance(self) -> Money:
        return self.amount - (self.paid or Money.zero(self.amount.currency))

    @property
    def is_open(self) -> bool:
        return self.balance.minor > 0

    def days_past_due(self, today: dt.date) -> int:
        """Days since the due date (negative before it)."""
        return (today - self.due_date).days


@dataclass(frozen=True, slots=True)
class Case:
    """A debtor's debt towards one creditor, grouping that debtor's invoices."""

    id: UUID
    creditor_id: UUID
    debtor_id: UUID
    ref: str
    status: CaseStatus
    opened_at: dt.datetime
    invoices: tuple[Invoice, ...] = field(default=())

    def balances(self) -> dict[str, Money]:
        """Open balance per currency (a case may mix currencies)."""
        totals: dict[str, Money] = {}
        for invoice in self.invoices:
            currency = invoice.amount.currency
            totals[currency] = totals.get(currency, Money.zero(currency)) + invoice.balance
        return totals


@dataclass(frozen=True, slots=True)
class Payment:
    """Money received against an invoice (history import, bank statement or PSP)."""

    id: UUID
    invoice_id: UUID
    ref: str
    amount: Money
    paid_at: dt.datetime
    source: str = "import"


class PromiseState(enum.StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class PromiseToPay:
    """The debtor's promise to pay `amount` by `due_on`."""

    id: UUID
    case_id: UUID
    amount: Money
    due_on: dt.date
    made_at: dt.datetime
    state: PromiseState = PromiseState.PENDING
