"""Analytics: facts carry their local day; narrow daily roll-ups replace the all-dimensions table

The one daily table keyed by every dimension barely aggregated (about one row per fact), so a
one-year question read as many rows as there were facts. Facts now carry the local day and month,
and each family of questions reads its own roll-up keyed (organization, kind, grain, day, a few
dimensions), where the grain is a day or a whole month.
The analytics projection is emptied and rebuilt from the log (its position goes back to 0).

Revision ID: 0010_analytics_rollups
Revises: 0008_analytics
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_analytics_rollups"
down_revision = "0008_analytics"
branch_labels = None
depends_on = None

ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"
DIMENSIONS = ("source", "member_id", "stage_id", "to_stage_id", "channel", "provider", "outcome")
ROLLUPS = {
    "stage": ("stage_id", "to_stage_id"),
    "source": ("source",),
    "member": ("member_id", "channel"),
    "channel": ("channel", "provider", "outcome"),
}


def _dimension(name: str, key: bool = False) -> sa.Column[object]:
    if name.endswith("_id"):
        return sa.Column(name, sa.Uuid(), nullable=False, primary_key=key)
    size = {"source": 100, "provider": 40}.get(name, 20)
    return sa.Column(name, sa.String(length=size), nullable=False, primary_key=key)


def _measures() -> list[sa.Column[object]]:
    return [sa.Column(m, sa.BigInteger(), nullable=False) for m in ("count", "value_cents", "seconds")]


def _secure(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON {table} TO crm_reader")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} FOR ALL TO crm_reader "
            f"USING (organization_id = {ORGANIZATION})"
        )


def upgrade() -> None:
    op.drop_table("rm_analytics_daily")
    op.drop_table("rm_analytics_facts")
    for table in ("rm_analytics_orgs", "rm_analytics_leads", "rm_analytics_threads"):
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE projection_positions SET position = 0 WHERE projection_name = 'analytics'")
    op.create_table(
        "rm_analytics_facts",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("seq", sa.SmallInteger(), primary_key=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("occurred_us", sa.BigInteger(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        *[_dimension(d) for d in DIMENSIONS],
        *_measures(),
        sa.Column("bin", sa.SmallInteger(), nullable=False),
    )
    op.create_index(
        "ix_rm_analytics_facts_kind_day",
        "rm_analytics_facts",
        ["organization_id", "kind", "day"],
    )
    first_response = sa.text("kind = 'first_response'")
    op.create_index(
        "ix_rm_analytics_facts_responses",
        "rm_analytics_facts",
        ["organization_id", "seconds", "day"],
        postgresql_where=first_response,
        sqlite_where=first_response,
    )
    op.create_index(
        "ix_rm_analytics_facts_member_responses",
        "rm_analytics_facts",
        ["organization_id", "member_id", "seconds", "day"],
        postgresql_where=first_response,
        sqlite_where=first_response,
    )
    _secure("rm_analytics_facts")
    op.create_table(
        "rm_analytics_responses",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("grain", sa.String(length=5), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("member_id", sa.Uuid(), primary_key=True),
        sa.Column("bin", sa.SmallInteger(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    _secure("rm_analytics_responses")
    op.create_table(
        "rm_analytics_stage_totals",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("stage_id", sa.Uuid(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.Column("entered_seconds", sa.BigInteger(), nullable=False),
    )
    _secure("rm_analytics_stage_totals")
    for name, dims in ROLLUPS.items():
        op.create_table(
            f"rm_analytics_by_{name}",
            sa.Column("organization_id", sa.Uuid(), primary_key=True),
            sa.Column("kind", sa.String(length=20), primary_key=True),
            sa.Column("grain", sa.String(length=5), primary_key=True),
            sa.Column("day", sa.Date(), primary_key=True),
            *[_dimension(d, key=True) for d in dims],
            *_measures(),
        )
        _secure(f"rm_analytics_by_{name}")


def downgrade() -> None:
    """Back to 0008's shapes, empty: the analytics projection rebuilds them from the log."""
    op.drop_table("rm_analytics_stage_totals")
    op.drop_table("rm_analytics_responses")
    for name in ROLLUPS:
        op.drop_table(f"rm_analytics_by_{name}")
    op.drop_table("rm_analytics_facts")
    for table in ("rm_analytics_orgs", "rm_analytics_leads", "rm_analytics_threads"):
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE projection_positions SET position = 0 WHERE projection_name = 'analytics'")
    identity = [
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("seq", sa.SmallInteger(), primary_key=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("occurred_us", sa.BigInteger(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
    ]
    op.create_table(
        "rm_analytics_facts", *identity, *[_dimension(d) for d in DIMENSIONS], *_measures()
    )
    op.create_index(
        "ix_rm_analytics_facts_kind", "rm_analytics_facts", ["organization_id", "kind", "occurred_us"]
    )
    op.create_table(
        "rm_analytics_daily",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(length=20), primary_key=True),
        *[_dimension(d, key=True) for d in DIMENSIONS],
        *_measures(),
    )
    op.create_index(
        "ix_rm_analytics_daily_kind", "rm_analytics_daily", ["organization_id", "kind", "day"]
    )
    _secure("rm_analytics_facts")
    _secure("rm_analytics_daily")
