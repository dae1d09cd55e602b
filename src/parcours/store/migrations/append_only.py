"""Append-only tables, for the migrations after 0001 (which creates the PostgreSQL
trigger function): evidence such as assignment history and gate decisions is never
rewritten, by the database itself.

Kept stable on purpose: released migrations import it.
"""

from __future__ import annotations

from alembic import op

__all__ = ["allow_rewrites", "forbid_rewrites"]


def forbid_rewrites(table: str) -> None:
    """Triggers that refuse UPDATE and DELETE on `table`."""
    dialect = op.get_bind().dialect.name
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


def allow_rewrites(table: str) -> None:
    """Drop the triggers of `forbid_rewrites` (downgrades)."""
    dialect = op.get_bind().dialect.name
    for verb in ("update", "delete"):
        suffix = f" ON {table}" if dialect == "postgresql" else ""
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}{suffix}")
