"""Tables of the store (SQLAlchemy 2 declarative). Alembic migrations own the real schema.

Every row carries `creditor_id` — the tenant — so each query can filter on it; keys are
UUIDs made by parcours (v7, time-ordered, kind to B-tree indexes); money is integer minor
units plus an ISO currency; timestamps are stored in UTC.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKeyRow",
    "AuditRow",
    "BankTransactionRow",
    "Base",
    "CaseRow",
    "CreditorRow",
    "DebtorPersonaRow",
    "DebtorRow",
    "DisputeRow",
    "EnrolmentRow",
    "EventRow",
    "IdempotencyKeyRow",
    "InvoiceRow",
    "OutboxRow",
    "PaymentPlanRow",
    "PaymentRow",
    "PersonaAssignmentRow",
    "PersonaModelRow",
    "PlanInstalmentRow",
    "PolicyLogRow",
    "PromiseRow",
    "StatementRow",
    "SurveyResponseRow",
    "TickRow",
    "UtcDateTime",
    "UuidKey",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UuidKey(TypeDecorator[uuid.UUID]):
    """A UUID: native on PostgreSQL, 16 raw bytes on SQLite.

    SQLAlchemy's own `Uuid` stores 32 hex characters on SQLite; bytes halve every key
    and index entry, which keeps a million-invoice import inside SQLite's page cache.
    """

    impl = Uuid
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(LargeBinary(16))
        return dialect.type_descriptor(Uuid())

    def process_bind_param(self, value: uuid.UUID | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return value.bytes

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(bytes=bytes(value))


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime, stored as UTC (naive on SQLite, timestamptz on PostgreSQL)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        uuid.UUID: UuidKey(),
        dt.datetime: UtcDateTime(),
        dt.date: Date(),
        int: BigInteger(),
        str: Text(),
        dict[str, Any]: JSON(),
    }


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("creditors.id", ondelete="RESTRICT"))


def _same_tenant(column: str, parent: str) -> ForeignKeyConstraint:
    """A key to `parent`'s primary key (id, creditor_id): the parent must exist and
    belong to the same creditor.

    One check instead of two (parent, creditor) per row, no extra index (the key is the
    primary key), and a row can never point at another tenant's record.
    """
    return ForeignKeyConstraint(
        [column, "creditor_id"], [f"{parent}.id", f"{parent}.creditor_id"], ondelete="RESTRICT"
    )


def _case_of_debtor() -> ForeignKeyConstraint:
    """A key to the case *of that debtor* and creditor, for a row naming both (migrations
    0011 and 0014): one check for the two, and the row cannot name another debtor than
    its case's. Served by the cases' unique (creditor_id, debtor_id, id) index."""
    return ForeignKeyConstraint(
        ["creditor_id", "debtor_id", "case_id"],
        ["cases.creditor_id", "cases.debtor_id", "cases.id"],
        ondelete="RESTRICT",
    )


class CreditorRow(Base):
    __tablename__ = "creditors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[dt.datetime]
    # Next base for Belgian structured communications; blocks are reserved under a row lock.
    next_ogm_base: Mapped[int] = mapped_column(default=1, server_default="1")


class DebtorRow(Base):
    __tablename__ = "debtors"
    __table_args__ = (
        UniqueConstraint("creditor_id", "ref"),
        CheckConstraint("email_consent IN ('unknown','granted','opted_out')", name="email_consent"),
        CheckConstraint("phone_consent IN ('unknown','granted','opted_out')", name="phone_consent"),
        CheckConstraint(
            "postal_consent IN ('unknown','granted','opted_out')", name="postal_consent"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Part of the key so that records of the same tenant can reference (id, creditor_id).
    creditor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("creditors.id", ondelete="RESTRICT"), primary_key=True
    )
    ref: Mapped[str] = mapped_column(String(64))
    name: Mapped[str]
    # The name as reconciliation compares it (parcours.domain.names.name_key): a
    # transfer that says only who paid finds its debtor by it. Not indexed: a statement
    # scans the debtors once, and the import of a million rows stays fast.
    name_key: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2))
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    birth_year: Mapped[int | None] = mapped_column(Integer())
    email: Mapped[str | None]
    email_consent: Mapped[str] = mapped_column(String(16), server_default="unknown")
    phone: Mapped[str | None] = mapped_column(String(20))
    phone_consent: Mapped[str] = mapped_column(String(16), server_default="unknown")
    street: Mapped[str | None]
    postcode: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None]
    postal_consent: Mapped[str] = mapped_column(String(16), server_default="unknown")
    vulnerable: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    profiling_objection: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    # Set by the debtor on their page: the channel to try first, and whether they want a
    # reminder before each due date (None: as their journey says).
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    remind_before_due: Mapped[bool | None] = mapped_column(Boolean())
    # When the debtor objected to profiling (GDPR art. 21); None when not objecting.
    profiling_objection_at: Mapped[dt.datetime | None]
    erased_at: Mapped[dt.datetime | None]
    # Digest of the imported fields: a re-import compares it to report unchanged/updated.
    source_digest: Mapped[int]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("creditor_id", "ref"),
        _same_tenant("debtor_id", "debtors"),
        # A debtor's cases; unique with the id, for the outbox's key to (case, debtor).
        Index("uq_cases_creditor_id_debtor_id_id", "creditor_id", "debtor_id", "id", unique=True),
        Index(
            "uq_cases_creditor_id_structured_communication",
            "creditor_id",
            "structured_communication",
            unique=True,
        ),
        CheckConstraint("status IN ('open','closed')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    debtor_id: Mapped[uuid.UUID]
    ref: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    opened_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]
    # Pays every open invoice of the case at once; given when a message first needs it.
    structured_communication: Mapped[str | None] = mapped_column(String(12))


class InvoiceRow(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("creditor_id", "ref"),
        UniqueConstraint("creditor_id", "structured_communication"),
        _same_tenant("case_id", "cases"),
        Index("ix_invoices_case_id", "case_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("due_date >= issue_date", name="due_after_issue"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    case_id: Mapped[uuid.UUID]
    ref: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # Sum of the payments booked on the invoice, kept by the payment writers.
    paid_minor: Mapped[int] = mapped_column(server_default="0")
    issue_date: Mapped[dt.date]
    due_date: Mapped[dt.date]
    structured_communication: Mapped[str] = mapped_column(String(12))
    description: Mapped[str | None]
    source_digest: Mapped[int]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class PaymentRow(Base):
    """Money received for a case: on one invoice, or — with no invoice — a credit kept on
    the case (an overpayment, shown to the debtor and the creditor)."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("creditor_id", "ref"),
        _same_tenant("invoice_id", "invoices"),
        _same_tenant("case_id", "cases"),
        Index("ix_payments_invoice_id", "invoice_id"),
        Index("ix_payments_case_id", "case_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("source IN ('import','statement','psp','api','manual')", name="source"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    invoice_id: Mapped[uuid.UUID | None]  # None: a credit on the case
    # The creditor's or bank's reference; derived from the row's content when absent.
    ref: Mapped[str] = mapped_column(String(80))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(16))
    source_digest: Mapped[int]
    created_at: Mapped[dt.datetime]
    # The bank statement line it came from, if any.
    transaction_id: Mapped[uuid.UUID | None]
    # Set when the bank reversed the transfer (an R-transaction): no longer counted.
    reversed_at: Mapped[dt.datetime | None]


