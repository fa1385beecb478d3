"""The operators' routes on both backends: GET /database/info and GET /metrics behind
CRM_OPS_TOKEN (never a tenant's credential; 404 without it), their content, and the OpenAPI
document of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from interfaces.http.app import create_app
from interfaces.services import Services, build_services
from interfaces.settings import SettingsError, load_settings
from projections.outbox import outbox
from projections.registry import all_projectors
from tests.conftest import settings_for
from tests.support.api import (
    CheapHasher,
    Tenant,
    assert_problem,
    register,
)

OPS_TOKEN = "ops-token-0123456789-abcdefghij-XYZ"


@pytest.fixture
def ops_services(database_url: str) -> Iterator[Services]:
    svc = build_services(settings_for(database_url, CRM_OPS_TOKEN=OPS_TOKEN))
    svc.hasher = CheapHasher()
    svc.start_projections()
    yield svc
    svc.close()


@pytest.fixture
def ops(ops_services: Services) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(ops_services, own_services=False)) as c:
        yield c


def operator(path: str, client: TestClient[Any], token: str = OPS_TOKEN) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    found = [v for n, ls, v in samples(text) if n == name and ls == labels]
    assert len(found) == 1, (name, labels, [s for s in samples(text) if s[0] == name])
    return found[0]


def caught_up(ops_services: Services, tenant: Tenant) -> None:
    names = [p.name for p in all_projectors()]
    assert ops_services.wait_for(names, tenant.position, timeout=10)


def test_database_info_tells_an_operator_the_backend_migrations_pools_log_and_projectors(
    ops: TestClient[Any], ops_services: Services, database_url: str
) -> None:
    acme = register(ops, "Acme")
    acme.capture(email="ana@acme.example")
    caught_up(ops_services, acme)

    response = operator("/database/info", ops)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    postgres = database_url.startswith("postgresql")
    assert info["backend"] == ("postgresql" if postgres else "sqlite")
    assert re.match(r"\d+\.\d+", info["server_version"]), info["server_version"]
    migrations = info["migrations"]
    assert migrations["heads"] and migrations["current"] == migrations["heads"]
    assert migrations["up_to_date"] is True
    head = ops_services.app.recorder.max_notification_id()
    assert head is not None and info["log_head"] >= head >= acme.position
    pool = info["read_model_pool"]
    assert pool["kind"] == "QueuePool" and pool["size"] >= 1 and pool["checked_out"] >= 0
    if postgres:
        store_pool = info["event_store_pool"]
        assert store_pool["max_size"] >= store_pool["size"] >= store_pool["min_size"] >= 1
        assert isinstance(info["event_count_estimate"], int) and info["event_count_estimate"] >= 0
        assert info["event_count_exact"] is None
    else:
        assert info["event_store_pool"] is None and info["event_count_estimate"] is None
        assert info["event_count_exact"] == info["log_head"]  # SQLite ids have no gaps here
    projectors = {p["name"]: p for p in info["projectors"]}
    assert {p.name for p in all_projectors()} <= set(projectors)
    for item in projectors.values():
        assert item["lag"] == max(0, info["log_head"] - item["position"])
    assert projectors["leads"]["position"] >= acme.position
    assert projectors["leads"]["updated_at"]
    assert acme.organization_id not in response.text


def test_database_info_answers_migrations_behind_when_the_database_is_not_at_the_head(
    ops: TestClient[Any], ops_services: Services, database_url: str
) -> None:
    if database_url.startswith("postgresql"):
        pytest.skip("the PostgreSQL database is shared by the session: its revision stays")
    heads = operator("/database/info", ops).json()["migrations"]["heads"]
    with ops_services.engine.begin() as conn:  # as if the last migration of a branch never ran
        conn.execute(
            sa.text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": heads[-1]}
        )

    info = operator("/database/info", ops).json()

    assert info["migrations"]["heads"] == heads
    assert info["migrations"]["current"] == heads[:-1]
    assert info["migrations"]["up_to_date"] is False


@pytest.mark.parametrize("path", ["/database/info", "/metrics"])
def test_the_operator_routes_refuse_a_tenants_token_an_api_key_and_a_wrong_token_with_401(
    ops: TestClient[Any], path: str
) -> None:
    acme = register(ops, "Acme")
    key = acme.post("/api-keys", json={"name": "ci", "scopes": ["leads:read"]}).json()["key"]
    refused = [
        {},
        {"Authorization": f"Bearer {acme.token}", "X-Org-Id": acme.organization_id},
        {"Authorization": f"Bearer {key}"},
        {"X-API-Key": key},
        {"Authorization": f"Bearer {OPS_TOKEN[:-1]}"},
        {"Authorization": f"Bearer {OPS_TOKEN}x"},
        {"Authorization": f"Basic {OPS_TOKEN}"},
        {"Authorization": OPS_TOKEN},
    ]
    for headers in refused:
        response = ops.get(path, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert OPS_TOKEN not in response.text
    assert operator(path, ops).status_code == 200


@pytest.mark.parametrize("path", ["/database/info", "/metrics"])
def test_without_an_ops_token_the_operator_routes_answer_404_like_a_path_that_does_not_exist(
    client: TestClient[Any], path: str
) -> None:
    assert client.app.state.services.settings.ops_token is None
    unknown = client.get("/no/such/route", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    response = client.get(path, headers={"Authorization": f"Bearer {OPS_TOKEN}"})

    body = assert_problem(response, 404)
    expected = assert_problem(unknown, 404)
    assert {k: v for k, v in body.items() if k != "instance"} == {
        k: v for k, v in expected.items() if k != "instance"
    }


def test_metrics_count_requests_by_route_template_and_never_name_an_organization_or_an_id(
    ops: TestClient[Any], ops_services: Services
) -> None:
    acme = register(ops, "Acme")
    lead = acme.capture(email="ana@acme.example")
    for _ in range(3):
        assert acme.get(f"/crm/leads/{lead['id']}").status_code == 200
    assert ops.get(f"/no/such/{lead['id']}").status_code == 404
    assert acme.get("/crm/leads/not-a-uuid").status_code == 404  # the uuid route does not match
    caught_up(ops_services, acme)

    response = operator("/metrics", ops)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    route = "/crm/leads/{lead_id}"
    assert value(text, "crm_http_requests_total", method="GET", route=route, status="200") == 3
    count = value(
        text, "crm_http_request_duration_seconds_count", method="GET", route=route, status="200"
    )
    assert count == 3
    assert value(text, "crm_http_requests_total", method="POST", route="/crm/leads", status="201")
    assert (
        value(text, "crm_http_requests_total", method="GET", route="unmatched", status="404") == 2
    )
    routes = {ls["route"] for n, ls, _ in samples(text) if n == "crm_http_requests_total"}
    assert all(r == "unmatched" or r.startswith("/") for r in routes), routes
    for secret in (acme.organization_id, acme.user_id, lead["id"], "not-a-uuid", acme.token):
        assert secret not in text
    head = ops_services.app.recorder.max_notification_id() or 0
    assert value(text, "crm_event_log_head") >= head
    for projector in all_projectors():
        lag = value(text, "crm_projector_lag_events", projector=projector.name)
        position = value(text, "crm_projector_position", projector=projector.name)
        assert lag == max(0, value(text, "crm_event_log_head") - position)
    for status in ("pending", "sending", "failed"):
        assert value(text, "crm_outbox_items", status=status) >= 0
    assert value(text, "crm_live_connections", transport="sse") == 0
    assert value(text, "crm_live_connections", transport="websocket") == 0


def test_the_outbox_queue_depth_sums_every_organization_under_one_label_per_status(
    ops: TestClient[Any], ops_services: Services
) -> None:
    before = operator("/metrics", ops).text
    acme, globex = register(ops, "Acme"), register(ops, "Globex")
    orgs = [UUID(acme.organization_id), UUID(globex.organization_id)]
    now = datetime.now(UTC)
    statuses = [(0, "pending"), (0, "pending"), (1, "pending"), (1, "failed"), (0, "done")]
    rows = [
        {
            "organization_id": orgs[org],
            "item_id": uuid4(),
            "kind": "message",
            "aggregate_id": uuid4(),
            "provider_type": "meta",
            "payload": {},
            "status": status,
            "attempts": 0,
            "next_attempt_at": now + timedelta(days=365),  # never due: no dispatcher claims it
            "created_at": now,
            "updated_at": now,
            "position": 0,
        }
        for org, status in statuses
    ]
    with ops_services.engine.begin() as conn:
        conn.execute(outbox.insert(), rows)
    try:
        after = operator("/metrics", ops).text
        for status, added in (("pending", 3), ("sending", 0), ("failed", 1)):
            grown = value(after, "crm_outbox_items", status=status)
            assert grown - value(before, "crm_outbox_items", status=status) == added
        assert not [s for s in samples(after) if s[1].get("status") == "done"]
        assert acme.organization_id not in after and globex.organization_id not in after
    finally:  # the PostgreSQL database is shared: leave no rows behind
        with ops_services.engine.begin() as conn:
            conn.execute(outbox.delete().where(outbox.c.organization_id.in_(orgs)))


def test_the_operator_routes_are_documented_with_their_security_scheme_and_answers(
    ops: TestClient[Any],
) -> None:
    document = ops.get("/schema/openapi.json").json()

    scheme = document["components"]["securitySchemes"]["operatorToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path in ("/database/info", "/metrics"):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{"operatorToken": []}]
        assert set(operation["responses"]) == {"200", "401", "404"}
        assert "application/problem+json" in operation["responses"]["401"]["content"]
    assert (
        "text/plain; version=0.0.4"
        in (document["paths"]["/metrics"]["get"]["responses"]["200"]["content"])
    )
    info = document["paths"]["/database/info"]["get"]["responses"]["200"]["content"]
    assert "application/json" in info


def test_the_ops_token_is_read_validated_and_never_shown(tmp_path: Path) -> None:
    base = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db"}
    assert load_settings(base).ops_token is None
    assert load_settings(base | {"CRM_OPS_TOKEN": ""}).ops_token is None
    settings = load_settings(base | {"CRM_OPS_TOKEN": OPS_TOKEN})
    assert settings.ops_token == OPS_TOKEN
    assert OPS_TOKEN not in repr(settings) and OPS_TOKEN not in str(settings)
    assert settings.secret_key not in repr(settings)
    for bad in ("short-token", f" {OPS_TOKEN}", f"{OPS_TOKEN}\n"):
        with pytest.raises(SettingsError, match="CRM_OPS_TOKEN") as refused:
            load_settings(base | {"CRM_OPS_TOKEN": bad})
        assert bad.strip() not in str(refused.value)


def test_metrics_still_answer_the_request_counts_while_the_database_cannot_be_read(
    ops: TestClient[Any], ops_services: Services, tmp_path: Path
) -> None:
    assert ops.get("/no/such/route").status_code == 404
    real = ops_services.engine
    ops_services.engine = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/crm.db")
    try:
        response = operator("/metrics", ops)
    finally:
        ops_services.engine.dispose()
        ops_services.engine = real

    assert response.status_code == 200, response.text
    assert value(response.text, "crm_database_up") == 0
    assert value(
        response.text, "crm_http_requests_total", method="GET", route="unmatched", status="404"
    )
    assert "crm_projector_lag_events" not in response.text
    assert value(operator("/metrics", ops).text, "crm_database_up") == 1
