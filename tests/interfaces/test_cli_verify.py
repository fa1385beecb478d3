"""`crm projections verify` on SQLite files and on a scratch PostgreSQL database."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import sqlalchemy as sa

from interfaces.settings import load_settings
from projections.directory import rm_organizations
from projections.leads import rm_leads
from projections.registry import all_projectors
from tests.interfaces.test_cli import SECRET, crm, ok, open_services, write_history

TABLES = sum(len(p.tables) for p in all_projectors())


def projected_history(env: dict[str, str]) -> tuple[UUID, UUID]:
    """The demo and a second organization, projected; that one's id and one of its leads."""
    from interfaces.services import build_services

    ok(env, "migrate")
    ok(env, "seed-demo")
    services = build_services(load_settings(env), with_runner=True)
    try:
        write_history(services)
        assert services.runner is not None
        services.runner.catch_up()
        with services.engine.begin() as conn:
            org_id = conn.execute(
                sa.select(rm_organizations.c.organization_id).where(
                    rm_organizations.c.name == "CLI Org"
                )
            ).scalar_one()
            lead = conn.execute(
                sa.select(rm_leads.c.lead_id)
                .where(rm_leads.c.organization_id == org_id)
                .order_by(rm_leads.c.lead_id)
                .limit(1)
            ).scalar_one()
            conn.execute(
                rm_leads.update()
                .where(rm_leads.c.organization_id == org_id, rm_leads.c.lead_id == lead)
                .values(full_name="tampered")
            )
    finally:
        services.close()
    return org_id, lead


def test_verify_names_a_lead_changed_in_sql_and_exits_1_while_the_rest_is_ok(
    env: dict[str, str],
) -> None:
    org, lead = projected_history(env)

    everything = crm(env, "projections", "verify")

    assert everything.exit_code == 1, everything.output
    lines = everything.stdout.splitlines()
    assert sum(" OK " in line for line in lines) == TABLES - 1
    [differs] = [line for line in lines if " DIFFERS " in line]
    assert differs.split()[:2] == ["leads", "rm_leads"]
    assert "DIFFERS in 1 of 2 organizations" in differs
    [changed] = [line.strip() for line in lines if line.strip().startswith("changed")]
    assert changed.startswith(f"changed  organization {org} lead_id={lead}: full_name: live")
    assert "'tampered'" in changed
    assert lines[-1].startswith(f"1 of {TABLES} tables differ from the log")

    leads_only = crm(env, "projections", "verify", "leads", "--max-rows", "5")
    assert leads_only.exit_code == 1
    assert [line.split()[1] for line in leads_only.stdout.splitlines() if "position" in line] == [
        "rm_leads",
        "rm_stages",
    ]


def test_verify_of_one_organization_sees_only_its_own_rows(env: dict[str, str]) -> None:
    org, _ = projected_history(env)
    services = open_services(env)
    try:
        with services.engine.connect() as conn:
            [demo] = conn.execute(
                sa.select(rm_organizations.c.organization_id).where(
                    rm_organizations.c.organization_id != org
                )
            ).scalars()
    finally:
        services.close()

    untouched = ok(env, "projections", "verify", "--org", str(demo))

    assert "OK 1 organizations" in untouched
    tampered = crm(env, "projections", "verify", "leads", "--org", str(org))
    assert tampered.exit_code == 1
    assert "DIFFERS in 1 of 1 organizations" in tampered.stdout


def test_unknown_names_and_malformed_ids_are_refused_with_the_known_names(tmp_path: Path) -> None:
    env = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "CRM_SECRET_KEY": SECRET}
    unknown = crm(env, "projections", "verify", "nope")
    assert unknown.exit_code == 2
    assert "unknown projection nope" in unknown.output
    assert all(p.name in unknown.output for p in all_projectors())
    malformed = crm(env, "projections", "verify", "--org", "not-a-uuid")
    assert malformed.exit_code == 2 and "not a UUID" in malformed.output
