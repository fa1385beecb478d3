"""The AI alert thresholds the notifications model follows (urgency, sentiment), per organization

Revision ID: 0022_ai_alerts
Revises: 0021_ai_analysis
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_ai_alerts"
down_revision = "0021_ai_analysis"
branch_labels = None
depends_on = None

ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "rm_notification_alerts",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("urgency_alert", sa.Integer(), nullable=False),
        sa.Column("sentiment_alert", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT ON rm_notification_alerts TO crm_reader")
        op.execute("ALTER TABLE rm_notification_alerts ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON rm_notification_alerts FOR ALL TO crm_reader "
            f"USING (organization_id = {ORGANIZATION})"
        )


def downgrade() -> None:
    op.drop_table("rm_notification_alerts")
