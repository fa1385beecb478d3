"""Tenant recorders: the library's conformance cases on both backends, then the tenant column.

PostgreSQL tests use their own database, ``crm_test_eventstore`` (created when
missing). They skip when PostgreSQL is unreachable, except under ``CI=true``,
where they fail instead.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import TestCase
from uuid import UUID, uuid4

import psycopg
import psycopg.errors
import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)
from eventsourcing.utils import resolve_topic
from psycopg.sql import SQL, Identifier

from interfaces.eventstore import (
    TenantPostgresApplicationRecorder,
    TenantSQLiteApplicationRecorder,
    recorder_topic,
)

PG_DBNAME = "crm_test_eventstore"
PG_HOST = os.environ.get("POSTGRES_HOST", "127.0.0.1")
PG_PORT = os.environ.get("POSTGRES_PORT", "5432")
PG_USER = os.environ.get("POSTGRES_USER", "postgres")
PG_PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")
TABLE = "tenant_test_events"

ORG_A = UUID("00000000-0000-4000-8000-00000000000a")
ORG_B = UUID("00000000-0000-4000-8000-00000000000b")
# Tenant of every event the library's conformance cases write (see below).
CONFORMANCE_ORG = UUID("00000000-0000-4000-8000-0000000000cc")

TenantRecorder = TenantPostgresApplicationRecorder | TenantSQLiteApplicationRecorder


# --- PostgreSQL availability -------------------------------------------------


@functools.cache
def _postgres_problem() -> str | None:
    """Create the test database if missing; say why PostgreSQL is unusable, or None."""
    try:
        with psycopg.connect(
            dbname="postgres",
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            password=PG_PASSWORD,
            autocommit=True,
            connect_timeout=3,
        ) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DBNAME,)
            ).fetchone()
            if found is None:
                conn.execute(SQL("CREATE DATABASE {}").format(Identifier(PG_DBNAME)))
    except psycopg.errors.DuplicateDatabase:
        return None  # another test process created it first
    except psycopg.OperationalError as e:
        return str(e).strip()
    return None


def require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    # CI must prove the PostgreSQL path; a skip there would hide a broken setup.
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL unreachable under CI=true: {problem}")
    pytest.skip(f"PostgreSQL unreachable: {problem}")


def new_pg_datastore() -> PostgresDatastore:
    require_postgres()
    return PostgresDatastore(
        PG_DBNAME, PG_HOST, PG_PORT, PG_USER, PG_PASSWORD, pool_size=4, max_overflow=4
    )


def drop_pg_table(datastore: PostgresDatastore, table: str) -> None:
    with datastore.transaction(commit=True) as curs:
        curs.execute(
            SQL("DROP TABLE IF EXISTS {}.{}").format(
                Identifier(datastore.schema), Identifier(table)
            )
        )


# --- The library's conformance cases ------------------------------------------
#
# The library's cases call insert_events(events) without organization_ids,
# which production code rightly refuses. Rather than weaken production code
# with a default tenant, these test-only subclasses override only the public
# entry point to fill in one fixed tenant when the caller gave none: every
# statement, lock and NOTIFY under test is the production one.


def with_default_organization(
    stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
) -> dict[str, Any]:
    default = {e.originator_id: CONFORMANCE_ORG for e in stored_events}
    return {"organization_ids": default, **kwargs}


class PostgresRecorderUnderTest(TenantPostgresApplicationRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        kwargs = with_default_organization(stored_events, kwargs)
        return super().insert_events(stored_events, **kwargs)


class SQLiteRecorderUnderTest(TenantSQLiteApplicationRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        kwargs = with_default_organization(stored_events, kwargs)
        return super().insert_events(stored_events, **kwargs)


class PostgresTableCase(TestCase):
    """Fresh datastore and a dropped table around each test, like the library's tests."""

    def setUp(self) -> None:
        super().setUp()
        self.datastore = new_pg_datastore()
        drop_pg_table(self.datastore, TABLE)

    def tearDown(self) -> None:
        drop_pg_table(self.datastore, TABLE)
        self.datastore.close()
        super().tearDown()

    def create_recorder(self) -> PostgresRecorderUnderTest:
        recorder = PostgresRecorderUnderTest(self.datastore, events_table_name=TABLE)
        recorder.create_table()
        return recorder


