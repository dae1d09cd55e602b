"""The debtor's page, live chat and the back office: users and their sessions, chat
conversations and messages, satisfaction answers, second-factor attempts, and the
debtor's own contact preferences.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UUID_KEY = sa.Uuid().with_variant(sa.LargeBinary(16), "sqlite")
UTC = sa.DateTime(timezone=True)

revision: str = "0008"
down_revision: str | None = "0007"
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


def upgrade() -> None:
    op.add_column("debtors", sa.Column("preferred_channel", sa.String(16), nullable=True))
    op.add_column("debtors", sa.Column("remind_before_due", sa.Boolean(), nullable=True))

    op.create_table(
        "users",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("disabled_at", UTC, nullable=True),
        sa.Column("last_login_at", UTC, nullable=True),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", UTC, nullable=True),
        sa.CheckConstraint(
            "role IN ('admin','strategist','agent','viewer')", name=op.f("ck_users_role")
        ),
        _creditor_key("users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index("ix_users_creditor_id", "users", ["creditor_id"])

    op.create_table(
        "user_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", UUID_KEY, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_user_sessions")),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])

    op.create_table(
        "conversations",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("debtor_id", UUID_KEY, nullable=False),
        sa.Column("sla_hours", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTC, nullable=False),
        sa.Column("last_message_at", UTC, nullable=False),
        sa.Column("waiting_since", UTC, nullable=True),
        sa.Column("due_at", UTC, nullable=True),
        _tenant_key("case_id", "cases", "conversations"),
        _tenant_key("debtor_id", "debtors", "conversations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "creditor_id", "case_id", name=op.f("uq_conversations_creditor_id_case_id")
        ),
    )
    op.create_index("ix_conversations_due", "conversations", ["creditor_id", "due_at"])

    op.create_table(
        "chat_messages",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("conversation_id", UUID_KEY, nullable=False),
        sa.Column("author", sa.String(8), nullable=False),
        sa.Column("user_id", UUID_KEY, nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("notified_by", sa.String(16), nullable=True),
        sa.CheckConstraint(
            "author IN ('debtor','agent','system')", name=op.f("ck_chat_messages_author")
        ),
        _creditor_key("chat_messages"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chat_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_chat_messages_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index("ix_chat_messages_conversation", "chat_messages", ["conversation_id", "at"])
    op.create_index(
        "ix_chat_messages_creditor_late", "chat_messages", ["creditor_id", "late", "at"]
    )

    op.create_table(
        "csat_responses",
        sa.Column("id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("context", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("persona", sa.String(40), nullable=True),
        sa.Column("journey", sa.String(80), nullable=True),
        sa.Column("at", UTC, nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_csat_responses_score")),
        sa.CheckConstraint(
            "context IN ('payment','promise','plan','dispute','chat','page')",
            name=op.f("ck_csat_responses_context"),
        ),
        _tenant_key("case_id", "cases", "csat_responses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csat_responses")),
    )
    op.create_index("ix_csat_responses_creditor_at", "csat_responses", ["creditor_id", "at"])

    op.create_table(
        "portal_checks",
        sa.Column("case_id", UUID_KEY, nullable=False),
        sa.Column("creditor_id", UUID_KEY, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", UTC, nullable=False),
        sa.Column("locked_until", UTC, nullable=True),
        _tenant_key("case_id", "cases", "portal_checks"),
        sa.PrimaryKeyConstraint("case_id", "creditor_id", name=op.f("pk_portal_checks")),
    )


def downgrade() -> None:
    for table in (
        "portal_checks",
        "csat_responses",
        "chat_messages",
        "conversations",
        "user_sessions",
        "users",
    ):
        op.drop_table(table)
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.drop_column("remind_before_due")
        batch_op.drop_column("preferred_channel")
