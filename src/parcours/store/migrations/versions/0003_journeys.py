"""Journeys: enrolments, the outbox with unique attempt ids, the policy log, ticks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 23:10:29.657953
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parcours.store.migrations.append_only import allow_rewrites, forbid_rewrites

# Native uuid on PostgreSQL, 16 raw bytes on SQLite (parcours.store.schema.UuidKey).
UUID_KEY = sa.Uuid().with_variant(sa.LargeBinary(16), "sqlite")
UTC = sa.DateTime(timezone=True)

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_log",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name=op.f("fk_policy_log_creditor_id_creditors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_log")),
    )
    with op.batch_alter_table("policy_log", schema=None) as batch_op:
        batch_op.create_index("ix_policy_log_case", ["creditor_id", "case_id", "at"], unique=False)

    op.create_table(
        "ticks",
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name=op.f("fk_ticks_creditor_id_creditors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("creditor_id", name=op.f("pk_ticks")),
    )
    op.create_table(
        "enrolments",
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("journey_key", sa.String(length=64), nullable=False),
        sa.Column("journey_version", sa.Integer(), nullable=False),
        sa.Column("persona", sa.String(length=40), nullable=True),
        sa.Column("node_id", sa.String(length=48), nullable=False),
        sa.Column("entered_at", UTC, nullable=False),
        sa.Column("enrolled_at", UTC, nullable=False),
        sa.Column("wake_at", UTC, nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("exit_reason", sa.String(length=16), nullable=True),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id", "creditor_id"],
            ["cases.id", "cases.creditor_id"],
            name=op.f("fk_enrolments_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("case_id", "creditor_id", name=op.f("pk_enrolments")),
    )
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.create_index("ix_enrolments_due", ["creditor_id", "done", "wake_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("debtor_id", UUID_KEY, nullable=False),
        sa.Column("journey", sa.String(length=80), nullable=False),
        sa.Column("node_id", sa.String(length=48), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("reminder", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("not_before", UTC, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.CheckConstraint("kind IN ('send','task','fee')", name=op.f("ck_outbox_kind")),
        sa.CheckConstraint(
            "status IN ('queued','delayed','sent','skipped','review','failed')",
            name=op.f("ck_outbox_status"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id", "creditor_id"],
            ["cases.id", "cases.creditor_id"],
            name=op.f("fk_outbox_case_id_cases"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id", "creditor_id"],
            ["debtors.id", "debtors.creditor_id"],
            name=op.f("fk_outbox_debtor_id_debtors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_outbox_attempt_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_debtor", ["creditor_id", "debtor_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_dispatch", ["creditor_id", "status", "not_before"], unique=False
        )

    forbid_rewrites("policy_log")


def downgrade() -> None:
    allow_rewrites("policy_log")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_dispatch")
        batch_op.drop_index("ix_outbox_debtor")

    op.drop_table("outbox")
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_index("ix_enrolments_due")

    op.drop_table("enrolments")
    op.drop_table("ticks")
    with op.batch_alter_table("policy_log", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_log_case")

    op.drop_table("policy_log")