@pytest.mark.postgres
class TestPostgresApplicationRecorderConformance(
    PostgresTableCase, ApplicationRecorderTestCase[PostgresRecorderUnderTest]
):
    def test_insert_subscribe(self) -> None:
        # Optional in the library; it proves LISTEN/NOTIFY still works.
        self.optional_test_insert_subscribe()


@pytest.mark.postgres
class TestPostgresNonInterleavingNotificationIDs(
    PostgresTableCase, NonInterleavingNotificationIDsBaseCase
):
    pass


@pytest.mark.postgres
class TestPostgresTableLockIsKept(PostgresTableCase):
    def test_second_insert_waits_for_table_lock(self) -> None:
        self.datastore.lock_timeout = 1
        recorder = self.create_recorder()
        first, second = stored_events_of(uuid4(), 1), stored_events_of(uuid4(), 1)
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            with self.datastore.transaction(commit=True) as curs:
                recorder._insert_stored_events(
                    curs, first, organization_ids={first[0].originator_id: ORG_A}
                )
                locked.set()
                release.wait(timeout=5)

        holder = threading.Thread(target=hold_lock, daemon=True)
        holder.start()
        try:
            assert locked.wait(timeout=5)
            with (
                pytest.raises(OperationalError, match="lock timeout"),
                self.datastore.transaction(commit=True) as curs,
            ):
                recorder._insert_stored_events(
                    curs, second, organization_ids={second[0].originator_id: ORG_B}
                )
        finally:
            release.set()
            holder.join(timeout=10)


class SQLiteCase(TestCase):
    db_name: str

    def create_recorder(self) -> SQLiteRecorderUnderTest:
        recorder = SQLiteRecorderUnderTest(SQLiteDatastore(self.db_name))
        recorder.create_table()
        return recorder


class SQLiteInMemoryCase(SQLiteCase):
    def setUp(self) -> None:
        # A shared-cache memory database, so the pool's connections see one
        # database; a unique name per test keeps tests apart.
        self.db_name = f"file:{uuid4().hex}?mode=memory&cache=shared"


class SQLiteFileCase(SQLiteCase):
    @pytest.fixture(autouse=True)
    def _db_file(self, tmp_path: Path) -> None:
        self.db_name = f"file:{tmp_path / 'events.db'}"


class TestSQLiteInMemoryApplicationRecorderConformance(
    SQLiteInMemoryCase, ApplicationRecorderTestCase[SQLiteRecorderUnderTest]
):
    pass


class TestSQLiteFileApplicationRecorderConformance(
    SQLiteFileCase, ApplicationRecorderTestCase[SQLiteRecorderUnderTest]
):
    pass


class TestSQLiteFileNonInterleavingNotificationIDs(
    SQLiteFileCase, NonInterleavingNotificationIDsBaseCase
):
    pass


# --- Tenant column behaviour, on both backends ----------------------------------


