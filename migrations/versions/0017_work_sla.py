"""Response SLA read model: per-conversation response clocks, their outcomes, daily figures

Tables of `projections/sla.py`; the projector fills them from the whole log on its first run
(its position starts at 0). Row-level security covers them as 0004/0005 do the others.

Revision ID: 0017_work_sla
Revises: 0016_work_notifications
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017_work_sla"
down_revision = "0016_work_notifications"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)
TABLES = ("rm_sla_orgs", "rm_sla_leads", "rm_sla_clocks", "rm_sla_outcomes", "rm_sla_daily")
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "rm_sla_orgs",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("hours", JSON, nullable=True),
        sa.Column("sla_enabled", sa.Boolean(), nullable=False),
        sa.Column("sla_minutes", sa.Integer(), nullable=False),
        sa.Column("sla_business_hours", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id"),
    )
    op.create_table(
        "rm_sla_leads",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("organization_id", "lead_id"),
    )
    op.create_table(
        "rm_sla_clocks",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("waiting_since", TIME, nullable=True),
        sa.Column("deadline", TIME, nullable=True),
        sa.Column("sla_minutes", sa.Integer(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "conversation_id"),
    )
    # the timers' question crosses organizations (open clocks past their deadline), like the
    # outbox's due index
    op.create_index("ix_rm_sla_clocks_due", "rm_sla_clocks", ["status", "deadline"])
    op.create_table(
        "rm_sla_outcomes",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("waiting_since", TIME, nullable=False),
        sa.Column("deadline", TIME, nullable=False),
        sa.Column("replied_at", TIME, nullable=True),
        sa.Column("counted_at", TIME, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "message_id"),
    )
    op.create_index("ix_rm_sla_outcomes_day", "rm_sla_outcomes", ["organization_id", "day"])
    op.create_table(
        "rm_sla_daily",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("in_time", sa.BigInteger(), nullable=False),
        sa.Column("breached", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "day", "member_id"),
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
    for table in reversed(TABLES):
        op.drop_table(table)  # its policy and grants go with it
    op.execute("DELETE FROM projection_positions WHERE projection_name = 'sla'")
