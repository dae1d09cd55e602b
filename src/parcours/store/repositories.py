"""Repositories: every query of the portfolio, each filtered on the creditor (tenant)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import uuid_utils
from sqlalchemy import case as sql_case
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from parcours.domain import (
    AuditEntry,
    Case,
    CaseStatus,
    ConsentState,
    ContactPoint,
    Creditor,
    Debtor,
    Event,
    Invoice,
    Money,
    PostalAddress,
    StructuredCommunication,
)
from parcours.store.schema import (
    AuditRow,
    BankTransactionRow,
    CaseRow,
    CreditorRow,
    DebtorPersonaRow,
    DebtorRow,
    DisputeRow,
    EventRow,
    InvoiceRow,
    PaymentRow,
    PersonaAssignmentRow,
    PromiseRow,
    SurveyResponseRow,
)

__all__ = [
    "AuditLog",
    "CaseRepository",
    "CaseSummary",
    "CreditorRepository",
    "DebtorRepository",
    "EventLog",
    "PortfolioStatus",
    "new_id",
]


def new_id() -> UUID:
    """A time-ordered UUID (v7): new rows land at the right edge of B-tree indexes."""
    return UUID(bytes=uuid_utils.uuid7().bytes)


class CreditorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> Creditor | None:
        row = self.session.scalars(select(CreditorRow).where(CreditorRow.name == name)).first()
        return None if row is None else Creditor(row.id, row.name, row.created_at)

    def add(self, name: str, now: dt.datetime) -> Creditor:
        creditor = Creditor(new_id(), name, now)
        self.session.add(CreditorRow(id=creditor.id, name=name, created_at=now))
        self.session.flush()
        return creditor

    def all(self) -> list[Creditor]:
        rows = self.session.scalars(select(CreditorRow).order_by(CreditorRow.name))
        return [Creditor(r.id, r.name, r.created_at) for r in rows]


@dataclass(frozen=True, slots=True)
class PortfolioStatus:
    creditor: str
    debtors: int
    invoices: int
    open_invoices: int
    cases: int
    open_cases: int
    payments: int
    open_amount: dict[str, Money]

    def as_dict(self) -> dict[str, Any]:
        return {
            "creditor": self.creditor,
            "debtors": self.debtors,
            "invoices": self.invoices,
            "open_invoices": self.open_invoices,
            "cases": self.cases,
            "open_cases": self.open_cases,
            "payments": self.payments,
            "open_amount": {c: str(m.amount) for c, m in sorted(self.open_amount.items())},
        }


@dataclass(frozen=True, slots=True)
class CaseSummary:
    ref: str
    debtor_ref: str
    status: CaseStatus
    invoices: int
    balance: dict[str, Money]
    oldest_due: dt.date | None


class CaseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def status(self, creditor: Creditor) -> PortfolioStatus:
        """Counts and the open amount per currency of one creditor's portfolio."""
        cid = creditor.id

        def count(model: Any, *where: Any) -> int:
            query = select(func.count()).select_from(model).where(model.creditor_id == cid, *where)
            return int(self.session.scalar(query) or 0)

        i = InvoiceRow
        balance = i.amount_minor - i.paid_minor
        amounts = self.session.execute(
            select(
                i.currency,
                func.sum(sql_case((balance > 0, balance), else_=0)),
                func.sum(sql_case((balance > 0, 1), else_=0)),
            )
            .where(i.creditor_id == cid)
            .group_by(i.currency)
        ).all()
        return PortfolioStatus(
            creditor=creditor.name,
            debtors=count(DebtorRow),
            invoices=count(InvoiceRow),
            open_invoices=sum(int(n) for _, _, n in amounts),
            cases=count(CaseRow),
            open_cases=count(CaseRow, CaseRow.status == "open"),
            payments=count(PaymentRow),
            open_amount={cur: Money(int(total), cur) for cur, total, _ in amounts},
        )

    def list(
        self, creditor: Creditor, *, debtor_ref: str | None = None, limit: int = 50
    ) -> list[CaseSummary]:
        """Cases with their balances, oldest open due date first (the most urgent on top).

        The ordering and the limit run in SQL, so a portfolio of any size costs two
        queries and `limit` rows.
        """
        c, d, i = CaseRow, DebtorRow, InvoiceRow
        oldest = func.min(sql_case((i.amount_minor > i.paid_minor, i.due_date))).label("oldest")
        urgent = (
            select(c.id, c.ref, d.ref, c.status, oldest)
            .join(d, d.id == c.debtor_id)
            .outerjoin(i, i.case_id == c.id)
            .where(c.creditor_id == creditor.id)
            .group_by(c.id, c.ref, d.ref, c.status)
            .order_by(oldest.is_(None), oldest, c.ref)
            .limit(limit)
        )
        if debtor_ref is not None:
            urgent = urgent.where(d.ref == debtor_ref)
        heads = self.session.execute(urgent).all()
        totals: dict[UUID, dict[str, tuple[int, int]]] = {}
        if heads:
            per_currency = self.session.execute(
                select(i.case_id, i.currency, func.count(), func.sum(i.amount_minor - i.paid_minor))
                .where(i.creditor_id == creditor.id, i.case_id.in_([h[0] for h in heads]))
                .group_by(i.case_id, i.currency)
            )
            for case_id, currency, count, balance in per_currency:
                totals.setdefault(case_id, {})[currency] = (int(count), int(balance or 0))
        return [
            CaseSummary(
                ref=case_ref,
                debtor_ref=d_ref,
                status=CaseStatus(status),
                invoices=sum(n for n, _ in totals.get(case_id, {}).values()),
                balance={cur: Money(b, cur) for cur, (_, b) in totals.get(case_id, {}).items()},
                oldest_due=oldest_due,
            )
            for case_id, case_ref, d_ref, status, oldest_due in heads
        ]

    def get(self, creditor: Creditor, ref: str) -> tuple[Case, str] | None:
        """A case with its invoices, and its debtor's ref."""
        found = self.session.execute(
            select(CaseRow, DebtorRow.ref)
            .join(DebtorRow, DebtorRow.id == CaseRow.debtor_id)
            .where(CaseRow.creditor_id == creditor.id, CaseRow.ref == ref)
        ).first()
        if found is None:
            return None
        row, debtor_ref = found
        invoices = self.session.scalars(
            select(InvoiceRow)
            .where(InvoiceRow.creditor_id == creditor.id, InvoiceRow.case_id == row.id)
            .order_by(InvoiceRow.due_date, InvoiceRow.ref)
        )
        case = Case(
            id=row.id,
            creditor_id=row.creditor_id,
            debtor_id=row.debtor_id,
            ref=row.ref,
            status=CaseStatus(row.status),
            opened_at=row.opened_at,
            invoices=tuple(_invoice(r) for r in invoices),
        )
        return case, debtor_ref


