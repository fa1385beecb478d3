"""Rate limits: exactly N of N+k concurrent requests pass, in-process and on Redis (shared by
two app instances, as two workers would share it); 429 problems with Retry-After."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.http.ratelimit import RateLimiter
from interfaces.services import build_services
from interfaces.settings import RateLimit, Settings, load_settings
from tests.conftest import settings_for
from tests.support.api import CheapHasher, Tenant, assert_problem, register
from tests.support.databases import REDIS_URL, redis_available

ClientFactory = Callable[..., TestClient[Any]]


@pytest.fixture
def client_with(database_url: str) -> Iterator[ClientFactory]:
    opened: list[TestClient[Any]] = []

    def make(**env: str) -> TestClient[Any]:
        services = build_services(settings_for(database_url, **env))
        services.hasher = CheapHasher()
        client = TestClient(create_app(services, own_services=True))
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def redis_env() -> dict[str, str]:
    if not redis_available():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    return {"CRM_REDIS_URL": REDIS_URL, "CRM_TRUST_PROXY": "1"}


def concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(responses: list[Any]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def login_attempts(clients: list[TestClient[Any]], count: int, ip: str = "") -> list[Any]:
    headers = {"X-Forwarded-For": f"203.0.113.9, {ip}"} if ip else {}
    body = {"email": "nobody@example.com", "password": "wrong password"}
    return concurrently(
        [
            lambda c=clients[i % len(clients)]: c.post("/auth/login", json=body, headers=headers)
            for i in range(count)
        ]
    )


def board_reads(tenants: list[Tenant], count: int) -> list[Any]:
    return concurrently(
        [lambda t=tenants[i % len(tenants)]: t.get("/crm/pipeline/board") for i in range(count)]
    )


def assert_too_many(response: Any, window: int) -> None:
    assert_problem(response, 429)
    assert 1 <= int(response.headers["retry-after"]) <= window


def test_exactly_the_auth_limit_of_concurrent_attempts_per_address_pass(
    client_with: ClientFactory,
) -> None:
    client = client_with(CRM_RATE_LIMIT_AUTH="5/60")

    responses = login_attempts([client], 9)

    assert statuses(responses) == {401: 5, 429: 4}
    assert_too_many(next(r for r in responses if r.status_code == 429), 60)
    assert client.get("/health").status_code == 200  # never limited


def test_exactly_the_org_limit_of_concurrent_requests_pass_and_other_orgs_are_untouched(
    client_with: ClientFactory,
) -> None:
    client = client_with(CRM_RATE_LIMIT_ORG="6/60")
    acme, other = register(client, "Acme"), register(client, "Other")

    assert statuses(board_reads([acme], 10)) == {200: 6, 429: 4}
    assert_too_many(acme.get("/crm/leads"), 60)  # one budget for every tenant route
    assert other.get("/crm/pipeline/board").status_code == 200


def test_requests_refused_by_the_guard_do_not_spend_the_organizations_budget(
    client_with: ClientFactory,
) -> None:
    client = client_with(CRM_RATE_LIMIT_ORG="2/60")
    acme = register(client)
    for _ in range(5):
        assert (
            client.get("/crm/leads", headers={"X-Org-Id": acme.organization_id}).status_code == 401
        )
    assert statuses(board_reads([acme], 3)) == {200: 2, 429: 1}


def test_on_redis_two_app_instances_share_exactly_one_auth_window(
    client_with: ClientFactory, redis_env: dict[str, str]
) -> None:
    workers = [client_with(CRM_RATE_LIMIT_AUTH="7/60", **redis_env) for _ in range(2)]
    ip = f"198.51.100.{uuid4().int % 250}-{uuid4().hex[:8]}"

    responses = login_attempts(workers, 12, ip)

    assert statuses(responses) == {401: 7, 429: 5}
    assert_too_many(next(r for r in responses if r.status_code == 429), 60)
    keys = redis.Redis.from_url(REDIS_URL).keys(f"ratelimit:ip:{ip}:auth")
    assert keys == [f"ratelimit:ip:{ip}:auth".encode()]
    assert login_attempts(workers, 1, ip + "-other")[0].status_code == 401


def test_on_redis_two_app_instances_share_exactly_one_org_window(
    client_with: ClientFactory, redis_env: dict[str, str]
) -> None:
    workers = [client_with(CRM_RATE_LIMIT_ORG="8/60", **redis_env) for _ in range(2)]
    acme = register(workers[0])
    on_second = Tenant(workers[1], acme.organization_id, acme.user_id, acme.token, acme.position)

    assert statuses(board_reads([acme, on_second], 14)) == {200: 8, 429: 6}
    ttl = redis.Redis.from_url(REDIS_URL).pttl(f"org:{acme.organization_id}:ratelimit:requests")
    assert 0 < ttl <= 60_000


def limiter_settings(tmp_path: Path, **env: str) -> Settings:
    base = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "CRM_SECRET_KEY": "x" * 40}
    return load_settings(base | env)


def hits_across_a_window(settings: Settings) -> list[float]:
    """Three hits on a 2-per-0.3 s window, then one more once the first two slid out."""

    async def run() -> list[float]:
        limiter = RateLimiter(settings)
        await limiter.start()
        bucket, limit = f"test:{uuid4()}", RateLimit(2, 0.3)
        try:
            waits = [await limiter._hit(bucket, limit) for _ in range(3)]
            await asyncio.sleep(0.32)
            return [*waits, await limiter._hit(bucket, limit)]
        finally:
            await limiter.close()

    return asyncio.run(run())


def test_the_window_slides_in_process(tmp_path: Path) -> None:
    waits = hits_across_a_window(limiter_settings(tmp_path))
    assert waits[:2] == [0, 0] and 0 < waits[2] <= 0.3 and waits[3] == 0


def test_the_window_slides_on_redis(tmp_path: Path, redis_env: dict[str, str]) -> None:
    waits = hits_across_a_window(limiter_settings(tmp_path, **redis_env))
    assert waits[:2] == [0, 0] and 0 < waits[2] <= 0.3 and waits[3] == 0


def test_while_redis_does_not_answer_the_limit_holds_in_process(tmp_path: Path) -> None:
    # nothing listens on port 1
    settings = limiter_settings(tmp_path, CRM_REDIS_URL="redis://127.0.0.1:1/0")

    async def three_hits() -> list[float]:
        limiter = RateLimiter(settings)
        await limiter.start()
        try:
            return [await limiter._hit("bucket", RateLimit(2, 60)) for _ in range(3)]
        finally:
            await limiter.close()

    waits = asyncio.run(three_hits())
    assert waits[:2] == [0, 0] and 59 < waits[2] <= 60
