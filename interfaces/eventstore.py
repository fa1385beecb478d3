"""Event store recorders whose stored events carry their organization id.

Why a tenant column: every stored event belongs to exactly one organization
(tenant). Reading one organization's history - a tenant export, rebuilding one
tenant's read models, an audit - must not mean decoding every event of every
tenant. So the stored events table gets a real ``organization_id`` column,
written in the same INSERT as the event (same transaction, no second write to
forget), and an index ``(organization_id, notification_id)``: equality on the
tenant plus a range and the order on the notification id is one keyset index
scan, whose cost depends on the page size, not on the size of the table.

Where the value comes from: ``Application.save(*objs, **kwargs)`` passes its
keyword arguments down to ``recorder.insert_events(stored_events, **kwargs)``,
so the application calls ``save(agg, organization_ids={agg.id: org_id})``. A
missing mapping or originator id raises ``ValueError`` before anything is
written: an event without a tenant is a bug, never a default.

Why not a generated column computed from the event state: only events whose
state carries ``organization_id`` would get a value, and a compressed or
encrypted state (``COMPRESSOR_TOPIC`` / ``CIPHER_TOPIC``) is opaque bytes to
the database, so the column would silently be NULL or the insert would fail.

Plug the recorders in with ``APPLICATION_RECORDER_TOPIC=recorder_topic(...)``.
Tables created by the library's own recorder lack the column: ``create_table``
then fails on the index, it does not migrate. These classes override library
internals (insert statements, create statements); re-run
``tests/interfaces/test_eventstore.py`` (the library's conformance cases) on
every ``eventsourcing`` upgrade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType, get_topic, retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

ORGANIZATION_IDS_KWARG: Final = "organization_ids"
#: new per-subject data keys [(organization id, subject id, wrapped key)] written in the same
#: transaction as the events sealed with them (see interfaces/privacy.py): a key exists exactly
#: when something was stored under it, and making one costs no commit of its own
SUBJECT_KEYS_KWARG: Final = "subject_keys"
SUBJECT_KEYS_TABLE: Final = "privacy_subject_keys"

# Largest bigint (and SQLite INTEGER): "no stop" as a value keeps a single
# statement, so PostgreSQL can prepare it once and plan it the same way.
_NO_STOP: Final = 2**63 - 1

_F = TypeVar("_F", bound=Callable[..., Any])


def _retry_on_disconnect(func: _F) -> _F:
    """Retry as the library's own read methods do when a pooled connection died."""
    # The library's retry() is untyped; the cast keeps mypy --strict useful.
    decorator = retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    return cast("_F", decorator(func))


def organization_ids_for(
    stored_events: Sequence[StoredEvent], kwargs: Mapping[str, Any]
) -> list[UUID]:
    """Return the organization id of each stored event, in order, or raise."""
    organization_ids = kwargs.get(ORGANIZATION_IDS_KWARG)
    if not isinstance(organization_ids, Mapping):
        msg = (
            "insert_events() needs organization_ids={originator id: organization id}"
            " (pass it to Application.save()); got "
            f"{type(organization_ids).__name__}"
        )
        raise ValueError(msg)
    missing = {
        str(e.originator_id) for e in stored_events if e.originator_id not in organization_ids
    }
    if missing:
        msg = f"no organization id for originator id(s): {', '.join(sorted(missing))}"
        raise ValueError(msg)
    return [_as_uuid(organization_ids[e.originator_id]) for e in stored_events]


def _as_uuid(organization_id: object) -> UUID:
    # A str would be written as-is on SQLite and compare unequal to UUIDs later.
    if not isinstance(organization_id, UUID):
        msg = f"organization ids must be uuid.UUID, got {organization_id!r}"
        raise TypeError(msg)
    return organization_id


