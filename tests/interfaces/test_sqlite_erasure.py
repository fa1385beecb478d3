"""The embedded database forgets what is erased: every SQLite connection zeroes what it deletes
(`PRAGMA secure_delete`), and the write-ahead log is checkpointed and truncated after a
projector round that applied an erasure. (The whole flow over HTTP, down to the raw bytes of the
files: tests/interfaces/test_http_privacy.py.)
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from domain.lead import Lead
from interfaces.database import ERASURE_TOPICS, WalCheckpoint, make_engine
from interfaces.services import Services, build_services
from interfaces.settings import Settings
from tests.conftest import settings_for


@pytest.fixture
def sqlite_settings(sqlite_template: Path, tmp_path: Path) -> Settings:
    target = tmp_path / "crm.db"
    shutil.copy(sqlite_template, target)
    return settings_for(f"sqlite:///{target}")


@pytest.fixture
def build_without_secure_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new sqlite3 connection starts with secure_delete off, as on builds compiled without
    SQLITE_SECURE_DELETE (this machine's Debian build defaults to on)."""
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    # the event store calls sqlite3.connect; SQLAlchemy's driver sqlite3.dbapi2.connect
    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)


def _wal(settings: Settings) -> Path:
    path = Path(settings.sqlite_path)
    return path.with_name(path.name + "-wal")


def _erasure(position: int) -> Notification:
    return Notification(
        id=position,
        originator_id=uuid4(),
        originator_version=2,
        topic=get_topic(Lead.PersonalDataErased),
        state=b"{}",
    )


def _other(position: int) -> Notification:
    return Notification(
        id=position, originator_id=uuid4(), originator_version=1, topic="x:Y", state=b"{}"
    )


@pytest.fixture
def services(sqlite_settings: Settings) -> Iterator[Services]:
    svc = build_services(sqlite_settings, with_runner=True)
    yield svc
    svc.close()


def test_every_sqlite_connection_zeroes_what_it_deletes_even_where_the_build_does_not(
    build_without_secure_delete: None, sqlite_settings: Settings
) -> None:
    probe = sqlite3.connect(":memory:")
    assert probe.execute("PRAGMA secure_delete").fetchone() == (0,)  # the simulated build
    probe.close()
    services = build_services(sqlite_settings, with_runner=True)
    try:
        # the read models' engine (the keyring of data keys and the projectors use it)
        with services.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1
        # the event store's own connections, the writer's and the readers'
        datastore = services.app.recorder.datastore  # type: ignore[attr-defined]
        for commit in (True, False):
            with datastore.transaction(commit=commit) as cursor:
                cursor.execute("PRAGMA secure_delete")
                assert cursor.fetchone()[0] == 1
    finally:
        services.close()


def test_the_write_ahead_log_is_emptied_after_a_round_that_applied_an_erasure(
    services: Services, sqlite_settings: Settings
) -> None:
    checkpoint = services.runner.after_round if services.runner else None
    assert isinstance(checkpoint, WalCheckpoint)
    assert get_topic(Lead.PersonalDataErased) in ERASURE_TOPICS
    with services.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (v TEXT)")
        conn.exec_driver_sql("INSERT INTO scratch VALUES ('Marisol Quintanilha')")
    wal = _wal(sqlite_settings)
    assert wal.stat().st_size > 0
    checkpoint([_other(7)])  # nothing erased: the log is left to SQLite's own checkpoints
    assert wal.stat().st_size > 0
    assert checkpoint.position == 7
    checkpoint([_other(8), _erasure(9), _other(10)])
    assert wal.stat().st_size == 0
    assert checkpoint.position == 10 and checkpoint.wait_for(10, timeout=0)
    with services.engine.connect() as conn:  # nothing was lost on the way into the file
        assert conn.exec_driver_sql("SELECT v FROM scratch").scalar_one() == "Marisol Quintanilha"


def test_a_checkpoint_kept_busy_by_a_reader_is_retried_on_the_next_rounds(
    sqlite_settings: Settings,
) -> None:
    engine = make_engine(sqlite_settings)
    checkpoint = WalCheckpoint(engine, wait_ms=50)  # waits 50 ms for the reader, not 30 s
    reader = sqlite3.connect(sqlite_settings.sqlite_path, isolation_level=None)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE scratch (v TEXT)")
            conn.exec_driver_sql("INSERT INTO scratch VALUES ('Marisol Quintanilha')")
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM scratch").fetchall()  # holds its snapshot of the log
        checkpoint([_erasure(5)])
        assert _wal(sqlite_settings).stat().st_size > 0
        assert checkpoint.position == 0 and not checkpoint.wait_for(5, timeout=0.05)
        checkpoint([])  # an idle round: still busy
        assert checkpoint.position == 0
        reader.execute("COMMIT")
        checkpoint([])  # the next idle round finishes it
        assert _wal(sqlite_settings).stat().st_size == 0
        assert checkpoint.position == 5 and checkpoint.wait_for(5, timeout=0)
        with engine.connect() as conn:  # the engine's own busy timeout is back
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
    finally:
        reader.close()
        engine.dispose()


def test_the_projector_runner_checkpoints_on_sqlite_only(
    services: Services, postgres_url: str
) -> None:
    assert isinstance(services.runner.after_round if services.runner else None, WalCheckpoint)
    on_postgres = build_services(settings_for(postgres_url), with_runner=True)
    try:
        assert on_postgres.runner is not None and on_postgres.runner.after_round is None
    finally:
        on_postgres.close()
