"""Stages carry their win probability in percent (NULL: derived from the stage's place)

The column is nullable and filled by the leads projector from the pipeline's events, so existing
rows stay valid as they are: NULL is the behaviour from before the setting existed.

Revision ID: 0009_stage_win_probability
Revises: 0008_analytics
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_stage_win_probability"
down_revision = "0008_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table where it cannot alter it in place
    with op.batch_alter_table("rm_stages") as batch:
        batch.add_column(sa.Column("win_probability", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rm_stages") as batch:
        batch.drop_column("win_probability")