def stored_events_of(originator_id: UUID, count: int, state: bytes = b"{}") -> list[StoredEvent]:
    return [
        StoredEvent(
            originator_id=originator_id,
            originator_version=version,
            topic="crm.test:Happened",
            state=state,
        )
        for version in range(1, count + 1)
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres":
        require_postgres()
    return name


@pytest.fixture
def recorder(backend: str, tmp_path: Path) -> Iterator[TenantRecorder]:
    if backend == "sqlite":
        yield tenant_sqlite_recorder(f"file:{tmp_path / 'events.db'}")
        return
    datastore = new_pg_datastore()
    drop_pg_table(datastore, TABLE)
    pg_recorder = TenantPostgresApplicationRecorder(datastore, events_table_name=TABLE)
    pg_recorder.create_table()
    yield pg_recorder
    drop_pg_table(datastore, TABLE)
    datastore.close()


def tenant_sqlite_recorder(db_name: str) -> TenantSQLiteApplicationRecorder:
    sqlite_recorder = TenantSQLiteApplicationRecorder(SQLiteDatastore(db_name))
    sqlite_recorder.create_table()
    return sqlite_recorder


def raw_rows(recorder: TenantRecorder, table: str) -> list[tuple[UUID, int, Any]]:
    """(originator id, version, organization_id as stored) of every row."""
    statement = f"SELECT originator_id, originator_version, organization_id FROM {table}"
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(statement)
        return [
            (
                UUID(str(row["originator_id"])),
                row["originator_version"],
                row["organization_id"],
            )
            for row in curs.fetchall()
        ]


def test_insert_writes_organization_of_every_event(recorder: TenantRecorder) -> None:
    a1, a2, b1 = uuid4(), uuid4(), uuid4()
    events = stored_events_of(a1, 2) + stored_events_of(b1, 3) + stored_events_of(a2, 1)

    recorder.insert_events(events, organization_ids={a1: ORG_A, a2: ORG_A, b1: ORG_B})

    expected = {a1: ORG_A, a2: ORG_A, b1: ORG_B}
    rows = raw_rows(recorder, recorder.events_table_name)
    assert len(rows) == len(events)
    for originator_id, _, stored in rows:
        # SQLite keeps the canonical hyphenated string; PostgreSQL a uuid.
        assert str(stored) == str(expected[originator_id])


def test_select_organization_notifications_pages_one_tenant(
    recorder: TenantRecorder,
) -> None:
    ids = insert_interleaved(recorder, saves=6)  # org A, org B, org A, ...
    org_a_ids = [nid for nid, org in ids if org == ORG_A]
    assert len(org_a_ids) == 6

    everything = recorder.select_organization_notifications(ORG_A)
    assert [n.id for n in everything] == org_a_ids
    assert all(isinstance(n, Notification) for n in everything)

    first = recorder.select_organization_notifications(ORG_A, limit=4)
    second = recorder.select_organization_notifications(ORG_A, start=first[-1].id)
    assert [n.id for n in first + second] == org_a_ids  # start is exclusive

    window = recorder.select_organization_notifications(
        ORG_A, start=org_a_ids[0], stop=org_a_ids[3]
    )
    assert [n.id for n in window] == org_a_ids[1:4]  # stop is inclusive
    assert recorder.select_organization_notifications(uuid4()) == []


def insert_interleaved(recorder: TenantRecorder, saves: int) -> list[tuple[int, UUID]]:
    """Alternate two tenants, one aggregate of two events per save."""
    written: list[tuple[int, UUID]] = []
    for i in range(saves):
        org, originator_id = (ORG_A if i % 2 == 0 else ORG_B), uuid4()
        notification_ids = recorder.insert_events(
            stored_events_of(originator_id, 2), organization_ids={originator_id: org}
        )
        assert notification_ids is not None
        written += [(nid, org) for nid in notification_ids]
    return written


def test_notification_carries_the_event(recorder: TenantRecorder) -> None:
    originator_id = uuid4()
    recorder.insert_events(
        stored_events_of(originator_id, 2, state=b'{"x": 1}'),
        organization_ids={originator_id: ORG_B},
    )

    notifications = recorder.select_organization_notifications(ORG_B)

    assert [(n.originator_id, n.originator_version) for n in notifications] == [
        (originator_id, 1),
        (originator_id, 2),
    ]
    assert notifications[0].state == b'{"x": 1}'
    assert notifications[0].topic == "crm.test:Happened"


@pytest.mark.parametrize("case", ["no-kwarg", "none", "one-originator-missing"])
def test_missing_organization_raises_and_writes_nothing(
    recorder: TenantRecorder, case: str
) -> None:
    known, unknown = uuid4(), uuid4()
    events = stored_events_of(known, 1) + stored_events_of(unknown, 1)
    cases: dict[str, dict[str, Any]] = {
        "no-kwarg": {},
        "none": {"organization_ids": None},
        "one-originator-missing": {"organization_ids": {known: ORG_A}},
    }

    with pytest.raises(ValueError, match="organization"):
        recorder.insert_events(events, **cases[case])

    assert recorder.max_notification_id() is None
    assert recorder.select_events(known) == []


def test_non_uuid_organization_id_is_refused(recorder: TenantRecorder) -> None:
    originator_id = uuid4()
    with pytest.raises(TypeError, match="uuid"):
        recorder.insert_events(
            stored_events_of(originator_id, 1),
            organization_ids={originator_id: str(ORG_A)},
        )
    assert recorder.max_notification_id() is None


# --- Indexes: the tenant query is a keyset index scan ---------------------------


@pytest.mark.postgres
def test_postgres_plan_uses_organization_index() -> None:
    datastore = new_pg_datastore()
    drop_pg_table(datastore, TABLE)
    try:
        pg_recorder = TenantPostgresApplicationRecorder(datastore, events_table_name=TABLE)
        pg_recorder.create_table()
        insert_realistic_load(pg_recorder, events=5_000, organizations=50)
        analyze(pg_recorder)
        # A page shorter than the tenant's 100 events, then one covering all.
        page = explain_organization_query(pg_recorder, ORG_A, limit=50)
        whole = explain_organization_query(pg_recorder, ORG_A, limit=1000)
    finally:
        drop_pg_table(datastore, TABLE)
        datastore.close()

    index = pg_recorder.organization_index_name
    # Keyset scan: the index gives tenant, range and order; nothing to sort.
    assert f"Index Scan using {index}" in page, page
    assert "Sort" not in page, page
    # All of a small tenant: a bitmap scan of the same index (sorting its
    # 100 rows) is fine; reading the whole table is not.
    assert index in whole, whole
    assert "Seq Scan" not in page + whole, whole


def insert_realistic_load(recorder: TenantRecorder, events: int, organizations: int) -> None:
    """Saves of 5 events each, tenants round-robin, JSON-sized states."""
    orgs = [ORG_A, *(uuid4() for _ in range(organizations - 1))]
    state = b'{"name": "' + b"x" * 250 + b'", "actor": "someone"}'
    batch: list[StoredEvent] = []
    organization_ids: dict[UUID, UUID] = {}
    for i in range(events // 5):
        originator_id = uuid4()
        batch += stored_events_of(originator_id, 5, state=state)
        organization_ids[originator_id] = orgs[i % organizations]
        if len(batch) >= 500:
            recorder.insert_events(batch, organization_ids=organization_ids)
            batch, organization_ids = [], {}
    if batch:
        recorder.insert_events(batch, organization_ids=organization_ids)


def analyze(recorder: TenantPostgresApplicationRecorder) -> None:
    with recorder.datastore.get_connection() as conn:
        conn.execute(
            SQL("ANALYZE {}.{}").format(Identifier(recorder.datastore.schema), Identifier(TABLE))
        )


def explain_organization_query(
    recorder: TenantPostgresApplicationRecorder, organization_id: UUID, limit: int
) -> str:
    """EXPLAIN the very statement select_organization_notifications runs."""
    statement = SQL("EXPLAIN ") + recorder.select_organization_notifications_statement
    with recorder.datastore.get_connection() as conn:
        rows = conn.execute(statement, (organization_id, 0, 2**63 - 1, limit))
        return "\n".join(str(row["QUERY PLAN"]) for row in rows.fetchall())


def test_sqlite_plan_uses_organization_index(tmp_path: Path) -> None:
    sqlite_recorder = tenant_sqlite_recorder(f"file:{tmp_path / 'events.db'}")
    insert_realistic_load(sqlite_recorder, events=1_000, organizations=50)

    with sqlite_recorder.datastore.transaction(commit=False) as c:
        c.execute("ANALYZE")
        c.execute(
            "EXPLAIN QUERY PLAN " + sqlite_recorder.select_organization_notifications_statement,
            (str(ORG_A), 0, 2**63 - 1, 100),
        )
        plan = "\n".join(str(row["detail"]) for row in c.fetchall())

    assert sqlite_recorder.organization_index_name in plan, plan
    # The index ends with the rowid, so no sort step is needed.
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.postgres
def test_postgres_table_has_tenant_column_and_index() -> None:
    datastore = new_pg_datastore()
    drop_pg_table(datastore, TABLE)
    try:
        TenantPostgresApplicationRecorder(datastore, events_table_name=TABLE).create_table()
        with datastore.transaction(commit=False) as curs:
            column = curs.execute(
                "SELECT data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s AND column_name = 'organization_id'",
                (TABLE,),
            ).fetchone()
            index = curs.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s",
                (TABLE, f"{TABLE}_organization_id_idx"),
            ).fetchone()
    finally:
        drop_pg_table(datastore, TABLE)
        datastore.close()

    assert column == {"data_type": "uuid", "is_nullable": "NO"}
    assert index is not None
    assert "(organization_id, notification_id)" in index["indexdef"]


def test_postgres_refuses_db_functions() -> None:
    # No connection is made: the check comes before the base class's setup.
    datastore = PostgresDatastore(
        PG_DBNAME, PG_HOST, PG_PORT, PG_USER, PG_PASSWORD, enable_db_functions=True
    )
    try:
        with pytest.raises(ValueError, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
            TenantPostgresApplicationRecorder(datastore)
    finally:
        datastore.close()


# --- Composition: recorder_topic and an Application end to end ------------------


def test_recorder_topic_resolves_to_tenant_recorders() -> None:
    assert (
        resolve_topic(recorder_topic("eventsourcing.postgres")) is TenantPostgresApplicationRecorder
    )
    assert resolve_topic(recorder_topic("eventsourcing.sqlite")) is TenantSQLiteApplicationRecorder
    with pytest.raises(ValueError, match=r"eventsourcing\.popo"):
        recorder_topic("eventsourcing.popo")


class Deal(Aggregate):
    @event("Opened")
    def __init__(self, title: str) -> None:
        self.title = title

    @event("Renamed")
    def rename(self, title: str) -> None:
        self.title = title


class TenantEventStoreTestApp(Application[UUID]):
    pass


@pytest.fixture
def app(backend: str, tmp_path: Path) -> Iterator[TenantEventStoreTestApp]:
    env = app_env(backend, tmp_path)
    table = f"{TenantEventStoreTestApp.name.lower()}_events"
    if backend == "postgres":
        with new_pg_datastore() as datastore:
            drop_pg_table(datastore, table)
    application = TenantEventStoreTestApp(env=env)
    yield application
    application.close()
    if backend == "postgres":
        with new_pg_datastore() as datastore:
            drop_pg_table(datastore, table)


def app_env(backend: str, tmp_path: Path) -> Mapping[str, str]:
    module = f"eventsourcing.{backend}"
    env = {"PERSISTENCE_MODULE": module, "APPLICATION_RECORDER_TOPIC": recorder_topic(module)}
    if backend == "sqlite":
        return {**env, "SQLITE_DBNAME": f"file:{tmp_path / 'app.db'}"}
    return {
        **env,
        "POSTGRES_DBNAME": PG_DBNAME,
        "POSTGRES_HOST": PG_HOST,
        "POSTGRES_PORT": PG_PORT,
        "POSTGRES_USER": PG_USER,
        "POSTGRES_PASSWORD": PG_PASSWORD,
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "2",
    }


def test_application_saves_and_reads_back(app: TenantEventStoreTestApp) -> None:
    deal = Deal("Acme renewal")
    deal.rename("Acme renewal 2026")

    app.save(deal, organization_ids={deal.id: ORG_A})

    copy: Deal = app.repository.get(deal.id)
    assert copy.title == "Acme renewal 2026"
    assert copy.version == 2
    tenant_recorder = app.recorder
    assert isinstance(
        tenant_recorder,
        (TenantPostgresApplicationRecorder, TenantSQLiteApplicationRecorder),
    )
    notifications = tenant_recorder.select_organization_notifications(ORG_A)
    assert [(n.originator_id, n.originator_version) for n in notifications] == [
        (deal.id, 1),
        (deal.id, 2),
    ]


def test_application_multi_aggregate_save_spans_two_organizations(
    app: TenantEventStoreTestApp,
) -> None:
    a1, a2, b1 = Deal("a1"), Deal("a2"), Deal("b1")
    b1.rename("b1 renamed")

    app.save(a1, b1, a2, organization_ids={a1.id: ORG_A, a2.id: ORG_A, b1.id: ORG_B})

    assert isinstance(
        app.recorder,
        (TenantPostgresApplicationRecorder, TenantSQLiteApplicationRecorder),
    )
    rows = raw_rows(app.recorder, app.recorder.events_table_name)
    expected = {
        (a1.id, 1): ORG_A,
        (a2.id, 1): ORG_A,
        (b1.id, 1): ORG_B,
        (b1.id, 2): ORG_B,
    }
    assert {(o, v): UUID(str(org)) for o, v, org in rows} == expected


def test_application_save_without_organization_writes_nothing(
    app: TenantEventStoreTestApp,
) -> None:
    deal = Deal("orphan")

    with pytest.raises(ValueError, match="organization_ids"):
        app.save(deal)

    with pytest.raises(AggregateNotFoundError):
        app.repository.get(deal.id)
    assert app.recorder.max_notification_id() is None
