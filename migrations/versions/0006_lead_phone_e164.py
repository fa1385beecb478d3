"""Leads indexed by their phone in E.164, so inbound messages and calls find their lead

Revision ID: 0006_lead_phone_e164
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_lead_phone_e164"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rm_leads", sa.Column("phone_e164", sa.String(20), nullable=True))
    op.create_index("ix_rm_leads_phone", "rm_leads", ["organization_id", "phone_e164"])


def downgrade() -> None:
    op.drop_index("ix_rm_leads_phone", table_name="rm_leads")
    op.drop_column("rm_leads", "phone_e164")
