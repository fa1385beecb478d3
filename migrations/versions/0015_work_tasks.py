"""Tasks read model: one row per task, keyset indexes for lists, a partial index for reminders

Row-level security covers the new table as 0004 does the others.

Revision ID: 0015_work_tasks
Revises: 0014_reader_schema_usage
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_work_tasks"
down_revision = "0014_reader_schema_usage"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "rm_tasks",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("closed_at", TIME, nullable=True),
        sa.Column("reminded_for", TIME, nullable=True),
        sa.Column("remind_at", TIME, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "task_id"),
    )
    op.create_index("ix_rm_tasks_due", "rm_tasks", ["organization_id", "due_at", "task_id"])
    op.create_index(
        "ix_rm_tasks_assignee", "rm_tasks", ["organization_id", "assignee_id", "due_at", "task_id"]
    )
    op.create_index(
        "ix_rm_tasks_lead", "rm_tasks", ["organization_id", "lead_id", "due_at", "task_id"]
    )
    pending = sa.text("remind_at IS NOT NULL")
    op.create_index(
        "ix_rm_tasks_remind",
        "rm_tasks",
        ["organization_id", "remind_at"],
        postgresql_where=pending,
        sqlite_where=pending,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT ON rm_tasks TO crm_reader")
        op.execute("ALTER TABLE rm_tasks ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON rm_tasks FOR ALL TO crm_reader "
            f"USING (organization_id = {ORGANIZATION})"
        )


def downgrade() -> None:
    op.drop_table("rm_tasks")  # its indexes, policy and grants go with it
