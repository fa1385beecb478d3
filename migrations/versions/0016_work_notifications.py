"""Notifications: per-member notifications, the model's own member list and preferences, and the
queue of notifications to email

Row-level security covers the read models as 0004 does the others; the email queue is an
internal work queue like the outbox (0007): no row-level security, nothing granted to
crm_reader.

Revision ID: 0016_work_notifications
Revises: 0015_work_tasks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_work_notifications"
down_revision = "0015_work_tasks"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
TABLES = ("rm_notifications", "rm_notification_members", "rm_notification_preferences")
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "rm_notifications",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=False),
        sa.Column("in_app", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("read_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("organization_id", "user_id", "position"),
    )
    op.create_index(
        "ix_rm_notifications_unread",
        "rm_notifications",
        ["organization_id", "user_id", "read_at"],
    )
    op.create_index(
        "ix_rm_notifications_key",
        "rm_notifications",
        ["organization_id", "notification_id"],
        unique=True,
    )
    op.create_index("ix_rm_notifications_id", "rm_notifications", ["notification_id"])
    op.create_table(
        "rm_notification_members",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "user_id"),
    )
    op.create_table(
        "rm_notification_preferences",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("in_app", sa.Boolean(), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "user_id", "kind"),
    )
    op.create_table(
        "notification_emails",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "notification_id"),
    )
    op.create_index(
        "ix_notification_emails_due", "notification_emails", ["status", "next_attempt_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"GRANT SELECT ON {table} TO crm_reader")
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} FOR ALL TO crm_reader "
                f"USING (organization_id = {ORGANIZATION})"
            )


def downgrade() -> None:
    op.drop_index("ix_notification_emails_due", table_name="notification_emails")
    op.drop_table("notification_emails")
    for table in reversed(TABLES):
        op.drop_table(table)  # its indexes, policy and grants go with it
