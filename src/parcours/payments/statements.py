"""Bank statements, whatever their format: what the camt.053 and CODA parsers produce and
what reconciliation reads.

A statement is one account's bookings over a period; each line is one booked entry
(a credit is positive, a debit negative, in minor units of the line's currency).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = ["Statement", "StatementError", "StatementLine"]


class StatementError(ValueError):
    """A statement file that cannot be read as it stands.

    `where` names the place (an XML path with the entry's number, or a CODA line number
    and record type) and `field` the element or field at fault, so the message can say
    exactly what to fix. Nothing of a file that raises it is booked.
    """

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.where = where
        self.field = field
        located = ", ".join(part for part in (where, field) if part)
        super().__init__(f"{located}: {message}" if located else message)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One booked entry of a statement."""

    # The bank's own reference of the entry (camt AcctSvcrRef / NtryRef, CODA sequence
    # with the statement number): unique per account, it makes a re-import book nothing.
    ref: str
    booked_on: dt.date
    amount_minor: int  # credit > 0, debit < 0
    currency: str
    value_on: dt.date | None = None
    # The entry undoes an earlier one (camt RvslInd, CODA storno / R-transactions).
    reversal: bool = False
    # A structured reference as the bank gives it (12 digits for a Belgian OGM/VCS, or
    # an ISO 11649 RF reference), without formatting; None when only free text came.
    structured: str | None = None
    text: str = ""  # unstructured remittance information, joined
    counterparty_name: str | None = None
    counterparty_iban: str | None = None
    end_to_end_id: str | None = None  # camt EndToEndId: the PSP's or payer's own id
    # The bank's code of the transaction (camt BkTxCd domain/family/sub-family, CODA
    # transaction code), kept for the unmatched queue.
    bank_code: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    format: str  # "camt.053.001.08", "coda"
    account_iban: str
    statement_id: str  # the bank's id of the statement (camt Stmt/Id, CODA sequence)
    created_on: dt.date
    currency: str
    opening_minor: int | None = None
    closing_minor: int | None = None
    lines: list[StatementLine] = field(default_factory=list)
