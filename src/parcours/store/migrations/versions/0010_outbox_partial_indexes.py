"""The outbox's claim and carrier-reference indexes hold only the rows that have one.

A tick writes hundreds of thousands of outbox rows with neither (a claim exists while a
dispatcher holds the row, a carrier reference once sent): indexing their NULLs cost each
insert two index entries no query reads (lookups are by equality, which a partial index
on `IS NOT NULL` serves on SQLite and PostgreSQL alike).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("claim", "provider_ref")


def upgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f"ix_outbox_{column}", table_name="outbox")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_outbox_{column}",
            "outbox",
            [column],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f"ix_outbox_{column}", table_name="outbox")
        op.create_index(f"ix_outbox_{column}", "outbox", [column])
