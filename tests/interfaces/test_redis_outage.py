"""Redis is an accelerator, not the source of truth: while it is down or stalled every route
still answers, revocations hold (from the database), rate limits hold (in-process) and /health
says degraded; when it is back it is used again without a restart. Each test starts a
redis-server of its own and stops, pauses or restarts it (never the shared one)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import jwt
import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.redis_circuit import RedisCircuit
from interfaces.revocations import PREFIX, StoredRevocations
from interfaces.security import InvalidTokenError, Tokens
from interfaces.services import Services, build_services
from tests.conftest import SECRET, settings_for
from tests.support.api import PASSWORD, CheapHasher, Tenant, assert_problem, register
from tests.support.redis_server import PASSWORD as REDIS_PASSWORD
from tests.support.redis_server import RedisServer, own_redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with own_redis() as server:
        yield server


@pytest.fixture
def redis_log() -> Iterator[list[logging.LogRecord]]:
    """What the Redis circuit logs (its outage warnings)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("crm.redis")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def client_on(database_url: str, server: RedisServer, **env: str) -> TestClient[Any]:
    services = build_services(settings_for(database_url, CRM_REDIS_URL=server.url, **env))
    services.hasher = CheapHasher()
    return TestClient(create_app(services, own_services=True))


@pytest.fixture
def client(database_url: str, redis_server: RedisServer) -> Iterator[TestClient[Any]]:
    with client_on(database_url, redis_server) as client:
        yield client


def services_of(client: TestClient[Any]) -> Services:
    services: Services = client.app.state.services
    return services


def email_of(tenant: Tenant) -> str:
    user = services_of(tenant.client).users.by_id(UUID(tenant.user_id))
    assert user is not None
    return user.email


def log_in(client: TestClient[Any], email: str) -> dict[str, Any]:
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def as_(tenant: Tenant, token: str) -> Tenant:
    return Tenant(tenant.client, tenant.organization_id, tenant.user_id, token, tenant.position)


def jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def wait_health(client: TestClient[Any], status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/health")
        body: dict[str, Any] = response.json()
        if body["status"] == status or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            assert body["status"] == status, body
            return body
        time.sleep(0.1)


def outage_lines(records: list[logging.LogRecord]) -> Counter[str]:
    said = [r.getMessage() for r in records]
    assert all(REDIS_PASSWORD not in line for line in said), said
    return Counter(
        "down" if "does not answer" in line else "back" if "answers again" in line else line
        for line in said
    )


def test_while_redis_is_down_every_session_route_answers_and_revocations_hold(
    client: TestClient[Any], redis_server: RedisServer, redis_log: list[logging.LogRecord]
) -> None:
    acme = register(client)
    email = email_of(acme)
    kept = log_in(client, email)
    revoked_while_up = as_(acme, log_in(client, email)["access_token"])
    revoked_while_down = as_(acme, log_in(client, email)["access_token"])
    me = as_(acme, kept["access_token"])
    assert revoked_while_up.post("/auth/logout").status_code == 204

    redis_server.stop()

    assert me.get("/crm/leads").status_code == 200  # a read
    lead = me.capture()  # a command
    assert me.get(f"/crm/leads/{lead['id']}").status_code == 200
    assert me.get("/users/me").status_code == 200
    assert log_in(client, email)["access_token"]
    refreshed = client.post("/auth/refresh", json={"refresh_token": kept["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert as_(acme, refreshed.json()["access_token"]).get("/crm/leads").status_code == 200
    assert revoked_while_down.post("/auth/logout").status_code == 204
    assert_problem(revoked_while_down.get("/crm/leads"), 401)
    assert_problem(revoked_while_up.get("/crm/leads"), 401)  # durable: in the database
    degraded = wait_health(client, "degraded")
    assert degraded["dependencies"]["redis"] == {
        "status": "unhealthy",
        "type": "redis",
        "response_time_ms": None,
    }
    assert degraded["dependencies"]["database"]["status"] == "healthy"
    assert "redis unreachable" in degraded["issues"]

    redis_server.start()  # empty: it kept nothing

    healthy = wait_health(client, "healthy")
    assert healthy["dependencies"]["redis"]["status"] == "healthy"
    assert_problem(revoked_while_down.get("/crm/leads"), 401)
    assert_problem(revoked_while_up.get("/crm/leads"), 401)
    assert me.get("/crm/leads").status_code == 200
    # used again: the answers are cached in Redis once more
    cached = redis_server.client().get(PREFIX + jti(revoked_while_down.token))
    assert cached is not None and float(cached) > time.time()
    assert redis_server.client().get(PREFIX + jti(me.token)) == b"0"
    assert outage_lines(redis_log) == {"down": 1, "back": 1}


def test_a_stalled_redis_costs_one_short_timeout_per_back_off_and_misses_no_revocation(
    client: TestClient[Any], redis_server: RedisServer, redis_log: list[logging.LogRecord]
) -> None:
    acme = register(client)
    services = services_of(client)
    other_process = Tokens(
        SECRET, 3600, StoredRevocations(services.engine, RedisCircuit(redis_server.url))
    )
    other_process.decode(acme.token)  # Redis now caches "not revoked" for it

    circuit = services.redis
    assert circuit is not None
    redis_server.pause()
    started, failed = time.monotonic(), circuit.failures
    statuses = [acme.get("/crm/pipeline/stages").status_code for _ in range(12)]
    took, failed = time.monotonic() - started, circuit.failures - failed
    assert acme.post("/auth/logout").status_code == 204  # Redis misses this one
    redis_server.resume()

    assert statuses == [200] * 12
    # asked once (plus a call already in flight, e.g. the projector's), then once per
    # back-off: not on every request (12 x 0.5 s)
    assert 1 <= failed <= 2 + took / circuit.backoff
    assert took < 12 * circuit.socket_timeout
    wait_health(client, "healthy")
    assert_problem(acme.get("/crm/leads"), 401)  # and this process tells Redis what it missed
    with pytest.raises(InvalidTokenError):
        other_process.decode(acme.token)
    assert outage_lines(redis_log) == {"down": 1, "back": 1}


def test_rate_limits_hold_in_process_while_redis_is_down_and_on_redis_when_it_is_back(
    database_url: str, redis_server: RedisServer
) -> None:
    with client_on(database_url, redis_server, CRM_RATE_LIMIT_ORG="4/60") as client:
        acme = register(client)
        key = f"org:{acme.organization_id}:ratelimit:requests"
        assert acme.get("/crm/pipeline/stages").status_code == 200
        assert redis_server.client().zcard(key) == 1

        redis_server.stop()
        down = [acme.get("/crm/pipeline/stages") for _ in range(6)]
        redis_server.start()
        wait_health(client, "healthy")
        back = [acme.get("/crm/pipeline/stages") for _ in range(6)]

    assert [r.status_code for r in down] == [200] * 4 + [429] * 2
    assert 59 <= int(down[-1].headers["retry-after"]) <= 60
    assert [r.status_code for r in back] == [200] * 4 + [429] * 2
    assert redis_server.client().zcard(key) == 4  # counted on Redis again
