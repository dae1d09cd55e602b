"""The collection domain in plain Python: money, debtors, cases, invoices, payments, events.

Nothing here does I/O; adapters (`store/`, `ingest/`, channels, payments) import this
package, never the reverse.
"""

from parcours.domain.errors import DomainError, InvalidAmount, InvalidStructuredCommunication
from parcours.domain.events import AuditEntry, Event, EventType
from parcours.domain.model import (
    Case,
    CaseStatus,
    ConsentState,
    ContactPoint,
    Creditor,
    Debtor,
    Invoice,
    Payment,
    PostalAddress,
    PromiseState,
    PromiseToPay,
)
from parcours.domain.money import Money, currency_exponent, is_iso_currency, parse_amount
from parcours.domain.structured_communication import StructuredCommunication

__all__ = [
    "AuditEntry",
    "Case",
    "CaseStatus",
    "ConsentState",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "DomainError",
    "Event",
    "EventType",
    "InvalidAmount",
    "InvalidStructuredCommunication",
    "Invoice",
    "Money",
    "Payment",
    "PostalAddress",
    "PromiseState",
    "PromiseToPay",
    "StructuredCommunication",
    "currency_exponent",
    "is_iso_currency",
    "parse_amount",
]