class TenantPostgresApplicationRecorder(PostgresApplicationRecorder):
    """PostgreSQL application recorder with an indexed ``organization_id`` column."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
    ) -> None:
        # The db-function insert path calls a plpgsql function with the
        # library's own INSERT, which knows nothing of the tenant column.
        if datastore.enable_db_functions:
            msg = (
                f"{type(self).__name__} does not support "
                "POSTGRES_ENABLE_DB_FUNCTIONS: its insert bypasses organization_id"
            )
            raise ValueError(msg)
        super().__init__(datastore, events_table_name=events_table_name)
        self.organization_index_name = f"{self.events_table_name}_organization_id_idx"
        # PostgreSQL would silently truncate a longer name, risking a clash.
        self.check_identifier_length(self.organization_index_name)
        self._replace_create_statements()
        self.insert_events_statement = self._tenant_insert_statement()
        self.select_organization_notifications_statement = self._select_organization_statement()

    def _format(self, template: str, **names: str) -> Composed:
        return SQL(template).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            **{key: Identifier(value) for key, value in names.items()},
        )

    def _replace_create_statements(self) -> None:
        self.sql_create_statements[self.create_table_statement_index] = self._format(
            "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
            "originator_id {originator_id_type} NOT NULL, "
            "originator_version bigint NOT NULL, "
            "topic text, "
            "state bytea, "
            "notification_id bigserial, "
            "organization_id uuid NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version)) "
            # Same storage parameters as the library's table.
            "WITH ("
            "    autovacuum_enabled = true,"
            "    autovacuum_vacuum_threshold = 100000000,"
            "    autovacuum_vacuum_scale_factor = 0.5,"
            "    autovacuum_analyze_threshold = 1000,"
            "    autovacuum_analyze_scale_factor = 0.01"
            ")",
            originator_id_type=self.datastore.originator_id_type,
        )
        self.sql_create_statements.append(
            self._format(
                "CREATE INDEX IF NOT EXISTS {index} "
                "ON {schema}.{table} (organization_id, notification_id)",
                index=self.organization_index_name,
            )
        )
        # The insert function is refused above; don't create (or replace,
        # schema-wide) a function that would insert without the tenant.
        self.sql_create_statements = [
            s
            for s in self.sql_create_statements
            if s is not self.sql_create_pg_function_insert_events
        ]

    def _tenant_insert_statement(self) -> Composed:
        # Two-array unnest pairs each composite stored event with its tenant.
        return self._format(
            "INSERT INTO {schema}.{table} ("
            "originator_id, originator_version, topic, state, organization_id) "
            "SELECT originator_id, originator_version, topic, state, organization_id "
            "FROM unnest(%s::{schema}.{stored_event_type}[], %s::uuid[]) "
            "AS e(originator_id, originator_version, topic, state, organization_id) "
            "RETURNING notification_id",
            stored_event_type=self.stored_event_type_name,
        )

    def _select_organization_statement(self) -> Composed:
        return self._format(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} "
            # Casts: psycopg sends small ints as int2; fixed types keep one
            # prepared statement and a plain bigint comparison on the index.
            "WHERE organization_id = %s::uuid AND notification_id > %s::bigint "
            "AND notification_id <= %s::bigint "
            "ORDER BY notification_id LIMIT %s::bigint"
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Validate before a connection is taken: a bad call writes nothing.
        organization_ids_for(stored_events, kwargs)
        result = super().insert_events(stored_events, **kwargs)
        return cast("Sequence[int] | None", result)

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        organization_ids = organization_ids_for(stored_events, kwargs)
        # Keep the base class's behaviour: the EXCLUSIVE table lock makes
        # insert order = commit order; NOTIFY wakes subscriptions.
        self._lock_table(curs)
        self._notify_channel(curs)
        pg_stored_events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        keys = kwargs.get(SUBJECT_KEYS_KWARG) or ()
        if keys:
            # first (the base class reads the events insert's RETURNING from this cursor);
            # a plain INSERT: a subject given a key meanwhile fails the whole transaction
            curs.execute(
                self._format(
                    "INSERT INTO {schema}.{keys} "
                    "(organization_id, subject_id, wrapped_key, created_at) "
                    "SELECT o, s, w, now() FROM unnest(%s::uuid[], %s::uuid[], %s::bytea[]) "
                    "AS k(o, s, w)",
                    keys=SUBJECT_KEYS_TABLE,
                ),
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
            )
        # not prepared after a key insert: when that insert fails (a subject given a key by a
        # concurrent commit), the pipeline skips this statement's PREPARE while psycopg records
        # it as prepared, and the pooled connection then fails every later use of it with
        # "prepared statement … does not exist" (two concurrent captures of one lead id did it)
        curs.execute(
            self.insert_events_statement,
            (pg_stored_events, organization_ids),
            prepare=False if keys else None,
        )

    @_retry_on_disconnect
    def select_organization_notifications(
        self,
        organization_id: UUID,
        start: int = 0,
        limit: int = 1000,
        stop: int | None = None,
    ) -> list[Notification]:
        """Return notifications of one organization with start < id <= stop."""
        params = (organization_id, start, _NO_STOP if stop is None else stop, limit)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_organization_notifications_statement, params, prepare=True)
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def organization_of(self, originator_id: UUID) -> UUID | None:
        """The organization owning an aggregate, or None if no such aggregate was stored."""
        statement = (
            f"SELECT organization_id FROM {self.events_table_name} "  # noqa: S608
            "WHERE originator_id = %s LIMIT 1"
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (originator_id,), prepare=True)
            row = curs.fetchone()
        return None if row is None else UUID(str(row["organization_id"]))


class TenantSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder with an indexed ``organization_id`` column.

    The library's SQLite notification id is the table's implicit ``rowid``
    (there is no ``notification_id`` column), and every SQLite index ends
    with the rowid, so an index on ``(organization_id)`` already serves
    ``WHERE organization_id=? AND rowid>? ORDER BY rowid``.
    """

    def __init__(
        self,
        datastore: SQLiteDatastore,
        events_table_name: str = "stored_events",
    ) -> None:
        super().__init__(datastore, events_table_name)
        # The table name comes from configuration, as in the base class; SQLite
        # cannot bind identifiers, hence the f-strings (S608).
        table = self.events_table_name
        # The base inserts positionally (VALUES (?,?,?,?)): name the columns.
        self.insert_events_statement = (
            f"INSERT INTO {table} "  # noqa: S608
            "(originator_id, originator_version, topic, state, organization_id) "
            "VALUES (?,?,?,?,?)"
        )
        self.select_organization_notifications_statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {table} WHERE organization_id=? AND rowid>? AND rowid<=? "
            "ORDER BY rowid LIMIT ?"
        )

    @property
    def organization_index_name(self) -> str:
        # A property: the base __init__ builds the create statements first.
        return f"{self.events_table_name}_organization_id_idx"

    def construct_create_table_statements(self) -> list[str]:
        table = self.events_table_name
        return [
            f"CREATE TABLE IF NOT EXISTS {table} ("
            "originator_id TEXT, "
            "originator_version INTEGER, "
            "topic TEXT, "
            "state BLOB, "
            "organization_id TEXT NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version))",
            f"CREATE INDEX IF NOT EXISTS {self.organization_index_name} "
            f"ON {table} (organization_id)",
        ]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Validate before the write transaction begins: a bad call writes nothing.
        organization_ids_for(stored_events, kwargs)
        return super().insert_events(stored_events, **kwargs)

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        organization_ids = organization_ids_for(stored_events, kwargs)
        notification_ids: list[int] = []
        for event, organization_id in zip(stored_events, organization_ids, strict=True):
            c.execute(
                self.insert_events_statement,
                (
                    _sqlite_originator_id(event.originator_id),
                    event.originator_version,
                    event.topic,
                    event.state,
                    str(organization_id),
                ),
            )
            notification_ids.append(c.lastrowid)
        keys = kwargs.get(SUBJECT_KEYS_KWARG) or ()
        if keys:
            # the columns as SQLAlchemy stores them on SQLite: hex uuids, naive UTC text
            at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            c.executemany(
                f"INSERT INTO {SUBJECT_KEYS_TABLE} "  # noqa: S608
                "(organization_id, subject_id, wrapped_key, created_at) VALUES (?,?,?,?)",
                [(o.hex, s.hex, w, at) for o, s, w in keys],
            )
        return notification_ids

    def select_organization_notifications(
        self,
        organization_id: UUID,
        start: int = 0,
        limit: int = 1000,
        stop: int | None = None,
    ) -> list[Notification]:
        """Return notifications of one organization with start < id <= stop."""
        params = (
            str(organization_id),
            start,
            _NO_STOP if stop is None else stop,
            limit,
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.select_organization_notifications_statement, params)
            return [
                Notification(
                    id=row["rowid"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]

    def organization_of(self, originator_id: UUID) -> UUID | None:
        """The organization owning an aggregate, or None if no such aggregate was stored."""
        statement = (
            f"SELECT organization_id FROM {self.events_table_name} "  # noqa: S608
            "WHERE originator_id = ? LIMIT 1"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, (_sqlite_originator_id(originator_id),))
            row = c.fetchone()
        return None if row is None else UUID(row["organization_id"])


def _sqlite_originator_id(originator_id: UUID | str) -> str:
    # Same encoding as the library (hex, no hyphens), or select_events breaks.
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class SecureDeleteSQLiteConnectionPool(SQLiteConnectionPool):
    """The library's SQLite pool, each new connection with `PRAGMA secure_delete=ON`.

    SQLite then overwrites deleted content with zeros (and zeroes freed pages) instead of
    leaving it in the file: an erased person's scrubbed read-model rows and destroyed data key
    leave no bytes behind. Some SQLite builds (Debian's) default to it, most don't.
    """

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        cursor = connection.cursor()
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.sqlite_cursor.close()
        return connection


class SecureDeleteSQLiteFactory(SQLiteFactory):
    """`PERSISTENCE_MODULE` for the library's SQLite store with secure_delete on every connection.

    The library's factory builds its datastore and pool itself (no class to configure): the
    pool, which has opened no connection yet, is replaced by an identical one of the class above.
    """

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        plain = self.datastore.pool
        self.datastore.pool = SecureDeleteSQLiteConnectionPool(
            db_name=plain.db_name,
            lock_timeout=plain.lock_timeout,
            pool_size=plain.pool_size,
            max_overflow=plain.max_overflow,
            pool_timeout=plain.pool_timeout,
            max_age=plain.max_age,
            pre_ping=plain.pre_ping,
        )
        plain.close()


_RECORDER_CLASSES: Final[Mapping[str, type[ApplicationRecorder]]] = {
    "eventsourcing.postgres": TenantPostgresApplicationRecorder,
    "eventsourcing.sqlite": TenantSQLiteApplicationRecorder,
}


def recorder_topic(persistence_module: str) -> str:
    """Return the APPLICATION_RECORDER_TOPIC for the given PERSISTENCE_MODULE."""
    try:
        recorder_class = _RECORDER_CLASSES[persistence_module]
    except KeyError:
        supported = ", ".join(sorted(_RECORDER_CLASSES))
        msg = f"no tenant recorder for {persistence_module!r}; supported: {supported}"
        raise ValueError(msg) from None
    return get_topic(recorder_class)
