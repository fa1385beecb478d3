"""From one database URL to the event store's environment and the read models' engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from interfaces.eventstore import recorder_topic
from interfaces.settings import Settings


def eventstore_env(settings: Settings, *, create_table: bool = False) -> dict[str, str]:
    """Environment for the eventsourcing Application, from CRM_DATABASE_URL."""
    env = {"CREATE_TABLE": "y" if create_table else "n"}
    if settings.is_postgres:
        parts = urlsplit(settings.database_url)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(min(settings.threads, 10)),
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "5",
            "POSTGRES_CONNECT_TIMEOUT": "5",
        }
    else:
        path = settings.sqlite_path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    env["APPLICATION_RECORDER_TOPIC"] = recorder_topic(env["PERSISTENCE_MODULE"])
    return env


def sqlalchemy_url(settings: Settings) -> str:
    if settings.is_postgres:
        return "postgresql+psycopg://" + settings.database_url.split("://", 1)[1]
    return "sqlite:///" + settings.sqlite_path


def make_engine(settings: Settings) -> Engine:
    kwargs: dict[str, Any] = {}
    if settings.is_postgres:
        kwargs |= {
            "pool_size": min(settings.threads, 10),
            "max_overflow": 10,
            # no pre-ping round trip per checkout: connections are recycled instead
            "pool_recycle": 600,
        }
    else:
        kwargs |= {"connect_args": {"timeout": 30, "check_same_thread": False}}
    engine = sa.create_engine(sqlalchemy_url(settings), **kwargs)
    if not settings.is_postgres:

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine
