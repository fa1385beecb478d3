"""Read models checked against the log: rebuilt into scratch tables, compared per organization.

The live tables are read in one snapshot (REPEATABLE READ on PostgreSQL, one read transaction on
SQLite), positions included, so running projectors neither stop nor disturb the check: each
projector is rebuilt from the log up to the position its live tables had in that snapshot.
Scratch tables live in a schema `verify_<random>` of the same database on PostgreSQL (the
scratch connections' `search_path` holds only it, so the projectors' unqualified raw SQL and
COPY land there too) and in a temporary file beside the live one on SQLite; both are dropped
afterwards, also on failure. Nothing live is written.

Projectors may read the tables of projectors before them in the registry (conversations read
the leads model's assignees), so the rebuild runs every projector up to the last one checked,
in registry order, as the live runner does. If a live projector is more than a batch ahead of
one that reads its tables, the reader may show that newer state until it catches up (e.g. a
conversation's lead assignee): a difference then reported goes away once `projections status`
shows no lag.

Each table gets a sha256 digest per organization over its rows in primary-key order, values
normalised (ids as text, instants as UTC ISO, JSON with sorted keys); only organizations whose
digests differ are read again row by row to name the rows that differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

import sqlalchemy as sa
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from sqlalchemy.engine import Connection, Engine

from projections.base import Projector, metadata, positions
from projections.registry import all_projectors
from projections.runner import ProjectionRunner, read_positions

log = logging.getLogger(__name__)

#: columns a rebuild cannot reproduce, by table; every other column of every projector's table
#: is compared. Tables that are no projector's (api_key_usage, written by the request guard;
#: projection_positions, whose updated_at is a wall clock; users and tokens) are never compared.
NOT_COMPARED: dict[str, tuple[str, ...]] = {
    # delivery state: the outbox worker claims rows (status `sending`, attempts, a lease in
    # next_attempt_at, a claim token) and settles them (done/failed/retry, provider reference,
    # error, updated_at) from what the provider answered, not from events; the projector only
    # creates rows and settles pending ones, so a rebuild knows the items, not their delivery
    "outbox": (
        "status",
        "attempts",
        "next_attempt_at",
        "claim_token",
        "provider_ref",
        "last_error",
        "updated_at",
    ),
    # analysis state: the analysis policy claims rows and settles them (skipped, retried, an
    # error); the projector only creates rows and settles those whose analysis is in the log
    "ai_analysis_queue": (
        "status",
        "attempts",
        "next_attempt_at",
        "claim_token",
        "last_error",
        "updated_at",
    ),
}


@dataclass(frozen=True)
class RowDifference:
    """One row that differs: `changed` (columns: name, live, rebuilt), `missing` in live (the
    log has it) or `extra` in live (the log does not have it)."""

    kind: str
    organization_id: str
    key: tuple[tuple[str, Any], ...]
    columns: tuple[tuple[str, Any, Any], ...] = ()

    def describe(self) -> str:
        key = " ".join(f"{name}={value}" for name, value in self.key)
        text = f"{self.kind:<8} organization {self.organization_id} {key}"
        if self.kind == "changed":
            changes = "; ".join(f"{n}: live {a!r}, log {b!r}" for n, a, b in self.columns)
            return f"{text}: {changes}"
        if self.kind == "missing":
            return f"{text} (rebuilt from the log, absent from the live table)"
        return f"{text} (in the live table, not rebuilt from the log)"


@dataclass(frozen=True)
class TableVerdict:
    """One table of one projector compared with its rebuild at the live position."""

    projection: str
    table: str
    position: int
    organizations: int
    rows: int
    differing: tuple[str, ...]
    differences: tuple[RowDifference, ...]
    unlisted: int
    not_compared: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differing

    def lines(self) -> list[str]:
        head = f"{self.projection:<13} {self.table:<26}"
        where = f"position {self.position}"
        if self.not_compared:
            where += f"; not compared: {', '.join(self.not_compared)}"
        if self.ok:
            return [f"{head} OK {self.organizations} organizations, {self.rows} rows ({where})"]
        lines = [
            f"{head} DIFFERS in {len(self.differing)} of {self.organizations} organizations "
            f"({where})"
        ]
        lines += [f"  {d.describe()}" for d in self.differences]
        if self.unlisted:
            lines.append(f"  … and {self.unlisted} more differing rows")
        return lines


def verify(
    engine: Engine,
    recorder: ApplicationRecorder,
    mapper: Mapper[Any],
    names: Sequence[str] = (),
    *,
    organization_id: UUID | None = None,
    max_rows: int = 20,
    batch_size: int = 1000,
) -> list[TableVerdict]:
    """Compare the named projectors' live tables (all projectors if none) with a rebuild.

    With `organization_id`, only that organization's events are read and its rows compared:
    every read-model row belongs to one organization and derives from its events only.
    """
    registry = all_projectors()
    unknown = sorted(set(names) - {p.name for p in registry})
    if unknown:
        raise ValueError(f"unknown projection {', '.join(unknown)}")
    chosen = [p for p in registry if not names or p.name in names]
    verdicts: list[TableVerdict] = []
    with live_snapshot(engine) as live:
        reached = read_positions(live)
        targets = {p.name: reached.get(p.name, 0) for p in chosen}
        with scratch_engine(engine) as scratch:
            log_part = _Log(recorder, organization_id)
            rebuild = _Rebuild(scratch, log_part, mapper, registry, targets, batch_size)
            for position, projectors in rebuild.stages():
                with scratch.connect() as rebuilt:
                    verdicts += [
                        compare(live, rebuilt, p, t, position, organization_id, max_rows)
                        for p in projectors
                        for t in p.tables
                    ]
    order = [(p.name, t.name) for p in chosen for t in p.tables]
    return sorted(verdicts, key=lambda v: order.index((v.projection, v.table)))


class _Rebuild:
    """Scratch tables filled from the log, stopping at each position a live projector is at."""

    def __init__(
        self,
        scratch: Engine,
        log_part: _Log,
        mapper: Mapper[Any],
        registry: list[Projector],
        targets: dict[str, int],
        batch_size: int,
    ) -> None:
        self.log_part, self.registry, self.targets = log_part, registry, targets
        # a projector may read the tables of those before it: rebuild the registry's prefix
        needed = registry[: max(self._index(n) for n in targets) + 1]
        tables = [positions, *(t for p in needed for t in (*p.tables, *p.side_tables))]
        metadata.create_all(scratch, tables=tables)
        if scratch.dialect.name == "postgresql":  # scratch rows need no crash safety
            with scratch.begin() as conn:
                for table in tables:
                    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" SET UNLOGGED')
        self.runner = ProjectionRunner(
            scratch,
            cast(ApplicationRecorder, log_part),  # the runner only reads notifications
            mapper,
            needed,
            batch_size=batch_size,
            before_batch=_no_fsync_wait,
        )

    def _index(self, name: str) -> int:
        return next(i for i, p in enumerate(self.registry) if p.name == name)

    def stages(self) -> Iterator[tuple[int, list[Projector]]]:
        """Rebuild up to each live position in turn; yield it with the projectors that are there."""
        for position in sorted(set(self.targets.values())):
            ahead = [n for n, at in self.targets.items() if at >= position]
            self.log_part.stop = position
            self.runner.projectors = self.registry[: max(map(self._index, ahead)) + 1]
            self.runner.catch_up()
            yield position, [p for p in self.registry if self.targets.get(p.name) == position]


class _Log:
    """The part of the log a rebuild reads: up to `stop`, of one organization if given."""

    def __init__(self, recorder: ApplicationRecorder, organization_id: UUID | None) -> None:
        self.recorder = recorder
        self.organization_id = organization_id
        self.stop = 0
        if organization_id is not None and not hasattr(
            recorder, "select_organization_notifications"
        ):
            raise ValueError("this event store cannot read one organization's events")

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        first = (start or 1) + (0 if inclusive_of_start else 1)
        last = self.stop if stop is None else min(stop, self.stop)
        if first > last:
            return []
        if self.organization_id is None:
            return self.recorder.select_notifications(first, limit, stop=last, topics=topics)
        select = self.recorder.select_organization_notifications  # type: ignore[attr-defined]
        found: Sequence[Notification] = select(
            self.organization_id, start=first - 1, limit=limit, stop=last
        )
        return found


def _no_fsync_wait(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":  # scratch rows: a crash loses nothing of value
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


@contextmanager
def live_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction over the live tables: every read sees the same instant.

    PostgreSQL: REPEATABLE READ, and `row_security = off`, under which a read that the
    row-level-security policies would filter fails instead of silently missing rows (the owner
    that migrates and projects is not subject to them). SQLite: an explicit BEGIN (the driver
    only begins before writes); in WAL mode the snapshot is taken by the first read.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                conn.exec_driver_sql("SET LOCAL row_security = off")
                yield conn
        else:
            with conn.begin():
                conn.exec_driver_sql("BEGIN")
                yield conn


@contextmanager
def scratch_engine(engine: Engine) -> Iterator[Engine]:
    """An engine on empty scratch storage beside the live database, removed afterwards."""
    if engine.dialect.name == "postgresql":
        schema = f"verify_{uuid4().hex[:12]}"
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        # only the scratch schema is on the path: an unqualified name can never reach public
        scratch = sa.create_engine(
            engine.url, pool_size=2, connect_args={"options": f"-c search_path={schema}"}
        )
        try:
            with scratch.connect() as conn:
                current = conn.exec_driver_sql("SELECT current_schema()").scalar()
            if current != schema:
                raise RuntimeError(f"scratch connections are in schema {current}, not {schema}")
            yield scratch
        finally:
            scratch.dispose()
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except sa.exc.SQLAlchemyError:
                log.exception("could not drop the scratch schema %s: drop it by hand", schema)
        return
    live_file = engine.url.database
    beside = Path(live_file).parent if live_file and live_file != ":memory:" else None
    directory = tempfile.mkdtemp(prefix="crm-verify-", dir=beside)
    scratch = sa.create_engine(
        f"sqlite:///{directory}/scratch.db", connect_args={"check_same_thread": False}
    )

    @sa.event.listens_for(scratch, "connect")
    def _fast(dbapi_conn: Any, _: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")  # scratch rows: nothing to recover
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    try:
        yield scratch
    finally:
        scratch.dispose()
        shutil.rmtree(directory, ignore_errors=True)


def compare(
    live: Connection,
    rebuilt: Connection,
    projector: Projector,
    table: sa.Table,
    position: int,
    organization_id: UUID | None,
    max_rows: int,
) -> TableVerdict:
    """Digests per organization of both sides; the rows of organizations whose digests differ."""
    skipped = NOT_COMPARED.get(table.name, ())
    columns = [c for c in table.columns if c.name not in skipped]
    mine, theirs = (digests(c, table, columns, organization_id) for c in (live, rebuilt))
    differing = sorted(o for o in mine.keys() | theirs.keys() if mine.get(o) != theirs.get(o))
    found: list[RowDifference] = []
    unlisted = 0
    for org in differing:
        for difference in row_differences(live, rebuilt, table, columns, UUID(org)):
            if len(found) < max_rows:
                found.append(difference)
            else:
                unlisted += 1
    return TableVerdict(
        projection=projector.name,
        table=table.name,
        position=position,
        organizations=len(mine.keys() | theirs.keys()),
        rows=sum(count for _, count in mine.values()),
        differing=tuple(differing),
        differences=tuple(found),
        unlisted=unlisted,
        not_compared=skipped,
    )


def digests(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    organization_id: UUID | None,
) -> dict[str, tuple[str, int]]:
    """Per organization: sha256 of its rows in primary-key order, and how many rows."""
    query = sa.select(*columns).order_by(*table.primary_key.columns)
    if organization_id is not None:
        query = query.where(table.c.organization_id == organization_id)
    org_index = [c.name for c in columns].index("organization_id")
    hashes: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for row in conn.execute(query.execution_options(yield_per=5000)):
        org = str(row[org_index])
        if org not in hashes:
            hashes[org], counts[org] = hashlib.sha256(), 0
        hashes[org].update(canonical(tuple(row)) + b"\n")
        counts[org] += 1
    return {org: (h.hexdigest(), counts[org]) for org, h in hashes.items()}


def row_differences(
    live: Connection,
    rebuilt: Connection,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    organization_id: UUID,
) -> Iterator[RowDifference]:
    """The rows of one organization that differ, in primary-key order."""
    key_names = [c.name for c in table.primary_key.columns if c.name != "organization_id"]
    mine, theirs = (_rows(c, table, columns, organization_id) for c in (live, rebuilt))
    org = str(organization_id)
    for key in sorted(mine.keys() | theirs.keys(), key=canonical):
        named = tuple(zip(key_names, key, strict=True))
        a, b = mine.get(key), theirs.get(key)
        if a is None:
            yield RowDifference("missing", org, named)
        elif b is None:
            yield RowDifference("extra", org, named)
        elif a != b:
            changed = tuple((n, a[n], b[n]) for n in a if a[n] != b[n])
            yield RowDifference("changed", org, named, changed)


def _rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    organization_id: UUID,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    keys = [c.name for c in table.primary_key.columns if c.name != "organization_id"]
    query = sa.select(*columns).where(table.c.organization_id == organization_id)
    rows = {}
    for r in conn.execute(query).mappings():
        values = {c.name: normal(r[c.name]) for c in columns}
        rows[tuple(values[k] for k in keys)] = values
    return rows


def normal(value: Any) -> Any:
    """A value as both backends give it back alike: plain JSON types."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def canonical(values: Any) -> bytes:
    """Values as canonical JSON; ids, instants, days and amounts as `normal` writes them."""
    return json.dumps(
        values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    ).encode()


def _plain(value: Any) -> Any:
    # called by json only for what it cannot write itself, so plain values cost nothing extra
    plain = normal(value)
    if plain is value:
        raise TypeError(f"no canonical form for {type(value).__name__}")
    return plain
