"""Security headers on every kind of response, HSTS only over TLS, CORS only when configured."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import get
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.services import build_services
from tests.conftest import settings_for
from tests.support.api import assert_problem, register

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
ORIGIN = "https://app.example.com"
ClientFactory = Callable[..., TestClient[Any]]


@pytest.fixture
def client_with(database_url: str) -> Iterator[ClientFactory]:
    """Clients of apps built from the test settings plus the given CRM_* variables."""
    opened: list[TestClient[Any]] = []

    def make(base_url: str = "http://testserver.local", **env: str) -> TestClient[Any]:
        app = create_app(build_services(settings_for(database_url, **env)), own_services=True)
        client = TestClient(app, base_url=base_url)
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def assert_secure(response: Any, csp: str = STRICT_CSP) -> None:
    headers = response.headers
    assert headers["x-frame-options"] == "DENY", (response.status_code, headers)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == csp
    assert "strict-transport-security" not in headers


def test_every_kind_of_response_carries_the_security_headers(client: TestClient[Any]) -> None:
    @get("/edge-boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("boom")

    client.app.register(boom)
    tenant = register(client)

    assert_secure(client.get("/health"))
    assert_secure(tenant.get("/crm/pipeline/board"))
    assert_secure(client.post("/auth/login", json={"email": "a@b.c", "password": "x"}))
    assert_secure(assert_problem_response(client.get("/crm/leads"), 401))
    assert_secure(
        assert_problem_response(tenant.get("/audit/events", headers={"X-Org-Id": "x"}), 403)
    )
    assert_secure(assert_problem_response(client.get("/nowhere"), 404))
    assert_secure(assert_problem_response(client.patch("/crm/leads"), 405))
    assert_secure(assert_problem_response(client.get("/edge-boom"), 500))
    assert_secure(client.options("/crm/leads"))


def assert_problem_response(response: Any, status: int) -> Any:
    assert_problem(response, status)
    return response


def test_the_schema_pages_get_a_looser_policy_that_still_forbids_framing(
    client: TestClient[Any],
) -> None:
    for path in ("/schema/swagger", "/schema/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert csp != STRICT_CSP and "script-src" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"


def test_hsts_is_sent_over_tls_only(client_with: ClientFactory) -> None:
    plain = client_with()
    assert "strict-transport-security" not in plain.get("/health").headers

    tls = client_with(base_url="https://testserver.local")
    hsts = tls.get("/nowhere").headers["strict-transport-security"]
    assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31536000


def test_a_forwarded_https_counts_only_behind_a_trusted_proxy(client_with: ClientFactory) -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    untrusted = client_with()
    assert "strict-transport-security" not in untrusted.get("/health", headers=forwarded).headers

    behind_proxy = client_with(CRM_TRUST_PROXY="1")
    assert "strict-transport-security" in behind_proxy.get("/health", headers=forwarded).headers
    assert "strict-transport-security" not in behind_proxy.get("/health").headers


def test_without_configured_origins_no_cors_headers_are_sent(client: TestClient[Any]) -> None:
    response = client.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


def test_a_configured_origin_may_preflight_and_read_the_api(client_with: ClientFactory) -> None:
    client = client_with(CRM_CORS_ORIGINS=f"{ORIGIN}, http://localhost:5173")
    preflight = client.options(
        "/crm/leads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-org-id, x-min-position, x-api-key",
        },
    )
    assert preflight.status_code in (200, 204), preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "x-org-id", "x-min-position", "x-api-key"} <= allowed
    assert_secure(preflight)

    simple = client.get("/health", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-stale", "retry-after", "x-export-position"} <= exposed


def test_an_unlisted_origin_gets_no_cors_permission(client_with: ClientFactory) -> None:
    client = client_with(CRM_CORS_ORIGINS=ORIGIN)
    evil = "https://evil.example"
    preflight = client.options(
        "/crm/leads", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers.get("access-control-allow-origin") != evil
    assert preflight.status_code >= 400
    assert_secure(preflight)
    simple = client.get("/health", headers={"Origin": evil})
    assert "access-control-allow-origin" not in simple.headers
