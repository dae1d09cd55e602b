"""Channels: dispatch claims, attempts and carrier references on the outbox; a structured
communication per case for paying several invoices at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 01:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding nullable columns (or with a constant default) rebuilds no table on either
    # database: fast on a large outbox.
    op.add_column("outbox", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("outbox", sa.Column("claim", sa.String(length=32), nullable=True))
    op.add_column("outbox", sa.Column("provider_ref", sa.String(length=128), nullable=True))
    op.add_column("outbox", sa.Column("units", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("structured_communication", sa.String(12), nullable=True))
    op.create_index(
        "uq_cases_creditor_id_structured_communication",
        "cases",
        ["creditor_id", "structured_communication"],
        unique=True,
    )
    op.create_index("ix_outbox_claim", "outbox", ["claim"])


def downgrade() -> None:
    op.drop_index("ix_outbox_claim", "outbox")
    op.drop_index("uq_cases_creditor_id_structured_communication", "cases")
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_column("structured_communication")
    with op.batch_alter_table("outbox") as batch_op:
        for column in ("units", "provider_ref", "claim", "attempts"):
            batch_op.drop_column(column)
