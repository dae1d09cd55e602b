"""The outbox row records the gate's verdict at planning time; outbox rows are kept.

Until now every decision of a tick was written twice: an outbox row (its status and
reason) and a policy-log row saying the same thing (stage `plan`). On a million-case
tick that second row, and its index by case, were a fifth of everything written (about
120 of 540 MB of changed pages on SQLite). The outbox row now carries the verdict and
its reason in two columns of its own, which the database refuses to change once set,
and outbox rows can no longer be deleted: together they are the audit record of the
decision. The policy log keeps what happens later: the verdict at send time and moves
between journeys. Rows decided before this revision keep their verdict in the policy
log (NULL here).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEPT = "the plan verdict of an outbox row is append-only"
_NO_DELETE = "outbox rows are kept (the record of decisions)"
_CHANGED = (
    "OLD.plan_verdict IS NOT NULL AND (NEW.plan_verdict IS DISTINCT FROM OLD.plan_verdict "
    "OR NEW.plan_reason IS DISTINCT FROM OLD.plan_reason)"
)


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing on either database.
    op.add_column("outbox", sa.Column("plan_verdict", sa.String(length=8), nullable=True))
    op.add_column("outbox", sa.Column("plan_reason", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION parcours_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$"
        )
        # A column trigger: an UPDATE that does not name these columns never fires it.
        op.execute(
            "CREATE TRIGGER outbox_plan_kept BEFORE UPDATE OF plan_verdict, plan_reason "
            f"ON outbox FOR EACH ROW WHEN ({_CHANGED}) "
            f"EXECUTE FUNCTION parcours_refuse('{_KEPT}')"
        )
        op.execute(
            "CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox "
            f"FOR EACH ROW EXECUTE FUNCTION parcours_refuse('{_NO_DELETE}')"
        )
    else:
        changed = _CHANGED.replace("IS DISTINCT FROM", "IS NOT")
        op.execute(
            "CREATE TRIGGER outbox_plan_kept BEFORE UPDATE OF plan_verdict, plan_reason "
            f"ON outbox WHEN {changed} BEGIN "
            f"SELECT RAISE(ABORT, '{_KEPT}'); END"
        )
        op.execute(
            "CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox "
            f"BEGIN SELECT RAISE(ABORT, '{_NO_DELETE}'); END"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    on = " ON outbox" if postgres else ""
    for name in ("outbox_plan_kept", "outbox_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}{on}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS parcours_refuse()")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("plan_reason")
        batch_op.drop_column("plan_verdict")
