"""Scratch PostgreSQL databases for tests: made fresh, dropped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def postgres_available() -> bool:
    """Whether PostgreSQL answers; under CI=true an unreachable server is an error, not a skip."""
    try:
        with psycopg.connect(PG_ADMIN):
            return True
    except psycopg.OperationalError:
        if os.environ.get("CI") == "true":
            raise
        return False


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new empty database named after the prefix and this process; yields its URL."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available(url: str = REDIS_URL) -> bool:
    """Whether Redis answers; under CI=true an unreachable server is an error, not a skip."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        return False
