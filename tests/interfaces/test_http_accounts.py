"""Sessions over HTTP: refresh-token rotation and reuse detection, logout and revocation
(in process and in Redis), failed-login incidents."""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

import pytest
import redis
import sqlalchemy as sa
from litestar.testing import TestClient

from domain.security import PLATFORM
from interfaces.redis_circuit import RedisCircuit
from interfaces.revocations import StoredRevocations
from interfaces.security import InvalidTokenError, Tokens
from interfaces.services import Services
from interfaces.users import users
from tests.conftest import SECRET
from tests.support.api import (
    PASSWORD,
    Tenant,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def email_of(client: TestClient[Any], tenant: Tenant) -> str:
    services: Services = client.app.state.services
    with services.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(users.c.email).where(users.c.id == UUID(tenant.user_id))
            ).scalar()
        )


def login(client: TestClient[Any], tenant: Tenant, password: str = PASSWORD) -> Any:
    body = {"email": email_of(client, tenant), "password": password}
    return client.post("/auth/login", json=body, headers={"User-Agent": "pytest-agent"})


def bearer(token: str, tenant: Tenant | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    return headers | ({"X-Org-Id": tenant.organization_id} if tenant else {})


def incidents(client: TestClient[Any], tenant: Tenant) -> list[dict[str, Any]]:
    tenant.position = client.app.state.services.app.recorder.max_notification_id()
    rows = tenant.get("/audit/events", params={"event_type": "SecurityIncident.Recorded"})
    assert rows.status_code == 200, rows.text
    return [
        r["changes"]["details"]["after"]
        | {"kind": r["changes"]["kind"]["after"], "ip": r["ip"], "user_agent": r["user_agent"]}
        for r in rows.json()["items"]
    ]


def test_login_returns_a_refresh_token_that_rotates_on_use(client: TestClient[Any]) -> None:
    acme = register(client)
    first = login(client, acme).json()
    assert first["refresh_token"] and first["expires_in"] > 0
    renewed = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["organization_id"] == acme.organization_id
    board = client.get("/crm/pipeline/board", headers=bearer(body["access_token"], acme))
    assert board.status_code == 200, board.text
    again = client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 200, again.text


def test_reusing_a_refresh_token_revokes_its_family_and_is_recorded(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stolen = login(client, acme).json()["refresh_token"]
    successor = client.post("/auth/refresh", json={"refresh_token": stolen}).json()
    reuse = client.post(
        "/auth/refresh", json={"refresh_token": stolen}, headers={"User-Agent": "thief"}
    )
    assert_problem(reuse, 401)
    refused = client.post("/auth/refresh", json={"refresh_token": successor["refresh_token"]})
    assert_problem(refused, 401)
    other_session = login(client, acme).json()["refresh_token"]  # another family still works
    assert client.post("/auth/refresh", json={"refresh_token": other_session}).status_code == 200
    seen = [i for i in incidents(client, acme) if i["kind"] == "token_reuse_detected"]
    assert len(seen) == 1
    assert seen[0]["user_id"] == acme.user_id
    assert (seen[0]["ip"], seen[0]["user_agent"]) == ("testclient", "thief")


def test_refresh_refuses_bad_input_and_unknown_tokens(client: TestClient[Any]) -> None:
    for body in ({}, {"refresh_token": ""}, {"refresh_token": "x", "extra": 1}, [], "x"):
        response = client.post("/auth/refresh", json=body)
        assert response.status_code in (400, 422), (body, response.text)
    assert_problem(client.post("/auth/refresh", json={"refresh_token": "unknown"}), 401)


def test_logout_revokes_the_access_token_everywhere_and_its_refresh_family(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    session = login(client, acme).json()
    token = session["access_token"]
    assert client.get("/users/me", headers=bearer(token)).status_code == 200
    assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert_problem(client.get("/users/me", headers=bearer(token)), 401)
    assert_problem(client.get("/crm/pipeline/board", headers=bearer(token, acme)), 401)
    assert_problem(client.post("/auth/logout", headers=bearer(token)), 401)
    assert_problem(
        client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401
    )
    # the registration's own token was another session: still valid
    assert acme.get("/crm/pipeline/board").status_code == 200


def test_logout_ends_every_access_token_of_its_session(client: TestClient[Any]) -> None:
    acme = register(client)
    session = login(client, acme).json()
    refreshed = client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    newer = refreshed.json()["access_token"]
    older = session["access_token"]
    assert client.get("/users/me", headers=bearer(older)).status_code == 200

    assert client.post("/auth/logout", headers=bearer(newer)).status_code == 204

    assert_problem(client.get("/users/me", headers=bearer(older)), 401)
    assert_problem(client.get("/users/me", headers=bearer(newer)), 401)
    assert acme.get("/crm/pipeline/board").status_code == 200  # another session


def test_logout_also_revokes_the_refresh_token_in_its_body(client: TestClient[Any]) -> None:
    acme = register(client)
    phone = login(client, acme).json()
    laptop = login(client, acme).json()
    body = {"refresh_token": laptop["refresh_token"]}
    response = client.post("/auth/logout", json=body, headers=bearer(phone["access_token"]))
    assert response.status_code == 204, response.text
    assert_problem(client.post("/auth/refresh", json=body), 401)


def test_logout_needs_a_valid_token_and_a_well_formed_body(client: TestClient[Any]) -> None:
    acme = register(client)
    assert_problem(client.post("/auth/logout"), 401)
    assert_problem(client.post("/auth/logout", headers=bearer("not-a-jwt")), 401)
    for body in ({"refresh_token": 3}, {"other": "x"}, [1]):
        response = client.post("/auth/logout", json=body, headers=bearer(acme.token))
        assert response.status_code in (400, 422), (body, response.text)
    assert acme.get("/crm/pipeline/board").status_code == 200  # nothing was revoked


def test_failed_logins_are_recorded_in_the_users_organizations(client: TestClient[Any]) -> None:
    acme = register(client)
    assert_problem(login(client, acme, "wrong password!"), 401)
    seen = [i for i in incidents(client, acme) if i["kind"] == "login_failed"]
    assert len(seen) == 1
    assert seen[0]["email"] == email_of(client, acme)
    assert (seen[0]["ip"], seen[0]["user_agent"]) == ("testclient", "pytest-agent")


def test_failed_logins_for_unknown_emails_belong_to_the_platform(
    client: TestClient[Any], services: Services
) -> None:
    email = "nobody-" + os.urandom(4).hex() + "@example.com"
    start = (services.app.recorder.max_notification_id() or 0) + 1
    response = client.post("/auth/login", json={"email": email, "password": "whatever-123"})
    assert_problem(response, 401)
    events = services.app.recorder.select_notifications(start, 1000)
    # the email tried is personal data: sealed in the stored event, readable through the store
    assert not [e for e in events if email.encode() in e.state]
    mine = [
        e
        for e in events
        if e.topic.endswith("SecurityIncident.Recorded")
        and services.app.mapper.to_domain_event(e).details.get("email") == email  # type: ignore[attr-defined]
    ]
    assert len(mine) == 1
    assert services.app.recorder.organization_of(mine[0].originator_id) == PLATFORM


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("Redis is not reachable")
    return REDIS_URL


def test_a_revocation_in_redis_is_seen_by_every_process_until_the_token_expires(
    client: TestClient[Any], services: Services, redis_url: str
) -> None:
    services.tokens.revocations = StoredRevocations(services.engine, RedisCircuit(redis_url))
    acme = register(client)
    token = login(client, acme).json()["access_token"]
    other_process = Tokens(
        SECRET, 3600, StoredRevocations(services.engine, RedisCircuit(redis_url))
    )
    claims = other_process.decode(token)
    assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    with pytest.raises(InvalidTokenError):
        other_process.decode(token)  # even from its verified-token cache
    assert_problem(client.get("/users/me", headers=bearer(token)), 401)
    ttl = redis.Redis.from_url(redis_url).ttl(f"revoked:jti:{claims.jti}")
    assert 3500 < ttl <= 3600
