"""Shared fixtures: every storage-backed suite runs on SQLite and on PostgreSQL.

PostgreSQL: one fresh database per test session (`crm_test_<pid>`), migrated once; tests stay
independent because each works inside organizations it registers itself. Under CI=true an
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.database import make_engine
from interfaces.http.app import create_app
from interfaces.migrate import migrate
from interfaces.services import Services, build_services
from interfaces.settings import Settings, load_settings
from tests.support.databases import scratch_postgres

SECRET = "test-secret-key-of-at-least-32-characters!"
BACKENDS = ["sqlite", "postgres"]


def settings_for(url: str, **extra: str) -> Settings:
    # rate limits are tested on their own; elsewhere they would turn generated traffic into 429s;
    # the outbox too (tests/application/test_outbox.py): elsewhere it would call real providers
    base = {"CRM_RATE_LIMIT_AUTH": "off", "CRM_RATE_LIMIT_ORG": "off", "CRM_OUTBOX": "off"}
    base["CRM_PROVIDER_PRIVATE_URLS"] = "on"  # the local provider servers are on 127.0.0.1
    return load_settings(base | {"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": SECRET, **extra})


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_postgres("crm_test") as url:
        settings = settings_for(url)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "crm.db"
    settings = settings_for(f"sqlite:///{path}")
    engine = make_engine(settings)
    migrate(settings, engine)
    engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "crm.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
def mail_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own mailbox: with no SMTP server, mails are written here as .eml files."""
    monkeypatch.delenv("CRM_SMTP_URL", raising=False)
    monkeypatch.setenv("CRM_MAIL_DIR", str(tmp_path / "mail"))
    return tmp_path / "mail"


@pytest.fixture
def services(settings: Settings, mail_dir: Path) -> Iterator[Services]:
    svc = build_services(settings)
    svc.start_projections()
    yield svc
    svc.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(services, own_services=False)) as c:
        yield c
