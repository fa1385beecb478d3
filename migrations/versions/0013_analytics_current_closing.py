"""Analytics: a lead's closing counts once — its current one, in the period it happened

`rm_analytics_leads.closing_position` keeps where the lead's current won/lost fact is, so that a
reopen (or a later win or loss) can retract it from the facts and the roll-ups. The facts written
before counted every Won/Lost event: the analytics projection is emptied and rebuilt from the log
(its position goes back to 0).

Revision ID: 0013_analytics_current_closing
Revises: 0012_revoked_access_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_analytics_current_closing"
down_revision = "0012_revoked_access_tokens"
branch_labels = None
depends_on = None

TABLES = (
    "rm_analytics_orgs",
    "rm_analytics_facts",
    "rm_analytics_by_stage",
    "rm_analytics_by_source",
    "rm_analytics_by_member",
    "rm_analytics_by_channel",
    "rm_analytics_responses",
    "rm_analytics_leads",
    "rm_analytics_stage_totals",
    "rm_analytics_threads",
)


def _rebuild_from_zero() -> None:
    for table in TABLES:
        op.execute(f"DELETE FROM {table}")
    op.execute("UPDATE projection_positions SET position = 0 WHERE projection_name = 'analytics'")


def upgrade() -> None:
    _rebuild_from_zero()
    # batch mode: SQLite rebuilds the table where it cannot alter it in place
    with op.batch_alter_table("rm_analytics_leads") as batch:
        batch.add_column(sa.Column("closing_position", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Back to 0011's shapes, empty: the analytics projection rebuilds them from the log."""
    _rebuild_from_zero()
    with op.batch_alter_table("rm_analytics_leads") as batch:
        batch.drop_column("closing_position")
