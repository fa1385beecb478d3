"""Privacy: per-subject data keys (wrapped by the master key) for personal data in events

One row per (organization, subject); `wrapped_key` NULL with `erased_at` set is an erased
person (crypto-shredding). Merges the two heads of 0009 and 0010.

Revision ID: 0011_privacy_subject_keys
Revises: 0009_stage_win_probability, 0010_analytics_rollups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_privacy_subject_keys"
down_revision = ("0009_stage_win_probability", "0010_analytics_rollups")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_subject_keys",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("organization_id", "subject_id"),
    )


def downgrade() -> None:
    op.drop_table("privacy_subject_keys")
