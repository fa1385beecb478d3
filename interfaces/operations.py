"""What an operator reads about a running installation, whatever the route that shows it.

The log head and each projector's position and lag, the database (backend, server version,
migrations, pools, event count) and the outbox queue. `/database/info` shows all of it, `/metrics`
the lag and the queue at every scrape, and `/health` may use the lag: every figure here is
computed on demand, never cached, and nothing here is scoped to one organization (operators see
totals, never a row of a tenant).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from projections.base import positions
from projections.outbox import FAILED, PENDING, SENDING, outbox

if TYPE_CHECKING:
    from application.store import CrmApplication
    from interfaces.services import Services

#: the outbox statuses that are still a queue: waiting, being sent, given up (needs a look);
#: `done` items are delivered and only grow, so they are not counted at every scrape
QUEUED_STATUSES = (PENDING, SENDING, FAILED)


class ProjectorLag(msgspec.Struct, frozen=True):
    name: str
    #: the last log position this projector applied
    position: int
    #: how many notifications of the log it has yet to read (log head - position)
    lag: int
    updated_at: datetime | None


class Migrations(msgspec.Struct, frozen=True):
    #: the head revision(s) of the migration scripts this code ships
    heads: list[str]
    #: the revision(s) the database is at (alembic_version)
    current: list[str]
    up_to_date: bool


class ReadModelPool(msgspec.Struct, frozen=True):
    """SQLAlchemy's pool of the read-model engine."""

    kind: str
    size: int | None
    checked_out: int | None
    idle: int | None
    overflow: int | None


class EventStorePool(msgspec.Struct, frozen=True):
    """The event store's psycopg pool (PostgreSQL only)."""

    min_size: int
    max_size: int
    size: int
    idle: int
    requests_waiting: int


class DatabaseInfo(msgspec.Struct, frozen=True):
    backend: str
    server_version: str
    migrations: Migrations
    read_model_pool: ReadModelPool | None
    event_store_pool: EventStorePool | None
    #: the highest notification id of the event log (its last position)
    log_head: int
    #: PostgreSQL: the statistics' live-row count of the events table (pg_stat_user_tables,
    #: no table scan; it trails commits by up to a second); null on SQLite
    event_count_estimate: int | None
    #: SQLite: an exact count(*) of the events table; null on PostgreSQL
    event_count_exact: int | None
    projectors: list[ProjectorLag]


def log_head(app: CrmApplication) -> int:
    return app.recorder.max_notification_id() or 0


def projector_lags(engine: Engine, app: CrmApplication) -> tuple[int, list[ProjectorLag]]:
    """The log head and every projector's position and lag, by name.

    Positions are read before the head, so a lag is never understated by a batch committed in
    between (at worst it is overstated by the events saved meanwhile).
    """
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(positions.c.projection_name, positions.c.position, positions.c.updated_at)
        ).all()
    head = log_head(app)
    lags = [
        ProjectorLag(str(name), int(position), max(0, head - int(position)), updated)
        for name, position, updated in sorted(rows)
    ]
    return head, lags


def outbox_depth(conn: Connection) -> dict[str, int]:
    """Outbox items per queued status, every organization summed (0 for an absent status)."""
    query = (
        sa.select(outbox.c.status, sa.func.count())
        .where(outbox.c.status.in_(QUEUED_STATUSES))
        .group_by(outbox.c.status)
    )
    found = {str(status): int(n) for status, n in conn.execute(query)}
    return {status: found.get(status, 0) for status in QUEUED_STATUSES}


@cache
def migration_heads() -> tuple[str, ...]:
    """The scripts' head revision(s): read once per process (the code does not change)."""
    from interfaces.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return tuple(sorted(ScriptDirectory.from_config(config).get_heads()))


def migrations(conn: Connection) -> Migrations:
    heads = list(migration_heads())
    current = sorted(MigrationContext.configure(conn).get_current_heads())
    return Migrations(heads, current, set(current) == set(heads))


def read_model_pool(engine: Engine) -> ReadModelPool:
    pool: Any = engine.pool
    kind = type(pool).__name__

    def figure(name: str) -> int | None:
        method = getattr(pool, name, None)
        return int(method()) if callable(method) else None

    overflow = figure("overflow")
    return ReadModelPool(
        kind,
        figure("size"),
        figure("checkedout"),
        figure("checkedin"),
        None if overflow is None else max(0, overflow),
    )


def event_store_pool(app: CrmApplication) -> EventStorePool | None:
    """The psycopg pool's figures, or None where the event store has none (SQLite)."""
    from psycopg_pool import ConnectionPool

    pool = getattr(getattr(app.recorder, "datastore", None), "pool", None)
    if not isinstance(pool, ConnectionPool):
        return None
    stats = pool.get_stats()
    return EventStorePool(
        min_size=stats.get("pool_min", 0),
        max_size=stats.get("pool_max", 0),
        size=stats.get("pool_size", 0),
        idle=stats.get("pool_available", 0),
        requests_waiting=stats.get("requests_waiting", 0),
    )


def _events_table(app: CrmApplication) -> str:
    return str(getattr(app.recorder, "events_table_name", "stored_events"))


def database_info(services: Services) -> DatabaseInfo:
    engine, app = services.engine, services.app
    with engine.connect() as conn:
        backend = conn.dialect.name
        table = _events_table(app)
        if backend == "postgresql":
            version = str(conn.exec_driver_sql("SHOW server_version").scalar_one())
            estimate = conn.execute(
                sa.text(
                    "SELECT n_live_tup FROM pg_stat_user_tables "
                    "WHERE relid = to_regclass(:table)::oid"
                ),
                {"table": table},
            ).scalar()
            counts: tuple[int | None, int | None] = (
                None if estimate is None else int(estimate),
                None,
            )
        else:
            version = sqlite3.sqlite_version
            quoted = conn.dialect.identifier_preparer.quote(table)
            exact = conn.exec_driver_sql(f"SELECT count(*) FROM {quoted}").scalar_one()  # noqa: S608
            counts = (None, int(exact))
        migrated = migrations(conn)
    head, lags = projector_lags(engine, app)
    return DatabaseInfo(
        backend=backend,
        server_version=version,
        migrations=migrated,
        read_model_pool=read_model_pool(engine),
        event_store_pool=event_store_pool(app),
        log_head=head,
        event_count_estimate=counts[0],
        event_count_exact=counts[1],
        projectors=lags,
    )
