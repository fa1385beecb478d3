"""The read role may look into the schema the read models live in

PostgreSQL grants USAGE on the stock `public` schema to everyone, but not on a schema created
by hand (a deployment's own schema, or `public` dropped and made again): there crm_reader saw
no table at all and every tenant-scoped read failed with "relation does not exist".

Revision ID: 0014_reader_schema_usage
Revises: 0013_analytics_current_closing
"""

from __future__ import annotations

from alembic import op

revision = "0014_reader_schema_usage"
down_revision = "0013_analytics_current_closing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO crm_reader', current_schema());"
        " END $$"
    )


def downgrade() -> None:
    pass  # the grant is harmless and the stock schema has it anyway
