"""Analytics read models: facts, daily roll-ups, lead and thread state, organization time zones

Row-level security covers the new tables as 0004 does the others (the role comes from 0004, so
this revision follows it, as 0005 does).

Revision ID: 0008_analytics
Revises: 0004_rls
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_analytics"
down_revision = "0004_rls"  # the role crm_reader comes from 0004
branch_labels = None
depends_on = None

TABLES = (
    "rm_analytics_orgs",
    "rm_analytics_facts",
    "rm_analytics_daily",
    "rm_analytics_leads",
    "rm_analytics_threads",
)
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def _dimensions(key: bool) -> list[sa.Column[object]]:
    return [
        sa.Column("source", sa.String(length=100), nullable=False, primary_key=key),
        sa.Column("member_id", sa.Uuid(), nullable=False, primary_key=key),
        sa.Column("stage_id", sa.Uuid(), nullable=False, primary_key=key),
        sa.Column("to_stage_id", sa.Uuid(), nullable=False, primary_key=key),
        sa.Column("channel", sa.String(length=20), nullable=False, primary_key=key),
        sa.Column("provider", sa.String(length=40), nullable=False, primary_key=key),
        sa.Column("outcome", sa.String(length=20), nullable=False, primary_key=key),
    ]


def _measures() -> list[sa.Column[object]]:
    return [
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "rm_analytics_orgs",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "rm_analytics_facts",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("seq", sa.SmallInteger(), primary_key=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("occurred_us", sa.BigInteger(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        *_dimensions(key=False),
        *_measures(),
    )
    op.create_index(
        "ix_rm_analytics_facts_kind",
        "rm_analytics_facts",
        ["organization_id", "kind", "occurred_us"],
    )
    op.create_table(
        "rm_analytics_daily",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(length=20), primary_key=True),
        *_dimensions(key=True),
        *_measures(),
    )
    op.create_index(
        "ix_rm_analytics_daily_kind", "rm_analytics_daily", ["organization_id", "kind", "day"]
    )
    op.create_table(
        "rm_analytics_leads",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("lead_id", sa.Uuid(), primary_key=True),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("stage_entered_us", sa.BigInteger(), nullable=False),
        sa.Column("captured_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_us", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_rm_analytics_leads_stage",
        "rm_analytics_leads",
        ["organization_id", "archived", "stage_id"],
    )
    op.create_table(
        "rm_analytics_threads",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("thread_id", sa.Uuid(), primary_key=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("waiting_since_us", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "ix_rm_analytics_threads_waiting",
        "rm_analytics_threads",
        ["organization_id", "waiting_since_us"],
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
        op.drop_table(table)  # its policy, indexes and grants go with it
