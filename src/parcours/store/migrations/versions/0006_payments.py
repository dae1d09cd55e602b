"""Payments: bank statements and their lines, payments on a case (credits, reversals),
promises with their source, payment plans with instalments, disputes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 06:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UUID_KEY = sa.Uuid().with_variant(sa.LargeBinary(16), "sqlite")
UTC = sa.DateTime(timezone=True)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_key(column: str, parent: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column, "creditor_id"],
        [f"{parent}.id", f"{parent}.creditor_id"],
        name=op.f(f"fk_{table}_{column}_{parent}"),
        ondelete="RESTRICT",
    )


def _creditor_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["creditor_id"],
        ["creditors.id"],
        name=op.f(f"fk_{table}_creditor_id_creditors"),
        ondelete="RESTRICT",
    )


def _fill_name_keys() -> None:
    from parcours.domain.names import name_key

    connection = op.get_bind()
    debtors = sa.table(
        "debtors", sa.column("id", UUID_KEY), sa.column("creditor_id", UUID_KEY),
        sa.column("name", sa.Text()), sa.column("name_key", sa.String(200)),
        sa.column("erased_at", UTC),
    )  # fmt: skip
    rows = connection.execute(
        sa.select(debtors.c.id, debtors.c.creditor_id, debtors.c.name).where(
            debtors.c.erased_at.is_(None)
        )
    ).all()
    if rows:
        connection.execute(
            debtors.update()
            .where(debtors.c.id == sa.bindparam("d"), debtors.c.creditor_id == sa.bindparam("c"))
            .values(name_key=sa.bindparam("k")),
            [{"d": d, "c": c, "k": name_key(name)} for d, c, name in rows],
        )


def upgrade() -> None:
    # A payment belongs to its case; its invoice is optional (a credit on the case).
    op.add_column("payments", sa.Column("case_id", UUID_KEY, nullable=True))
    op.add_column("payments", sa.Column("transaction_id", UUID_KEY, nullable=True))
    op.add_column("payments", sa.Column("reversed_at", UTC, nullable=True))
    op.execute(
        "UPDATE payments SET case_id = (SELECT i.case_id FROM invoices i "
        "WHERE i.id = payments.invoice_id AND i.creditor_id = payments.creditor_id)"
    )
    with op.batch_alter_table("payments") as batch_op:
        batch_op.alter_column("case_id", existing_type=UUID_KEY, nullable=False)
        batch_op.alter_column("invoice_id", existing_type=UUID_KEY, nullable=True)
        batch_op.create_foreign_key(
            op.f("fk_payments_case_id_cases"),
            "cases",
            ["case_id", "creditor_id"],
            ["id", "creditor_id"],
            ondelete="RESTRICT",
        )
        batch_op.create_check_constraint(
            "source", "source IN ('import','statement','psp','api','manual')"
        )
        batch_op.create_index("ix_payments_case_id", ["case_id"])
    # Reconciliation looks for the debtor a payer's name is (computed here for the
    # debtors already stored; the import keeps it from now on).
    op.add_column("debtors", sa.Column("name_key", sa.String(200), nullable=True))
    _fill_name_keys()

    op.add_column(
        "promises", sa.Column("source", sa.String(16), server_default="agent", nullable=False)
    )
    op.add_column("promises", sa.Column("settled_at", UTC, nullable=True))

    op.create_table(
        "payment_plans",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), server_default="active", nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("settled_at", UTC, nullable=True),
        sa.CheckConstraint(
            "state IN ('active','missed','completed','broken','cancelled')",
            name=op.f("ck_payment_plans_state"),
        ),
        sa.CheckConstraint("total_minor > 0", name=op.f("ck_payment_plans_total_positive")),
        _tenant_key("case_id", "cases", "payment_plans"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plans")),
    )
    op.create_index("ix_payment_plans_case_id", "payment_plans", ["creditor_id", "case_id"])
    op.create_table(
        "plan_instalments",
        sa.Column("plan_id", UUID_KEY, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_plan_instalments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["payment_plans.id"],
            name=op.f("fk_plan_instalments_plan_id_payment_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "number", name=op.f("pk_plan_instalments")),
    )
    op.create_table(
        "disputes",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("opened_at", UTC, nullable=False),
        sa.Column("opened_by", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), server_default="open", nullable=False),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("adjustment_minor", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("state IN ('open','upheld','rejected')", name=op.f("ck_disputes_state")),
        _tenant_key("case_id", "cases", "disputes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
    )
    op.create_index("ix_disputes_case_id", "disputes", ["creditor_id", "case_id"])

    op.create_table(
        "statements",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("format", sa.String(24), nullable=False),
        sa.Column("account_iban", sa.String(34), nullable=False),
        sa.Column("statement_ref", sa.String(64), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("opening_minor", sa.BigInteger(), nullable=True),
        sa.Column("closing_minor", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("imported_at", UTC, nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        _creditor_key("statements"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statements")),
        sa.UniqueConstraint(
            "creditor_id",
            "account_iban",
            "statement_ref",
            "digest",
            name=op.f("uq_statements_creditor_id_account_iban_statement_ref_digest"),
        ),
    )
    op.create_table(
        "bank_transactions",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("statement_id", UUID_KEY, nullable=False),
        sa.Column("account_iban", sa.String(34), nullable=False),
        sa.Column("bank_ref", sa.String(120), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("value_on", sa.Date(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reversal", sa.Boolean(), nullable=False),
        sa.Column("structured", sa.String(40), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("counterparty_name", sa.Text(), nullable=True),
        sa.Column("counterparty_iban", sa.String(34), nullable=True),
        sa.Column("end_to_end_id", sa.String(64), nullable=True),
        sa.Column("bank_code", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("case_id", UUID_KEY, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("matched_at", UTC, nullable=True),
        sa.Column("matched_by", sa.String(128), nullable=True),
        sa.CheckConstraint(
            "status IN ('matched','unmatched','ignored','reversal')",
            name=op.f("ck_bank_transactions_status"),
        ),
        _creditor_key("bank_transactions"),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["statements.id"],
            name=op.f("fk_bank_transactions_statement_id_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_transactions")),
        sa.UniqueConstraint(
            "creditor_id",
            "account_iban",
            "bank_ref",
            name=op.f("uq_bank_transactions_creditor_id_account_iban_bank_ref"),
        ),
    )
    op.create_index(
        "ix_bank_transactions_unmatched",
        "bank_transactions",
        ["creditor_id", "booked_on"],
        sqlite_where=sa.text("status = 'unmatched'"),
        postgresql_where=sa.text("status = 'unmatched'"),
    )
    op.create_index(
        "ix_bank_transactions_e2e",
        "bank_transactions",
        ["creditor_id", "end_to_end_id"],
        sqlite_where=sa.text("end_to_end_id IS NOT NULL"),
        postgresql_where=sa.text("end_to_end_id IS NOT NULL"),
    )
    op.create_index(
        "ix_bank_transactions_iban",
        "bank_transactions",
        ["creditor_id", "counterparty_iban"],
        sqlite_where=sa.text("counterparty_iban IS NOT NULL"),
        postgresql_where=sa.text("counterparty_iban IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_bank_transactions_iban", "bank_transactions")
    op.drop_index("ix_bank_transactions_e2e", "bank_transactions")
    op.drop_index("ix_bank_transactions_unmatched", "bank_transactions")
    op.drop_table("bank_transactions")
    op.drop_table("statements")
    op.drop_index("ix_disputes_case_id", "disputes")
    op.drop_table("disputes")
    op.drop_table("plan_instalments")
    op.drop_index("ix_payment_plans_case_id", "payment_plans")
    op.drop_table("payment_plans")
    with op.batch_alter_table("promises") as batch_op:
        batch_op.drop_column("settled_at")
        batch_op.drop_column("source")
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.drop_column("name_key")
    op.execute("DELETE FROM payments WHERE invoice_id IS NULL")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_index("ix_payments_case_id")
        batch_op.drop_constraint("ck_payments_source", type_="check")
        batch_op.drop_constraint("fk_payments_case_id_cases", type_="foreignkey")
        batch_op.alter_column("invoice_id", existing_type=UUID_KEY, nullable=False)
        for column in ("reversed_at", "transaction_id", "case_id"):
            batch_op.drop_column(column)
