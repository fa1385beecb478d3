"""PostgreSQL's second wall: read-model queries see only the current organization's rows."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from interfaces.services import Services
from projections.audit import rm_audit_events
from projections.leads import rm_leads, rm_stages
from projections.timeline import rm_lead_timeline
from tests.support.api import register

TABLES = (rm_leads, rm_stages, rm_lead_timeline, rm_audit_events)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # row-level security is PostgreSQL's


def test_a_query_that_forgets_its_organization_filter_sees_only_its_organization(
    services: Services, client: TestClient[Any]
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    acme.capture(full_name="Acme lead")
    rival.capture(full_name="Rival lead")
    assert acme.get("/crm/pipeline/board").status_code == 200  # waits for the projectors
    assert rival.get("/audit/events").status_code == 200
    for table in TABLES:
        with services.reading(UUID(acme.organization_id)) as conn:
            orgs = {r[0] for r in conn.execute(sa.select(table.c.organization_id))}
        assert orgs == {UUID(acme.organization_id)}, table.name
    with services.reading(UUID(acme.organization_id)) as conn:
        names = {r[0] for r in conn.execute(sa.select(rm_leads.c.full_name))}
    assert names == {"Acme lead"}


def test_without_an_organization_the_reader_sees_nothing_and_cannot_write(
    services: Services, client: TestClient[Any]
) -> None:
    register(client).capture()
    with services.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL ROLE crm_reader")
        for table in TABLES:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    with pytest.raises(sa.exc.ProgrammingError), services.reading(uuid4()) as conn:
        conn.execute(rm_leads.delete())
