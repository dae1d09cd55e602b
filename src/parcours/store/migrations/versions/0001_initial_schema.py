"""Initial schema: creditors, debtors, cases, invoices, payments, promises, events, audit.

Revision ID: 0001
Revises:
Create Date: 2026-12-04 21:06:56.477390
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

APPEND_ONLY = ("events", "audit_log")
# Native uuid on PostgreSQL, 16 raw bytes on SQLite (parcours.store.schema.UuidKey).
UUID_KEY = sa.Uuid().with_variant(sa.LargeBinary(16), "sqlite")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "creditors",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_ogm_base", sa.BigInteger(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_creditors")),
        sa.UniqueConstraint("name", name=op.f("uq_creditors_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_id"], ["creditors.id"], name=op.f("fk_audit_log_creditor_id_creditors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_creditor_id_at", ["creditor_id", "at"], unique=False)

    op.create_table(
        "debtors",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_consent", sa.String(length=16), server_default="unknown", nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("phone_consent", sa.String(length=16), server_default="unknown", nullable=False),
        sa.Column("street", sa.Text(), nullable=True),
        sa.Column("postcode", sa.String(length=16), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("postal_consent", sa.String(length=16), server_default="unknown", nullable=False),
        sa.Column("vulnerable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("profiling_objection", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_digest", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "email_consent IN ('unknown','granted','opted_out')",
            name=op.f("ck_debtors_email_consent"),
        ),
        sa.CheckConstraint(
            "phone_consent IN ('unknown','granted','opted_out')",
            name=op.f("ck_debtors_phone_consent"),
        ),
        sa.CheckConstraint(
            "postal_consent IN ('unknown','granted','opted_out')",
            name=op.f("ck_debtors_postal_consent"),
        ),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name=op.f("fk_debtors_creditor_id_creditors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", "creditor_id", name=op.f("pk_debtors")),
        sa.UniqueConstraint("creditor_id", "ref", name=op.f("uq_debtors_creditor_id_ref")),
    )
    op.create_table(
        "cases",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("debtor_id", UUID_KEY, nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open','closed')", name=op.f("ck_cases_status")),
        sa.ForeignKeyConstraint(
            ["debtor_id", "creditor_id"],
            ["debtors.id", "debtors.creditor_id"],
            name=op.f("fk_cases_debtor_id_debtors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", "creditor_id", name=op.f("pk_cases")),
        sa.UniqueConstraint("creditor_id", "ref", name=op.f("uq_cases_creditor_id_ref")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cases_creditor_id_debtor_id", ["creditor_id", "debtor_id"], unique=False
        )

    op.create_table(
        "events",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=True),
        sa.Column("debtor_id", UUID_KEY, nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id", "creditor_id"],
            ["cases.id", "cases.creditor_id"],
            name=op.f("fk_events_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name=op.f("fk_events_creditor_id_creditors"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id", "creditor_id"],
            ["debtors.id", "debtors.creditor_id"],
            name=op.f("fk_events_debtor_id_debtors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_case_id_occurred_at", ["case_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_events_creditor_id_recorded_at", ["creditor_id", "recorded_at"], unique=False
        )

    op.create_table(
        "invoices",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("structured_communication", sa.String(length=12), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source_digest", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_invoices_amount_positive")),
        sa.CheckConstraint("due_date >= issue_date", name=op.f("ck_invoices_due_after_issue")),
        sa.ForeignKeyConstraint(
            ["case_id", "creditor_id"],
            ["cases.id", "cases.creditor_id"],
            name=op.f("fk_invoices_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", "creditor_id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("creditor_id", "ref", name=op.f("uq_invoices_creditor_id_ref")),
        sa.UniqueConstraint(
            "creditor_id",
            "structured_communication",
            name=op.f("uq_invoices_creditor_id_structured_communication"),
        ),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_case_id", ["case_id"], unique=False)

    op.create_table(
        "promises",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.CheckConstraint(
            "state IN ('pending','kept','broken','cancelled')", name=op.f("ck_promises_state")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_promises_amount_positive")),
        sa.ForeignKeyConstraint(
            ["case_id", "creditor_id"],
            ["cases.id", "cases.creditor_id"],
            name=op.f("fk_promises_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promises")),
    )
    with op.batch_alter_table("promises", schema=None) as batch_op:
        batch_op.create_index("ix_promises_case_id", ["case_id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("invoice_id", UUID_KEY, nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_digest", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["invoice_id", "creditor_id"],
            ["invoices.id", "invoices.creditor_id"],
            name=op.f("fk_payments_invoice_id_invoices"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("creditor_id", "ref", name=op.f("uq_payments_creditor_id_ref")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_invoice_id", ["invoice_id"], unique=False)
    _forbid_rewrites()


def downgrade() -> None:
    _allow_rewrites()
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_invoice_id")

    op.drop_table("payments")
    with op.batch_alter_table("promises", schema=None) as batch_op:
        batch_op.drop_index("ix_promises_case_id")

    op.drop_table("promises")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_case_id")

    op.drop_table("invoices")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_creditor_id_recorded_at")
        batch_op.drop_index("ix_events_case_id_occurred_at")

    op.drop_table("events")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_creditor_id_debtor_id")

    op.drop_table("cases")
    op.drop_table("debtors")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_creditor_id_at")

    op.drop_table("audit_log")
    op.drop_table("creditors")


def _forbid_rewrites() -> None:
    """Make the event and audit logs append-only in the database itself."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION parcours_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            name = f"{table}_no_{verb.lower()}"
            if dialect == "postgresql":
                op.execute(
                    f"CREATE TRIGGER {name} BEFORE {verb} ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION parcours_append_only()"
                )
            else:
                op.execute(
                    f"CREATE TRIGGER {name} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _allow_rewrites() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for verb in ("update", "delete"):
            suffix = f" ON {table}" if dialect == "postgresql" else ""
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}{suffix}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS parcours_append_only()")
