"""Fixtures of the CLI tests: a fresh, empty database on each backend for `crm` commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import databases

SECRET = "cli-test-secret-key-of-at-least-32-characters"


@pytest.fixture(scope="module")
def scratch_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    """The requesting module's own PostgreSQL database, dropped at the end."""
    name = "crm_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with databases.scratch_postgres(f"crm_test_{name.removeprefix('crm_')}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """CRM_ variables of a fresh, empty database (nothing migrated yet)."""
    base = {"CRM_SECRET_KEY": SECRET, "CRM_THREADS": "2"}
    if request.param == "sqlite":
        return base | {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db"}
    url: str = request.getfixturevalue("scratch_postgres")
    with psycopg.connect(url, autocommit=True) as conn:  # empty again, faster than a new one
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return base | {"CRM_DATABASE_URL": url}
