"""Assignment rules read model: whose a rule id is (for incidents) and its name

Row-level security covers the table as 0004 does the others.

Revision ID: 0020_assignment_rules
Revises: 0018_work_templates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_assignment_rules"
down_revision = "0018_work_templates"
branch_labels = None
depends_on = None

ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "rm_assignment_rules",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "rule_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT ON rm_assignment_rules TO crm_reader")
        op.execute("ALTER TABLE rm_assignment_rules ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON rm_assignment_rules FOR ALL TO crm_reader "
            f"USING (organization_id = {ORGANIZATION})"
        )


def downgrade() -> None:
    op.drop_table("rm_assignment_rules")  # its policy and grants go with it