class PromiseRow(Base):
    __tablename__ = "promises"
    __table_args__ = (
        _same_tenant("case_id", "cases"),
        Index("ix_promises_case_id", "case_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("state IN ('pending','kept','broken','cancelled')", name="state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    due_on: Mapped[dt.date]
    made_at: Mapped[dt.datetime]
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    # Who recorded it: the debtor (page), an agent (call, inbox), the creditor (API).
    source: Mapped[str] = mapped_column(String(16), server_default="agent")
    settled_at: Mapped[dt.datetime | None]  # when it was found kept or broken


class PaymentPlanRow(Base):
    """Instalments agreed within the creditor's limits; the tick follows them."""

    __tablename__ = "payment_plans"
    __table_args__ = (
        _same_tenant("case_id", "cases"),
        Index("ix_payment_plans_case_id", "creditor_id", "case_id"),
        CheckConstraint(
            "state IN ('active','missed','completed','broken','cancelled')", name="state"
        ),
        CheckConstraint("total_minor > 0", name="total_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    total_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), server_default="active")
    # Payments to the case since the plan began, as last counted by the tick.
    paid_minor: Mapped[int] = mapped_column(server_default="0")
    settled_at: Mapped[dt.datetime | None]


class PlanInstalmentRow(Base):
    __tablename__ = "plan_instalments"
    __table_args__ = (CheckConstraint("amount_minor > 0", name="amount_positive"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payment_plans.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer(), primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    due_on: Mapped[dt.date]
    amount_minor: Mapped[int]


class DisputeRow(Base):
    """A debtor contests the debt: every collection contact pauses until an agent rules."""

    __tablename__ = "disputes"
    __table_args__ = (
        _same_tenant("case_id", "cases"),
        Index("ix_disputes_case_id", "creditor_id", "case_id"),
        CheckConstraint("state IN ('open','upheld','rejected')", name="state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    reason: Mapped[str] = mapped_column(String(32))
    evidence: Mapped[str | None]  # the debtor's own words; never logged
    opened_at: Mapped[dt.datetime]
    opened_by: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), server_default="open")
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution: Mapped[str | None]
    # An upheld dispute may reduce what is owed instead of closing the case.
    adjustment_minor: Mapped[int | None]


class StatementRow(Base):
    """One imported bank statement (camt.053 or CODA) and what its import did."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("creditor_id", "account_iban", "statement_ref", "digest"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    format: Mapped[str] = mapped_column(String(24))
    account_iban: Mapped[str] = mapped_column(String(34))
    statement_ref: Mapped[str] = mapped_column(String(64))
    created_on: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(String(3))
    opening_minor: Mapped[int | None]
    closing_minor: Mapped[int | None]
    digest: Mapped[str] = mapped_column(String(64))  # of the file's bytes
    imported_at: Mapped[dt.datetime]
    report: Mapped[dict[str, Any]]  # counts only, no personal data


class BankTransactionRow(Base):
    """A statement line and how it was reconciled.

    Unique per account and bank reference: importing the same statement (or an
    overlapping one) twice books nothing twice.
    """

    __tablename__ = "bank_transactions"
    __table_args__ = (
        UniqueConstraint("creditor_id", "account_iban", "bank_ref"),
        Index(
            "ix_bank_transactions_unmatched",
            "creditor_id",
            "booked_on",
            sqlite_where=sql_text("status = 'unmatched'"),
            postgresql_where=sql_text("status = 'unmatched'"),
        ),
        Index(
            "ix_bank_transactions_e2e",
            "creditor_id",
            "end_to_end_id",
            sqlite_where=sql_text("end_to_end_id IS NOT NULL"),
            postgresql_where=sql_text("end_to_end_id IS NOT NULL"),
        ),
        Index(
            "ix_bank_transactions_iban",
            "creditor_id",
            "counterparty_iban",
            sqlite_where=sql_text("counterparty_iban IS NOT NULL"),
            postgresql_where=sql_text("counterparty_iban IS NOT NULL"),
        ),
        CheckConstraint("status IN ('matched','unmatched','ignored','reversal')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    statement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("statements.id"))
    account_iban: Mapped[str] = mapped_column(String(34))
    bank_ref: Mapped[str] = mapped_column(String(120))
    booked_on: Mapped[dt.date]
    value_on: Mapped[dt.date | None]
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reversal: Mapped[bool] = mapped_column(Boolean())
    structured: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str | None]
    counterparty_name: Mapped[str | None]
    counterparty_iban: Mapped[str | None] = mapped_column(String(34))
    end_to_end_id: Mapped[str | None] = mapped_column(String(64))
    bank_code: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # How it was matched: ogm, ogm_text, ref, fuzzy, manual, psp; with the fuzzy score.
    method: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float())
    case_id: Mapped[uuid.UUID | None]
    reason: Mapped[str | None]  # why unmatched or ignored
    matched_at: Mapped[dt.datetime | None]
    matched_by: Mapped[str | None] = mapped_column(String(128))


class EventRow(Base):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "events"
    __table_args__ = (
        # MATCH SIMPLE: an event without a case or debtor is not checked against them.
        _same_tenant("case_id", "cases"),
        _same_tenant("debtor_id", "debtors"),
        Index("ix_events_case_id_occurred_at", "case_id", "occurred_at"),
        Index("ix_events_creditor_id_recorded_at", "creditor_id", "recorded_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    case_id: Mapped[uuid.UUID | None]
    debtor_id: Mapped[uuid.UUID | None]
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime]
    payload: Mapped[dict[str, Any]]


class AuditRow(Base):
    """Append-only evidence of who did what; never holds personal data in `details`."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_creditor_id_at", "creditor_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    creditor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("creditors.id"))
    subject: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]]


class SurveyResponseRow(Base):
    """A debtor's answers to one version of the persona survey, with the scored persona."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        _same_tenant("debtor_id", "debtors"),
        # The same answers imported twice are one response.
        UniqueConstraint(
            "creditor_id",
            "debtor_id",
            "survey_version",
            "answered_at",
            name="uq_survey_responses_answer",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    debtor_id: Mapped[uuid.UUID]
    survey_version: Mapped[str] = mapped_column(String(40))
    answers: Mapped[dict[str, Any]]  # question key -> option key
    answered_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(String(16))
    persona: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float] = mapped_column(Float())
    recorded_at: Mapped[dt.datetime]


class PersonaModelRow(Base):
    """A trained persona classifier of one creditor: parameters as JSON, never pickles."""

    __tablename__ = "persona_models"
    __table_args__ = (UniqueConstraint("creditor_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    version: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(64))
    trained_at: Mapped[dt.datetime]
    labelled: Mapped[int]
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]


class PersonaAssignmentRow(Base):
    """History of persona assignments (append-only: the migration installs triggers)."""

    __tablename__ = "persona_assignments"
    __table_args__ = (
        _same_tenant("debtor_id", "debtors"),
        Index("ix_persona_assignments_debtor", "creditor_id", "debtor_id", "assigned_at"),
        CheckConstraint(
            "source IN ('objection','operator','survey','model','rules','default')",
            name="source",
        ),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    debtor_id: Mapped[uuid.UUID]
    # None only when the debtor objected to profiling.
    persona: Mapped[str | None] = mapped_column(String(40))
    confidence: Mapped[float] = mapped_column(Float())
    source: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    survey_candidate: Mapped[bool] = mapped_column(Boolean())
    assigned_at: Mapped[dt.datetime]
    # Top reasons as [code, value, weight] triples; words are rendered when shown.
    reasons: Mapped[list[Any]] = mapped_column(JSON())


class DebtorPersonaRow(Base):
    """Each debtor's current assignment: one narrow row, read by enrolment and reports."""

    __tablename__ = "debtor_personas"
    __table_args__ = (
        _same_tenant("debtor_id", "debtors"),
        Index("ix_debtor_personas_persona", "creditor_id", "persona"),
    )

    debtor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    assignment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persona_assignments.id"))
    persona: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float())
    survey_candidate: Mapped[bool] = mapped_column(Boolean())


class EnrolmentRow(Base):
    """Where a case stands in its journey; it stays on the version it entered."""

    __tablename__ = "enrolments"
    __table_args__ = (
        _case_of_debtor(),  # the debtor is copied here: the due read needs no join
        Index("ix_enrolments_due", "creditor_id", "done", "wake_at"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    debtor_id: Mapped[uuid.UUID]
    journey_key: Mapped[str] = mapped_column(String(64))
    journey_version: Mapped[int] = mapped_column(Integer())
    persona: Mapped[str | None] = mapped_column(String(40))  # at enrolment
    node_id: Mapped[str] = mapped_column(String(48))
    entered_at: Mapped[dt.datetime]
    enrolled_at: Mapped[dt.datetime]
    wake_at: Mapped[dt.datetime | None]  # None: only an event wakes it
    step: Mapped[int] = mapped_column(Integer())
    done: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    arms: Mapped[dict[str, Any]]  # experiment -> arm drawn


_PENDING: Final = sql_text("status IN ('queued', 'delayed')")


class OutboxRow(Base):
    """A decision to act (message, agent task, fee) with its deterministic attempt id.

    The unique attempt id (case, journey version, node, step) is what makes a tick
    idempotent and is the providers' idempotency key: a decision is recorded once.
    `plan_verdict` and `plan_reason` are the gate's verdict when the decision was made
    (send, delay, skip, review; fee when one is booked; queued for what no rule judged
    then: agent tasks other than calls, fallbacks, chat notices): the database refuses
    to change them, and outbox rows are never deleted (migration 0012). `status` and
    `reason` follow the row after that.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("attempt_id"),
        _case_of_debtor(),
        # Only the rows waiting to go, which is what dispatch asks for (migration 0013).
        Index(
            "ix_outbox_dispatch",
            "creditor_id",
            "status",
            "not_before",
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        ),
        Index("ix_outbox_debtor", "creditor_id", "debtor_id", "created_at"),
        # Only the rows that have a claim or a carrier reference (migration 0010): the
        # many a tick writes have neither, and lookups are by equality.
        *(
            Index(
                f"ix_outbox_{column}",
                column,
                sqlite_where=sql_text(f"{column} IS NOT NULL"),
                postgresql_where=sql_text(f"{column} IS NOT NULL"),
            )
            for column in ("claim", "provider_ref")
        ),
        CheckConstraint(
            "status IN ('queued','delayed','sent','skipped','review','failed')", name="status"
        ),
        CheckConstraint("kind IN ('send','task','fee')", name="kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    attempt_id: Mapped[str] = mapped_column(String(64))
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    debtor_id: Mapped[uuid.UUID]
    journey: Mapped[str] = mapped_column(String(80))  # key@version
    node_id: Mapped[str] = mapped_column(String(48))
    step: Mapped[int] = mapped_column(Integer())
    kind: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str | None] = mapped_column(String(16))
    template: Mapped[str | None] = mapped_column(String(64))
    reminder: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    amount_minor: Mapped[int | None]  # fees
    status: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[dt.datetime]
    reason: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    # Dispatch: tries so far; the claim of the dispatcher sending it now (its lease ends at
    # not_before, after which another may take it over); the carrier's id and units billed.
    attempts: Mapped[int] = mapped_column(Integer(), server_default="0")
    claim: Mapped[str | None] = mapped_column(String(32))
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    units: Mapped[int | None] = mapped_column(Integer())
    plan_verdict: Mapped[str | None] = mapped_column(String(8))  # None: before 0012
    plan_reason: Mapped[str | None]


class PolicyLogRow(Base):
    """The gate's later decisions, with their reason (append-only): at send time
    (sent, delayed, skipped) and moves between journeys. What the gate decided when a
    tick planned is on the outbox row itself (`OutboxRow.plan_verdict`)."""

    __tablename__ = "policy_log"
    __table_args__ = (Index("ix_policy_log_case", "creditor_id", "case_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    case_id: Mapped[uuid.UUID]
    attempt_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime]
    stage: Mapped[str] = mapped_column(String(8))  # plan | send
    verdict: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str]


class TickRow(Base):
    """When each creditor's journeys last ran: events recorded since then wake cases."""

    __tablename__ = "ticks"

    creditor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("creditors.id", ondelete="RESTRICT"), primary_key=True
    )
    at: Mapped[dt.datetime]


class ApiKeyRow(Base):
    """An integrator's key to the API: only its SHA-256 is kept, the clear key is shown once.

    `prefix` (the first characters after `pk_live_`) finds the row and names the key to
    people; it is unique so that a lookup needs no tenant.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("prefix"),
        Index("ix_api_keys_creditor_id", "creditor_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16))
    hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the whole key, hex
    scopes: Mapped[list[Any]] = mapped_column(JSON())
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class IdempotencyKeyRow(Base):
    """The response to a POST sent with an `Idempotency-Key`, replayed for 24 hours."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    creditor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("creditors.id", ondelete="RESTRICT"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request: Mapped[str] = mapped_column(String(300))  # method and path
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer())  # 0 while the request runs
    response: Mapped[str | None]  # the JSON body sent back
    created_at: Mapped[dt.datetime]


class WebhookEndpointRow(Base):
    """Where a creditor wants events pushed, and the secret that signs them."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_creditor_id", "creditor_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    url: Mapped[str]
    secret: Mapped[str] = mapped_column(String(80))  # needed in clear to sign
    event_types: Mapped[list[Any]] = mapped_column(JSON())
    active: Mapped[bool] = mapped_column(Boolean())
    created_at: Mapped[dt.datetime]
    # The newest event recorded that was looked at; the next run looks a while before it.
    cursor_at: Mapped[dt.datetime | None]


class WebhookDeliveryRow(Base):
    """One event to one endpoint: its attempts, the next one, and how the last went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "creditor_id", "status", "next_at"),
        CheckConstraint("status IN ('pending','delivered','failed')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="RESTRICT"))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]  # the body sent, identical on every attempt
    attempts: Mapped[int] = mapped_column(Integer())
    status: Mapped[str] = mapped_column(String(16))
    next_at: Mapped[dt.datetime | None]  # None once delivered or failed
    last_status_code: Mapped[int | None] = mapped_column(Integer())
    last_error: Mapped[str | None]
    created_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]


class UserRow(Base):
    """A person of the back office (agent, strategist, admin, viewer) of one creditor.

    Only the argon2 hash of the password is kept. Repeated failed logins lock the account
    for a while (`locked_until`)."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email"),
        Index("ix_users_creditor_id", "creditor_id"),
        CheckConstraint("role IN ('admin','strategist','agent','viewer')", name="role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    email: Mapped[str] = mapped_column(String(254))  # lower-cased
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    disabled_at: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer(), server_default="0")
    locked_until: Mapped[dt.datetime | None]


class UserSessionRow(Base):
    """A signed-in browser: only the SHA-256 of the session cookie's value is kept."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_id", "user_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class ConversationRow(Base):
    """The chat of one case: one conversation per case, open for its whole life.

    `due_at` is the answer deadline (the persona's answer time after the oldest debtor
    message not answered yet); None when nothing waits for an agent."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("creditor_id", "case_id"),
        _same_tenant("case_id", "cases"),
        _same_tenant("debtor_id", "debtors"),
        Index("ix_conversations_due", "creditor_id", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    debtor_id: Mapped[uuid.UUID]
    sla_hours: Mapped[int] = mapped_column(Integer())
    opened_at: Mapped[dt.datetime]
    last_message_at: Mapped[dt.datetime]
    waiting_since: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None]


class ChatMessageRow(Base):
    """One message of a conversation; an agent's answer after the deadline is `late`."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("ix_chat_messages_conversation", "conversation_id", "at"),
        Index("ix_chat_messages_creditor_late", "creditor_id", "late", "at"),
        CheckConstraint("author IN ('debtor','agent','system')", name="author"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    author: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str]
    at: Mapped[dt.datetime]
    late: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    # How the debtor was told of an agent's answer when not on the page (email or sms).
    notified_by: Mapped[str | None] = mapped_column(String(16))


class CsatRow(Base):
    """A satisfaction answer (1-5 and a comment) after a payment, promise, plan or chat,
    with the persona and journey the case had then (for the analytics)."""

    __tablename__ = "csat_responses"
    __table_args__ = (
        _same_tenant("case_id", "cases"),
        Index("ix_csat_responses_creditor_at", "creditor_id", "at"),
        CheckConstraint("score BETWEEN 1 AND 5", name="score"),
        CheckConstraint(
            "context IN ('payment','promise','plan','dispute','chat','page')", name="context"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID]
    case_id: Mapped[uuid.UUID]
    context: Mapped[str] = mapped_column(String(16))
    score: Mapped[int] = mapped_column(Integer())
    comment: Mapped[str | None]
    persona: Mapped[str | None] = mapped_column(String(40))
    journey: Mapped[str | None] = mapped_column(String(80))
    at: Mapped[dt.datetime]


class PortalCheckRow(Base):
    """Failed second-factor attempts on a debtor's page: too many lock it for a while."""

    __tablename__ = "portal_checks"
    __table_args__ = (_same_tenant("case_id", "cases"),)

    case_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    failures: Mapped[int] = mapped_column(Integer())
    window_start: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


class SimulationRunRow(Base):
    """A saved `parcours simulate` comparison of one creditor: the strategies, the days
    and seeds, and the whole report (estimates per persona and arm, with intervals) as
    JSON, for the strategist's dashboard."""

    __tablename__ = "simulation_runs"
    __table_args__ = (Index("ix_simulation_runs_creditor_at", "creditor_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    creditor_id: Mapped[uuid.UUID] = _tenant_fk()
    created_at: Mapped[dt.datetime]
    label: Mapped[str] = mapped_column(String(200))
    days: Mapped[int] = mapped_column(Integer())
    seeds: Mapped[int] = mapped_column(Integer())
    cases: Mapped[int]
    report: Mapped[dict[str, Any]]
