"""Revoked access tokens live in the database (Redis, when configured, only caches them): a
logout survives a restart, other processes see it within LOCAL_TTL, expired rows are pruned."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from interfaces.database import make_engine
from interfaces.http.app import create_app
from interfaces.revocations import LOCAL_TTL, StoredRevocations, revoked_access_tokens
from interfaces.services import build_services
from tests.conftest import settings_for
from tests.support.api import CheapHasher, assert_problem, register


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(settings_for(database_url))
    yield engine
    engine.dispose()


def started(database_url: str) -> TestClient[Any]:
    services = build_services(settings_for(database_url))
    services.hasher = CheapHasher()
    return TestClient(create_app(services, own_services=True))


def test_a_logout_still_holds_after_the_server_restarts(database_url: str) -> None:
    with started(database_url) as client:
        acme = register(client)
        assert acme.post("/auth/logout").status_code == 204
        assert_problem(acme.get("/crm/leads"), 401)

    with started(database_url) as client:  # a new process: nothing in its memory
        acme.client = client
        assert_problem(acme.get("/crm/leads"), 401)


def test_another_process_sees_a_revocation_within_the_local_ttl(engine: Engine) -> None:
    here, there = StoredRevocations(engine), StoredRevocations(engine)
    jti = f"jti-{time.monotonic_ns()}"
    assert there.is_revoked(jti) is False

    here.revoke(jti, time.time() + 60)
    assert here.is_revoked(jti) is True
    deadline = time.monotonic() + LOCAL_TTL + 1
    while not there.is_revoked(jti):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_revocations_of_expired_tokens_are_pruned(engine: Engine) -> None:
    stamp = time.monotonic_ns()
    StoredRevocations(engine).revoke(f"soon-{stamp}", time.time() + 0.2)
    time.sleep(0.3)

    StoredRevocations(engine).revoke(f"later-{stamp}", time.time() + 60)

    with engine.connect() as conn:
        left = set(conn.execute(sa.select(revoked_access_tokens.c.jti)).scalars())
    assert f"later-{stamp}" in left and f"soon-{stamp}" not in left
