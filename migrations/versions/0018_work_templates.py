"""Message templates: the templates read model and their statistics per variant

Row-level security and the read role's grant as 0004/0010 give the other read models.

Revision ID: 0018_work_templates
Revises: 0017_work_sla
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018_work_templates"
down_revision = "0017_work_sla"
branch_labels = None
depends_on = None

TABLES = ("rm_templates", "rm_template_uses", "rm_template_leads", "rm_template_stats")
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _secure(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT ON {table} TO crm_reader")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} FOR ALL TO crm_reader "
            f"USING (organization_id = {ORGANIZATION})"
        )


def upgrade() -> None:
    op.create_table(
        "rm_templates",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("template_id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("stage_ids", JSON, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("variants", JSON, nullable=False),
        sa.Column("whatsapp_template_name", sa.String(length=200), nullable=True),
        sa.Column("whatsapp_template_language", sa.String(length=20), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_rm_templates_name", "rm_templates", ["organization_id", "deleted", "name"]
    )
    op.create_table(
        "rm_template_uses",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("template_id", sa.Uuid(), primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True),
        sa.Column("variant", sa.String(length=1), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replied", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_rm_template_uses_lead",
        "rm_template_uses",
        ["organization_id", "lead_id", "replied", "used_at"],
    )
    op.create_table(
        "rm_template_leads",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("lead_id", sa.Uuid(), primary_key=True),
        sa.Column("template_id", sa.Uuid(), primary_key=True),
        sa.Column("variant", sa.String(length=1), primary_key=True),
        sa.Column("won", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "rm_template_stats",
        sa.Column("organization_id", sa.Uuid(), primary_key=True),
        sa.Column("template_id", sa.Uuid(), primary_key=True),
        sa.Column("variant", sa.String(length=1), primary_key=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("won", sa.Integer(), nullable=False),
    )
    for table in TABLES:
        _secure(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
