"""Revoked access tokens: durable in the database (Redis only caches them)

One row per revoked token id until the token expires (then pruned). Token ids are random and
global, not tenant data: no organization column and no row-level-security policy, like the
refresh tokens of 0002.

Revision ID: 0012_revoked_access_tokens
Revises: 0011_privacy_subject_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_revoked_access_tokens"
down_revision = "0011_privacy_subject_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revoked_access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index(
        "ix_revoked_access_tokens_expires_at", "revoked_access_tokens", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_revoked_access_tokens_expires_at", table_name="revoked_access_tokens")
    op.drop_table("revoked_access_tokens")
