"""GET /health on both backends: healthy, degraded by a projector far behind the log, and 503
unhealthy when the database does not answer (Redis outages: test_redis_outage.py)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

import interfaces.http.health
from interfaces.database import make_engine
from interfaces.http.app import create_app
from interfaces.migrate import migrate
from interfaces.services import Services, build_services
from tests.conftest import settings_for
from tests.support.api import assert_problem, register
from tests.support.databases import PG_ADMIN, scratch_postgres


def health(client: TestClient[Any]) -> tuple[int, dict[str, Any]]:
    response = client.get("/health")
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return response.status_code, body


def test_a_healthy_service_names_itself_its_dependencies_and_each_projectors_lag(
    client: TestClient[Any], services: Services
) -> None:
    register(client)
    before = datetime.now(UTC)

    status, body = health(client)

    assert status == 200, body
    assert (body["status"], body["service"]) == ("healthy", "loved-crm")
    assert body["version"] == importlib.metadata.version("loved-crm")
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)
    database = body["dependencies"]["database"]
    assert database["status"] == "healthy"
    assert database["type"] == ("postgresql" if services.settings.is_postgres else "sqlite")
    assert 0 <= database["response_time_ms"] <= body["response_time_ms"]
    assert body["dependencies"]["redis"] == {
        "status": "not_configured",
        "type": "redis",
        "response_time_ms": None,
    }
    head = services.app.recorder.max_notification_id()
    assert body["log_position"] >= head > 0
    assert set(body["projectors"]) >= {"leads", "timeline", "audit"}
    for projector in body["projectors"].values():
        assert projector["lag"] == body["log_position"] - projector["position"] >= 0
    assert body["issues"] == []


def test_a_projector_far_behind_the_log_makes_the_service_degraded(
    client: TestClient[Any], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interfaces.http.health, "LAG_DEGRADED", 2)
    acme = register(client)
    services.stop_projections()
    for _ in range(3):
        acme.capture()

    status, body = health(client)

    assert status == 200
    assert body["status"] == "degraded"
    behind = {name for name, p in body["projectors"].items() if p["lag"] > 2}
    assert {"leads", "timeline"} <= behind
    assert (
        f"projector leads is {body['projectors']['leads']['lag']} events behind" in (body["issues"])
    )
    services.start_projections()
    deadline = time.monotonic() + 10
    while health(client)[1]["status"] != "healthy":
        assert time.monotonic() < deadline, health(client)
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def breakable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend, database URL) of a migrated database of the test's own, to be broken."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "crm.db")
        yield "sqlite", f"sqlite:///{tmp_path}/crm.db"
        return
    with scratch_postgres("crm_test_health") as url:
        settings = settings_for(url)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        yield "postgres", url


def break_database(backend: str, url: str, services: Services) -> None:
    if backend == "sqlite":  # the file's volume is gone: a directory where the file was
        services.engine.dispose()
        path = url.removeprefix("sqlite:///")
        os.rename(path, path + ".gone")
        os.mkdir(path)
        return
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_an_unreachable_database_answers_503_unhealthy(breakable: tuple[str, str]) -> None:
    backend, url = breakable
    services = build_services(settings_for(url), with_runner=False)
    with TestClient(create_app(services, own_services=True)) as client:
        assert health(client)[0] == 200
        acme = register(client)

        break_database(backend, url, services)
        started = time.monotonic()
        status, body = health(client)
        took = time.monotonic() - started
        # a known outage, not a bug: every route says so, and when to try again
        for response in (acme.get("/crm/leads"), acme.get("/crm/pipeline/board")):
            assert_problem(response, 503)
            assert response.headers["retry-after"] == "5"

    assert status == 503, body
    assert body["status"] == "unhealthy"
    database = body["dependencies"]["database"]
    assert (database["status"], database["type"]) == (
        "unhealthy",
        "postgresql" if backend == "postgres" else "sqlite",
    )
    assert body["dependencies"]["redis"]["status"] == "not_configured"
    assert body["issues"] and body["issues"][0].startswith("database unreachable")
    assert (body["log_position"], body["projectors"]) == (None, {})
    assert took < 3