def _invoice(row: InvoiceRow) -> Invoice:
    return Invoice(
        id=row.id,
        case_id=row.case_id,
        ref=row.ref,
        amount=Money(row.amount_minor, row.currency),
        issue_date=row.issue_date,
        due_date=row.due_date,
        structured_communication=StructuredCommunication(row.structured_communication),
        description=row.description,
        paid=Money(row.paid_minor, row.currency),
    )


def _debtor(row: DebtorRow) -> Debtor:
    postal = None
    if row.street and row.postcode and row.city:
        postal = PostalAddress(
            row.street,
            row.postcode,
            row.city,
            row.country or "",
            ConsentState(row.postal_consent),
        )
    return Debtor(
        id=row.id,
        creditor_id=row.creditor_id,
        ref=row.ref,
        name=row.name,
        language=row.language,
        country=row.country,
        timezone=row.timezone,
        birth_year=row.birth_year,
        email=ContactPoint(row.email, ConsentState(row.email_consent)) if row.email else None,
        mobile=ContactPoint(row.phone, ConsentState(row.phone_consent)) if row.phone else None,
        postal=postal,
        vulnerable=row.vulnerable,
        profiling_objection=row.profiling_objection,
        erased_at=row.erased_at,
    )


class DebtorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _row(self, creditor: Creditor, ref: str) -> DebtorRow | None:
        return self.session.scalars(
            select(DebtorRow).where(DebtorRow.creditor_id == creditor.id, DebtorRow.ref == ref)
        ).first()

    def get(self, creditor: Creditor, ref: str) -> Debtor | None:
        row = self._row(creditor, ref)
        return None if row is None else _debtor(row)

    def export(self, creditor: Creditor, ref: str) -> dict[str, Any] | None:
        """Everything stored about one debtor (GDPR art. 15), as JSON-ready data."""
        row = self._row(creditor, ref)
        if row is None:
            return None
        cid = creditor.id
        cases = self.session.scalars(
            select(CaseRow).where(CaseRow.creditor_id == cid, CaseRow.debtor_id == row.id)
        ).all()
        case_ids = [c.id for c in cases]
        invoices = self.session.scalars(
            select(InvoiceRow)
            .where(InvoiceRow.creditor_id == cid, InvoiceRow.case_id.in_(case_ids))
            .order_by(InvoiceRow.due_date)
        ).all()
        payments = self.session.scalars(
            select(PaymentRow)
            .where(
                PaymentRow.creditor_id == cid, PaymentRow.invoice_id.in_([i.id for i in invoices])
            )
            .order_by(PaymentRow.paid_at)
        ).all()
        promises = self.session.scalars(
            select(PromiseRow).where(
                PromiseRow.creditor_id == cid, PromiseRow.case_id.in_(case_ids)
            )
        ).all()
        events = self.session.scalars(
            select(EventRow)
            .where(
                EventRow.creditor_id == cid,
                (EventRow.debtor_id == row.id) | EventRow.case_id.in_(case_ids),
            )
            .order_by(EventRow.occurred_at)
        ).all()
        surveys = self.session.scalars(
            select(SurveyResponseRow)
            .where(SurveyResponseRow.creditor_id == cid, SurveyResponseRow.debtor_id == row.id)
            .order_by(SurveyResponseRow.answered_at)
        ).all()
        # Profiling is part of the right of access (GDPR art. 15(1)(h)).
        personas = self.session.scalars(
            select(PersonaAssignmentRow)
            .where(
                PersonaAssignmentRow.creditor_id == cid,
                PersonaAssignmentRow.debtor_id == row.id,
            )
            .order_by(PersonaAssignmentRow.assigned_at)
        ).all()
        return {
            "creditor": creditor.name,
            "debtor": _columns(row, exclude=_INTERNAL),
            "cases": [_columns(c) for c in cases],
            "invoices": [_columns(i, exclude=_INTERNAL) for i in invoices],
            "payments": [_columns(p, exclude=_INTERNAL) for p in payments],
            "promises": [_columns(p) for p in promises],
            "events": [_columns(e) for e in events],
            "survey_responses": [_columns(r) for r in surveys],
            "persona_assignments": [_columns(a) for a in personas],
        }

    def erase(self, creditor: Creditor, ref: str, now: dt.datetime) -> Debtor | None:
        """Anonymise a debtor (GDPR art. 17); amounts, invoices and payments stay for the books.

        Survey answers are deleted and the debtor has no current persona any more; the
        assignment history stays (ids and persona keys only) as evidence of past profiling.
        """
        row = self._row(creditor, ref)
        if row is None:
            return None
        for table in (SurveyResponseRow, DebtorPersonaRow):
            self.session.execute(
                delete(table).where(table.creditor_id == creditor.id, table.debtor_id == row.id)
            )
        # What the debtor wrote or their bank said of them: the amounts stay.
        cases = select(CaseRow.id).where(
            CaseRow.creditor_id == creditor.id, CaseRow.debtor_id == row.id
        )
        self.session.execute(
            update(BankTransactionRow)
            .where(
                BankTransactionRow.creditor_id == creditor.id, BankTransactionRow.case_id.in_(cases)
            )
            .values(counterparty_name=None, counterparty_iban=None, text=None)
        )
        self.session.execute(
            update(DisputeRow)
            .where(DisputeRow.creditor_id == creditor.id, DisputeRow.case_id.in_(cases))
            .values(evidence=None)
        )
        self.session.execute(
            update(DebtorRow)
            .where(DebtorRow.creditor_id == creditor.id, DebtorRow.id == row.id)
            .values(
                name="(erased)",
                name_key=None,
                email=None,
                phone=None,
                street=None,
                postcode=None,
                city=None,
                birth_year=None,
                timezone=None,
                vulnerable=False,
                erased_at=now,
                updated_at=now,
            )
        )
        self.session.expire(row)
        self.session.flush()
        refreshed = self._row(creditor, ref)
        assert refreshed is not None
        return _debtor(refreshed)


