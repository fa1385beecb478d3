"""Inbox, messages and calls read models; messages and calls on the lead timeline

The timeline's key becomes (organization_id, lead_id, position): messages and calls are not
lead events, so they have no lead version (`version` becomes nullable). Row-level security
covers the new tables as 0004 does the others.

Revision ID: 0005_conversations_calls
Revises: 0004_rls
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_conversations_calls"
down_revision = "0004_rls"  # the role crm_reader comes from 0004
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)
TABLES = ("rm_conversations", "rm_messages", "rm_calls", "rm_timeline_sources")
COPY_TIMELINE = (
    "INSERT INTO rm_lead_timeline_new (organization_id, lead_id, version, position, activity_type,"
    " title, occurred_at, actor_kind, actor_id, data) SELECT organization_id, lead_id, version,"
    " position, activity_type, title, occurred_at, actor_kind, actor_id, data FROM rm_lead_timeline"
)
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    _create_conversations()
    _create_calls()
    op.create_table(
        "rm_timeline_sources",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "source_id"),
    )
    _timeline_key(["organization_id", "lead_id", "position"], version_nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"GRANT SELECT ON {table} TO crm_reader")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} FOR ALL TO crm_reader "
                f"USING (organization_id = {ORGANIZATION})"
            )


def downgrade() -> None:
    op.execute("DELETE FROM rm_lead_timeline WHERE version IS NULL")
    _timeline_key(["organization_id", "lead_id", "version"], version_nullable=False)
    for table in reversed(TABLES):
        op.drop_table(table)  # its policy and grants go with it


def _timeline_key(columns: list[str], *, version_nullable: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("rm_lead_timeline_pkey", "rm_lead_timeline", type_="primary")
        op.alter_column("rm_lead_timeline", "version", nullable=version_nullable)
        op.create_primary_key("rm_lead_timeline_pkey", "rm_lead_timeline", columns)
        return
    # SQLite cannot alter a primary key: copy the rows into a table of the new shape
    op.create_table(
        "rm_lead_timeline_new",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=version_nullable),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("activity_type", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint(*columns),
    )
    op.execute(COPY_TIMELINE)
    op.drop_table("rm_lead_timeline")
    op.rename_table("rm_lead_timeline_new", "rm_lead_timeline")


def _create_conversations() -> None:
    op.create_table(
        "rm_conversations",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("contact", sa.String(length=32), nullable=False),
        sa.Column("provider_type", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("handled_by", sa.Uuid(), nullable=True),
        sa.Column("lead_assignee_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_to", sa.Uuid(), nullable=True),
        sa.Column("last_message_at", TIME, nullable=False),
        sa.Column("last_message_preview", sa.String(length=200), nullable=True),
        sa.Column("last_message_direction", sa.String(length=10), nullable=True),
        sa.Column("unread_count", sa.Integer(), nullable=False),
        sa.Column("waiting_since", TIME, nullable=True),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "conversation_id"),
    )
    op.create_index(
        "ix_rm_conversations_inbox",
        "rm_conversations",
        ["organization_id", sa.text("last_message_at DESC"), "conversation_id"],
    )
    op.create_index(
        "ix_rm_conversations_assigned",
        "rm_conversations",
        ["organization_id", "assigned_to", "last_message_at"],
    )
    op.create_index("ix_rm_conversations_lead", "rm_conversations", ["organization_id", "lead_id"])
    op.create_table(
        "rm_messages",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("provider_type", sa.String(length=40), nullable=False),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("template_name", sa.String(length=200), nullable=True),
        sa.Column("template_variables", JSON, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("contact_name", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("status_changed_at", TIME, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "message_id"),
    )
    op.create_index(
        "ix_rm_messages_conversation",
        "rm_messages",
        ["organization_id", "conversation_id", "occurred_at", "message_id"],
    )
    op.create_index(
        "ix_rm_messages_lead",
        "rm_messages",
        ["organization_id", "lead_id", "occurred_at", "message_id"],
    )


def _create_calls() -> None:
    op.create_table(
        "rm_calls",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("provider_type", sa.String(length=40), nullable=False),
        sa.Column("provider_call_id", sa.String(length=200), nullable=True),
        sa.Column("from_number", sa.String(length=32), nullable=False),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("recording_urls", JSON, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("answered_at", TIME, nullable=True),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("placed_by", sa.Uuid(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "call_id"),
    )
    op.create_index(
        "ix_rm_calls_log",
        "rm_calls",
        ["organization_id", sa.text("started_at DESC"), "call_id"],
    )
    op.create_index(
        "ix_rm_calls_lead",
        "rm_calls",
        ["organization_id", "lead_id", "started_at", "call_id"],
    )
