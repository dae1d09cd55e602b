"""Carrier reports find their message by the carrier's reference: index it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 02:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_provider_ref", "outbox", ["provider_ref"])


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_ref", "outbox")