_INTERNAL = frozenset({"source_digest"})


def _columns(row: Any, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    values = {}
    for column in row.__table__.columns:
        if column.key in exclude:
            continue
        value = getattr(row, column.key)
        if isinstance(value, UUID):
            value = str(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        values[column.key] = value
    return values


class EventLog:
    """Appends to the event log; rows are never updated or deleted (the database refuses)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, event: Event, recorded_at: dt.datetime) -> None:
        self.session.add(
            EventRow(
                id=event.id,
                creditor_id=event.creditor_id,
                case_id=event.case_id,
                debtor_id=event.debtor_id,
                type=event.type.value,
                occurred_at=event.occurred_at,
                recorded_at=recorded_at,
                payload=event.payload,
            )
        )


class AuditLog:
    """Appends audit entries (evidence of who did what); never personal data in details."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, entry: AuditEntry) -> None:
        self.session.add(
            AuditRow(
                id=entry.id,
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                creditor_id=entry.creditor_id,
                subject=entry.subject,
                details=entry.details,
            )
        )

    def for_subject(self, creditor: Creditor, subject: str) -> list[AuditEntry]:
        rows = self.session.scalars(
            select(AuditRow)
            .where(AuditRow.creditor_id == creditor.id, AuditRow.subject == subject)
            .order_by(AuditRow.at)
        )
        return [
            AuditEntry(r.id, r.at, r.actor, r.action, r.creditor_id, r.subject, r.details)
            for r in rows
        ]
