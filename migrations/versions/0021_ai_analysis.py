"""AI message analysis: each message's sentiment, urgency, intent and summary and the
conversation's latest values and trend in the inbox read model, and the analysis queue

Row-level security already covers rm_messages and rm_conversations (0004); the queue is an
internal work queue like the outbox (0007): no row-level security, nothing granted to
crm_reader.

Revision ID: 0021_ai_analysis
Revises: 0020_assignment_rules, 0005_conversations_calls
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021_ai_analysis"
# also merges the conversations branch (rm_messages, rm_conversations), not an ancestor of 0020
down_revision = ("0020_assignment_rules", "0005_conversations_calls")
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("rm_messages") as batch:
        batch.add_column(sa.Column("sentiment", sa.Float(), nullable=True))
        batch.add_column(sa.Column("urgency", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("intent", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("summary", sa.Text(), nullable=True))
    with op.batch_alter_table("rm_conversations") as batch:
        batch.add_column(sa.Column("latest_sentiment", sa.Float(), nullable=True))
        batch.add_column(sa.Column("latest_urgency", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sentiment_trend", JSON, nullable=True))
    op.create_table(
        "ai_analysis_queue",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "message_id"),
    )
    op.create_index("ix_ai_analysis_queue_due", "ai_analysis_queue", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("ai_analysis_queue")
    with op.batch_alter_table("rm_conversations") as batch:
        batch.drop_column("sentiment_trend")
        batch.drop_column("latest_urgency")
        batch.drop_column("latest_sentiment")
    with op.batch_alter_table("rm_messages") as batch:
        for name in ("summary", "intent", "urgency", "sentiment"):
            batch.drop_column(name)
