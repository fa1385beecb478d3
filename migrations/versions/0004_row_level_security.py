"""Row-level security on the read models (PostgreSQL only): a second wall between tenants.

Queries run as the NOLOGIN role crm_reader with `app.organization_id` set for the
transaction; a query that forgets its organization filter then sees no other tenant's rows.
Projectors write as the owner, whom the policies do not restrict.

Revision ID: 0004_rls
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0004_rls"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("rm_stages", "rm_leads", "rm_lead_timeline", "rm_audit_events", "rm_members")
ORGANIZATION = "NULLIF(current_setting('app.organization_id', true), '')::uuid"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DO $$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_reader') THEN "
        "CREATE ROLE crm_reader NOLOGIN; END IF; END $$"
    )
    op.execute("GRANT crm_reader TO CURRENT_USER")
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO crm_reader")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} FOR ALL TO crm_reader "
            f"USING (organization_id = {ORGANIZATION})"
        )
    op.execute("GRANT SELECT ON rm_organizations, users, projection_positions TO crm_reader")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"REVOKE SELECT ON {table} FROM crm_reader")
    op.execute("REVOKE SELECT ON rm_organizations, users, projection_positions FROM crm_reader")
