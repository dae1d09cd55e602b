"""Personas: survey responses, trained models, assignment history and current persona.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 22:25:08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parcours.store.migrations.append_only import allow_rewrites, forbid_rewrites

# Native uuid on PostgreSQL, 16 raw bytes on SQLite (parcours.store.schema.UuidKey).
UUID_KEY = sa.Uuid().with_variant(sa.LargeBinary(16), "sqlite")
UTC = sa.DateTime(timezone=True)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _debtor_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["debtor_id", "creditor_id"],
        ["debtors.id", "debtors.creditor_id"],
        name=op.f(f"fk_{table}_debtor_id_debtors"),
        ondelete="RESTRICT",
    )


def upgrade() -> None:
    op.create_table(
        "persona_models",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("trained_at", UTC, nullable=False),
        sa.Column("labelled", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name=op.f("fk_persona_models_creditor_id_creditors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persona_models")),
        sa.UniqueConstraint(
            "creditor_id", "version", name=op.f("uq_persona_models_creditor_id_version")
        ),
    )
    op.create_table(
        "persona_assignments",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("debtor_id", UUID_KEY, nullable=False),
        sa.Column("persona", sa.String(length=40), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("survey_candidate", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", UTC, nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "source IN ('objection','operator','survey','model','rules','default')",
            name=op.f("ck_persona_assignments_source"),
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_persona_assignments_confidence")
        ),
        _debtor_key("persona_assignments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persona_assignments")),
    )
    op.create_index(
        "ix_persona_assignments_debtor",
        "persona_assignments",
        ["creditor_id", "debtor_id", "assigned_at"],
    )
    op.create_table(
        "survey_responses",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("debtor_id", UUID_KEY, nullable=False),
        sa.Column("survey_version", sa.String(length=40), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("answered_at", UTC, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("persona", sa.String(length=40), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("recorded_at", UTC, nullable=False),
        _debtor_key("survey_responses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint(
            "creditor_id",
            "debtor_id",
            "survey_version",
            "answered_at",
            name="uq_survey_responses_answer",
        ),
    )
    op.create_table(
        "debtor_personas",
        sa.Column("debtor_id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("assignment_id", UUID_KEY, nullable=False),
        sa.Column("persona", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("survey_candidate", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["persona_assignments.id"],
            name=op.f("fk_debtor_personas_assignment_id_persona_assignments"),
        ),
        _debtor_key("debtor_personas"),
        sa.PrimaryKeyConstraint("debtor_id", "creditor_id", name=op.f("pk_debtor_personas")),
    )
    op.create_index("ix_debtor_personas_persona", "debtor_personas", ["creditor_id", "persona"])
    # Adding a nullable column needs no table rebuild on either database.
    op.add_column("debtors", sa.Column("profiling_objection_at", UTC, nullable=True))
    forbid_rewrites("persona_assignments")


def downgrade() -> None:
    allow_rewrites("persona_assignments")
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.drop_column("profiling_objection_at")
    op.drop_index("ix_debtor_personas_persona", "debtor_personas")
    op.drop_table("debtor_personas")
    op.drop_table("survey_responses")
    op.drop_index("ix_persona_assignments_debtor", "persona_assignments")
    op.drop_table("persona_assignments")
    op.drop_table("persona_models")
