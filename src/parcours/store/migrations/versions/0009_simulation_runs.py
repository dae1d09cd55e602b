"""Saved simulation comparisons (`parcours simulate --save`), read by the dashboard.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UUID_KEY = sa.Uuid().with_variant(sa.LargeBinary(16), "sqlite")
UTC = sa.DateTime(timezone=True)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "simulation_runs",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("seeds", sa.Integer(), nullable=False),
        sa.Column("cases", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["creditor_id"],
            ["creditors.id"],
            name=op.f("fk_simulation_runs_creditor_id_creditors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulation_runs")),
    )
    op.create_index(
        "ix_simulation_runs_creditor_at", "simulation_runs", ["creditor_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("simulation_runs")
