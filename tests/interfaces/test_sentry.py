"""Errors reach Sentry (SENTRY_DSN) as the SDK's real envelopes, received by a local server:
tagged with organization, user and request ids, and carrying none of the request's secrets or
personal data. Without a DSN nothing is sent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import sqlalchemy as sa
from litestar import post
from litestar.params import JSONBody
from litestar.testing import TestClient
from sentry_sdk.scope import should_send_default_pii
from sqlalchemy.engine import Connection

from application.permissions import Permission
from interfaces.http.app import create_app
from interfaces.http.guard import tenant_guard
from interfaces.observability import background_reporter, init_sentry, scrub, shutdown_sentry
from interfaces.outbox import OutboxWorker
from interfaces.services import build_services
from interfaces.settings import SettingsError, load_settings
from projections.base import Projector
from projections.runner import ProjectionRunner
from tests.conftest import settings_for
from tests.support.api import (
    CheapHasher,
    assert_problem,
    register,
)
from tests.support.sentry import SentryServer

EMAIL = "maria.silva@example.com"
PHONE = "+5511999990000"
QUERY_SECRET = "query-secret-1234567"
COOKIE_SECRET = "cookie-secret-7654321"


@post("/test/explode", guards=[tenant_guard], opt={"permission": Permission.LEADS_WRITE})
async def explode(data: JSONBody[dict[str, Any]]) -> None:
    """A test-only route (registered by these tests on their app) that fails unexpectedly."""
    raise RuntimeError(f"could not capture {data['email']} ({data['phone']})")


@pytest.fixture
def sentry() -> Iterator[SentryServer]:
    with SentryServer() as server:
        try:
            yield server
        finally:  # whatever a test did, no client outlives it
            shutdown_sentry()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    shutil.copy(sqlite_template, tmp_path / "crm.db")
    return f"sqlite:///{tmp_path / 'crm.db'}"


def test_an_unhandled_error_reaches_sentry_tagged_and_without_secrets_or_personal_data(
    database_url: str, sentry: SentryServer
) -> None:
    settings = settings_for(database_url, SENTRY_DSN=sentry.dsn, SENTRY_ENVIRONMENT="ci")
    services = build_services(settings)
    services.hasher = CheapHasher()
    try:
        app = create_app(services, own_services=False)
        app.register(explode)
        with TestClient(app) as client:
            acme = register(client, "Acme")
            response = acme.post(
                f"/test/explode?token={QUERY_SECRET}&email={EMAIL}",
                json={"email": EMAIL, "phone": PHONE, "full_name": "Maria Silva"},
                headers={"Cookie": f"session={COOKIE_SECRET}", "X-Request-Id": "req-sentry-1"},
            )
            assert_problem(response, 500)
            assert not should_send_default_pii()
            assert sentry_sdk.flush(timeout=5) is None
            events = sentry.events()
    finally:
        services.close()

    # once: no second report of it through the logs (and no other error of the request)
    assert [e.get("tags", {}).get("request_id") for e in events].count("req-sentry-1") == 1, events
    event = next(e for e in events if e.get("tags", {}).get("request_id") == "req-sentry-1")
    (error,) = event["exception"]["values"]
    assert error["type"] == "RuntimeError"
    assert error["value"] == "could not capture [REDACTED] ([REDACTED])"
    assert event["tags"]["organization_id"] == acme.organization_id
    assert event["tags"]["user_id"] == acme.user_id
    assert event["tags"]["request_id"] == "req-sentry-1" == response.headers["x-request-id"]
    assert event["tags"]["route"] == "/test/explode"
    assert event["environment"] == "ci"
    frames = error["stacktrace"]["frames"]
    assert frames and not [f for f in frames if "vars" in f]
    request = event.get("request", {})
    assert "data" not in request and "query_string" not in request and "cookies" not in request
    assert {h.lower() for h in request.get("headers", {})}.isdisjoint(
        {"authorization", "cookie", "x-api-key"}
    )
    raw = sentry.raw()
    for secret in (acme.token, QUERY_SECRET, COOKIE_SECRET, EMAIL, PHONE, "Maria Silva"):
        assert secret.encode() not in raw, secret
    assert b"maria.silva%40example.com" not in raw


def test_sampled_transactions_are_named_by_route_template_without_query_or_credentials(
    sqlite_url: str, sentry: SentryServer
) -> None:
    settings = settings_for(sqlite_url, SENTRY_DSN=sentry.dsn, SENTRY_TRACES_SAMPLE_RATE="1")
    services = build_services(settings)
    services.hasher = CheapHasher()
    try:
        with TestClient(create_app(services, own_services=False)) as client:
            acme = register(client, "Acme")
            lead = acme.capture(email=EMAIL)
            assert acme.get(f"/crm/leads/{lead['id']}?q={QUERY_SECRET}").status_code == 200
            sentry_sdk.flush(timeout=5)
            transactions = sentry.events(wanted=3, kind="transaction")
    finally:
        services.close()

    names = {t["transaction"] for t in transactions}
    assert "/crm/leads/{lead_id}" in names and "/auth/register" in names, names
    assert {t["transaction_info"]["source"] for t in transactions} == {"route"}
    raw = sentry.raw()
    for secret in (acme.token, QUERY_SECRET, EMAIL):
        assert secret.encode() not in raw, secret


def test_a_failing_projector_batch_is_reported_from_its_thread(
    sqlite_url: str, sentry: SentryServer
) -> None:
    class Failing(Projector):
        name = "failing"
        tables = ()

        def process(self, conn: Connection, batch: Any) -> None:
            raise RuntimeError(f"cannot project {EMAIL}")

    settings = settings_for(sqlite_url, SENTRY_DSN=sentry.dsn)
    assert init_sentry(settings)
    services = build_services(settings, with_runner=False)
    services.hasher = CheapHasher()
    with TestClient(create_app(services, own_services=False)) as client:
        register(client, "Acme")  # events in the log
    runner = ProjectionRunner(
        services.engine, services.app.recorder, services.app.mapper, [Failing()]
    )
    runner.on_error = background_reporter("projections")
    init_sentry(settings)  # the app's shutdown above ended its client
    runner.start(poll_interval=0.05)
    try:
        events = sentry.events()
    finally:
        runner.stop()
        services.close()

    assert events, "no event received"
    event = events[0]
    assert event["tags"]["component"] == "projections"
    assert event["exception"]["values"][-1]["value"] == "cannot project [REDACTED]"
    assert EMAIL.encode() not in sentry.raw()


def test_a_failing_outbox_dispatch_is_reported_from_its_thread(
    sqlite_url: str, sentry: SentryServer, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, SENTRY_DSN=sentry.dsn)
    services = build_services(settings, with_runner=False)
    worker = OutboxWorker.for_services(services, poll_interval=0.05)
    worker.dispatcher.engine = sa.create_engine(f"sqlite:///{tmp_path / 'no-outbox.db'}")
    assert init_sentry(settings)
    worker.start()
    try:
        events = sentry.events()
    finally:
        worker.stop()
        services.close()

    assert events and events[0]["tags"]["component"] == "outbox"
    assert "no such table" in events[0]["exception"]["values"][-1]["value"]


def test_without_a_dsn_nothing_is_initialised_or_sent(
    database_url: str, sentry: SentryServer
) -> None:
    services = build_services(settings_for(database_url))
    services.hasher = CheapHasher()
    try:
        app = create_app(services, own_services=False)
        app.register(explode)
        with TestClient(app) as client:
            acme = register(client, "Acme")
            response = acme.post("/test/explode", json={"email": EMAIL, "phone": PHONE})
            assert_problem(response, 500)
            assert not sentry_sdk.get_client().is_active()
    finally:
        services.close()
    assert sentry.events(timeout=0.5) == []


def test_scrub_drops_bodies_cookies_credentials_and_query_strings_from_any_event() -> None:
    event: Any = {
        "request": {
            "url": f"http://api.example/crm/leads?email={EMAIL}",
            "query_string": f"email={EMAIL}",
            "data": {"email": EMAIL},
            "cookies": {"session": COOKIE_SECRET},
            "headers": {
                "Authorization": "Bearer abc",
                "X-API-Key": "crm_key",
                "X-Hub-Signature-256": "sha256=1",
                "Cookie": COOKIE_SECRET,
                "X-Forwarded-For": "203.0.113.9",
                "User-Agent": "curl",
            },
            "env": {"REMOTE_ADDR": "203.0.113.9"},
        },
        "user": {"email": EMAIL, "ip_address": "203.0.113.9"},
        "breadcrumbs": {"values": [{"message": EMAIL}]},
        "extra": {"body": EMAIL},
        "logentry": {"message": f"mail to {EMAIL}", "params": [EMAIL]},
        "exception": {
            "values": [
                {
                    "value": f"Bearer eyJhbGciOi.eyJzdWIiOi.sig for {EMAIL} at {PHONE}",
                    "stacktrace": {"frames": [{"function": "f", "vars": {"email": EMAIL}}]},
                }
            ]
        },
    }

    scrubbed: Any = scrub(event, {})

    assert scrubbed["request"] == {
        "url": "http://api.example/crm/leads",
        "headers": {"User-Agent": "curl"},
    }
    assert "user" not in scrubbed and "breadcrumbs" not in scrubbed and "extra" not in scrubbed
    assert EMAIL not in repr(scrubbed) and PHONE not in repr(scrubbed)
    assert "eyJ" not in repr(scrubbed)


def test_the_sentry_settings_are_read_and_validated(tmp_path: Path) -> None:
    base = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db"}
    default = load_settings(base)
    assert (default.sentry_dsn, default.sentry_environment) == (None, None)
    assert default.sentry_traces_sample_rate == 0.0
    settings = load_settings(
        base
        | {
            "SENTRY_DSN": "https://abc123@o1.ingest.sentry.io/42",
            "SENTRY_ENVIRONMENT": "staging",
            "SENTRY_TRACES_SAMPLE_RATE": "0.25",
        }
    )
    assert settings.sentry_dsn == "https://abc123@o1.ingest.sentry.io/42"
    assert (settings.sentry_environment, settings.sentry_traces_sample_rate) == ("staging", 0.25)
    assert "abc123" not in repr(settings)
    for name, bad in (
        ("SENTRY_DSN", "not a dsn"),
        ("SENTRY_DSN", "https://o1.ingest.sentry.io/42"),
        ("SENTRY_TRACES_SAMPLE_RATE", "1.5"),
        ("SENTRY_TRACES_SAMPLE_RATE", "-0.1"),
        ("SENTRY_TRACES_SAMPLE_RATE", "often"),
    ):
        with pytest.raises(SettingsError, match=name):
            load_settings(base | {name: bad})
