"""From one database URL to the event store's environment and the read models' engine.

On SQLite (the embedded default) every connection - the event store's and the read models' -
runs with `PRAGMA secure_delete=ON`: deleted and overwritten content is zeroed in the page, and
freed pages are zeroed, so a scrubbed row leaves no bytes behind in the file. The write-ahead
log still holds the earlier page images until it is reset: `WalCheckpoint` copies it into the
database file and truncates it to zero bytes after each projector round that applied an erasure
(`Lead.PersonalDataErased`, `Conversation.ContactErased`), i.e. once every read model of the
runner has been scrubbed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from sqlalchemy.engine import Engine

from domain.conversation import Conversation
from domain.lead import Lead
from interfaces.eventstore import SecureDeleteSQLiteFactory, recorder_topic
from interfaces.settings import Settings

log = logging.getLogger(__name__)

#: the events after which personal values were scrubbed from the read models
ERASURE_TOPICS: Final = frozenset(
    {get_topic(Lead.PersonalDataErased), get_topic(Conversation.ContactErased)}
)


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
    if not settings.is_postgres:  # the library's SQLite, with secure_delete on each connection
        env["PERSISTENCE_MODULE"] = get_topic(SecureDeleteSQLiteFactory)
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
            cursor.execute("PRAGMA secure_delete=ON")  # see the module doc
            cursor.close()

    return engine


def checkpoint_wal(engine: Engine, wait_ms: int = 1000) -> bool:
    """Copy the SQLite write-ahead log into the database file and truncate it to zero bytes.

    Waits up to `wait_ms` for writers and open read transactions to finish; False if it could
    not finish (the log then still holds frames). The connection's busy timeout is restored.
    """
    with engine.connect() as conn:
        before = conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            busy, _frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(before)}")
    return int(busy) == 0


class WalCheckpoint:
    """A projector runner's `after_round`: checkpoint the SQLite log after rounds that applied
    an erasure, so the scrubbed values leave the log's old frames too (see the module doc).

    A checkpoint that could not finish within `wait_ms` (an open read transaction, a writer) is
    tried again after the next rounds, idle rounds too, so projectors are never held up long.
    """

    def __init__(self, engine: Engine, wait_ms: int = 1000) -> None:
        self.engine = engine
        self.wait_ms = wait_ms
        self._pending = False
        self._seen = 0  # the last log position of the rounds so far
        self._done = threading.Condition()
        #: every erasure up to this log position has left the write-ahead log
        self.position = 0

    def __call__(self, notifications: Sequence[Notification]) -> None:
        if notifications:
            self._seen = max(self._seen, notifications[-1].id)
        if any(n.topic in ERASURE_TOPICS for n in notifications):
            self._pending = True
        if self._pending:
            if checkpoint_wal(self.engine, self.wait_ms):
                self._pending = False
            else:
                log.warning("write-ahead log checkpoint after an erasure busy; retrying")
        if not self._pending:
            with self._done:
                self.position = self._seen
                self._done.notify_all()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Until the rounds reached `position` and any erasure up to it was checkpointed."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.position < position:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True


def wal_checkpoint_for(settings: Settings, engine: Engine) -> WalCheckpoint | None:
    """The erasure checkpoint of the embedded database (PostgreSQL needs none of its own)."""
    return None if settings.is_postgres else WalCheckpoint(engine)
