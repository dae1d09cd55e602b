"""An outbox row's case and debtor are checked by one key: the case, of that debtor.

The outbox had a key to its case and another to its debtor: two checks per row, which
on PostgreSQL are a trigger each (a million-case tick writes some 220,000 rows: the two
cost about 2 s of its 6 s of outbox writes). One key to the case *of that debtor*,
(creditor_id, debtor_id, case_id) -> cases, is one check, and says more: a row can no
longer name a debtor who is not its case's. The cases' (creditor_id, debtor_id) index
becomes the unique (creditor_id, debtor_id, id) the key needs: one index, as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_cases_creditor_id_debtor_id", table_name="cases")
    op.create_index(
        "uq_cases_creditor_id_debtor_id_id", "cases", ["creditor_id", "debtor_id", "id"],
        unique=True,
    )  # fmt: skip
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint("fk_outbox_case_id_cases", type_="foreignkey")
        batch_op.drop_constraint("fk_outbox_debtor_id_debtors", type_="foreignkey")
        batch_op.create_foreign_key(
            op.f("fk_outbox_creditor_id_cases"),
            "cases",
            ["creditor_id", "debtor_id", "case_id"],
            ["creditor_id", "debtor_id", "id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint("fk_outbox_creditor_id_cases", type_="foreignkey")
        batch_op.create_foreign_key(
            op.f("fk_outbox_case_id_cases"),
            "cases",
            ["case_id", "creditor_id"],
            ["id", "creditor_id"],
            ondelete="RESTRICT",
        )
        batch_op.create_foreign_key(
            op.f("fk_outbox_debtor_id_debtors"),
            "debtors",
            ["debtor_id", "creditor_id"],
            ["id", "creditor_id"],
            ondelete="RESTRICT",
        )
    op.drop_index("uq_cases_creditor_id_debtor_id_id", table_name="cases")
    op.create_index("ix_cases_creditor_id_debtor_id", "cases", ["creditor_id", "debtor_id"])
