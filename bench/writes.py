"""(a) HTTP commands/s of PATCH /crm/leads/{id}/stage, and (d) the same from many organizations.

Baselines, measured in the same database in the same run:
- raw psycopg single-row INSERT + COMMIT into a table shaped like the event table (1 connection);
- the same with the library's transaction shape (LOCK TABLE ... EXCLUSIVE + NOTIFY);
- (d) both from N concurrent connections (what the exclusive lock costs without grouping);
- library level: `app.save()` one aggregate per call (1 and N threads), and
  `CrmApplication.commit` (group commit) from 1 and N threads.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg

from application.store import CrmApplication
from bench.common import (
    CpuMeter,
    Results,
    Scale,
    drive,
    dsn,
    fmt,
    latency_line,
    ms,
    pct,
    say,
    scratch_db,
    settings_for,
)
from bench.server import crm_server, drive_moves, prepare_movers, register
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.database import make_engine
from interfaces.services import build_app

RAW_TABLE = "bench_raw_events"
ACTOR = Actor(kind="system", id="bench", ip="127.0.0.1", user_agent="bench")
# about the size of a stored MovedToStage event (JSON state)
RAW_STATE = json.dumps(
    {
        "originator_id": str(uuid4()),
        "originator_version": 2,
        "timestamp": "2026-11-25T07:15:18.996454+00:00",
        "organization_id": str(uuid4()),
        "actor": {"kind": "user", "id": str(uuid4()), "ip": "127.0.0.1", "user_agent": "bench"},
        "from_stage_id": str(uuid4()),
        "to_stage_id": str(uuid4()),
    }
).encode()


# --------------------------------------------------------------------------- raw baselines


def create_raw_table(dbname: str) -> None:
    with psycopg.connect(dsn(dbname), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        conn.execute(
            f"CREATE TABLE {RAW_TABLE} (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, topic text, state bytea, "
            "notification_id bigserial, organization_id uuid NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute(f"CREATE UNIQUE INDEX ON {RAW_TABLE} (notification_id)")
        conn.execute(f"CREATE INDEX ON {RAW_TABLE} (organization_id, notification_id)")


def raw_inserts(
    dbname: str,
    *,
    seconds: float,
    connections: int = 1,
    lock: bool = False,
    max_rows: int = 200_000,
) -> tuple[float, list[float]]:
    """Single-row INSERT + COMMIT per transaction; rows/s over all connections, latencies."""
    insert = (
        f"INSERT INTO {RAW_TABLE} (originator_id, originator_version, topic, state, "
        "organization_id) VALUES (%s, %s, %s, %s, %s) RETURNING notification_id"
    )
    org = uuid4()
    counts = [0] * connections
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(connections + 1)
    box: dict[str, float] = {}

    def work(k: int) -> None:
        try:
            with psycopg.connect(dsn(dbname)) as conn:
                barrier.wait()
                go.wait()
                deadline = box["deadline"]
                per_conn = max_rows // connections
                lat = latencies[k]
                while counts[k] < per_conn:
                    t0 = time.perf_counter()
                    if t0 >= deadline:
                        break
                    with conn.cursor() as cur:
                        if lock:
                            cur.execute(f"LOCK TABLE {RAW_TABLE} IN EXCLUSIVE MODE")
                            cur.execute(f"NOTIFY {RAW_TABLE}")
                        cur.execute(insert, (uuid4(), 1, "bench:Raw", RAW_STATE, org), prepare=True)
                        cur.fetchone()
                    conn.commit()
                    lat.append(time.perf_counter() - t0)
                    counts[k] += 1
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    go = threading.Event()
    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=30)
    t0 = time.perf_counter()
    box["deadline"] = t0 + seconds
    go.set()
    for t in threads:
        t.join(timeout=seconds + 30)
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / elapsed, [x for lat in latencies for x in lat]


# --------------------------------------------------------------------------- library level


class Fixture:
    """An organization, its pipeline and leads made with the domain and committed in bulk."""

    def __init__(self, app: CrmApplication, leads: int) -> None:
        org = Organization.register(name="Bench org", owner_user_id=uuid4(), actor=ACTOR)
        pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
        app.commit(org, pipeline)
        self.org_id: UUID = org.id
        opens = [s.ref for s in pipeline.stages if s.stage_type is StageType.OPEN]
        self.targets = opens[:2]
        self.leads = [
            Lead.capture(
                organization_id=org.id,
                pipeline_id=pipeline.id,
                stage=self.targets[0],
                details={"full_name": f"Lead {i}", "company": "Bench Ltd"},
                assignee_id=None,
                actor=ACTOR,
            )
            for i in range(leads)
        ]
        for i in range(0, leads, 500):
            app.commit(*self.leads[i : i + 500])

    def flip(self, lead: Lead) -> None:
        target = self.targets[1] if lead.stage_id == self.targets[0].id else self.targets[0]
        lead.move_to(target, actor=ACTOR)


def head_position(dbname: str) -> int:
    with psycopg.connect(dsn(dbname)) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM crm_events").fetchone()
        return int(row[0]) if row else 0


def events_per_transaction(dbname: str, after: int) -> tuple[int, int]:
    """(events, transactions) written after a position: xmin tells rows of one transaction."""
    with psycopg.connect(dsn(dbname)) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM crm_events "
            "WHERE notification_id > %s",
            (after,),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def library_loop(
    fixture: Fixture, threads: int, seconds: float, write: Callable[[Lead], None]
) -> tuple[float, list[float]]:
    """Each thread moves its own leads and writes each move with `write`; return rate, latencies."""
    per = max(1, len(fixture.leads) // threads)
    shares = [fixture.leads[k * per : (k + 1) * per] for k in range(threads)]

    def step(k: int, i: int) -> None:
        lead = shares[k][i % len(shares[k])]
        fixture.flip(lead)
        write(lead)

    count, elapsed, latencies = drive(threads, seconds, step)
    return count / elapsed, latencies


# --------------------------------------------------------------------------- (a)


def bench_http(scale: Scale, results: Results) -> None:
    name = "a_http"
    with scratch_db("crm_bench_a") as db:
        create_raw_table(db)
        say("  raw baseline: single-row INSERT+COMMIT, 1 connection (fsync as configured)")
        raw_rate, raw_lat = raw_inserts(db, seconds=scale.raw_seconds)
        say(f"    {fmt(raw_rate, 'rows/s')}; {latency_line(raw_lat)}")
        results.add(name, "raw INSERT+COMMIT, 1 conn", raw_rate, "rows/s", ratio="baseline")
        lock_rate, lock_lat = raw_inserts(db, seconds=scale.raw_seconds, lock=True)
        say(
            f"  raw + LOCK TABLE EXCLUSIVE + NOTIFY, 1 connection: {fmt(lock_rate, 'rows/s')} "
            f"({lock_rate / raw_rate:.0%} of raw); {latency_line(lock_lat)}"
        )
        results.add(
            name,
            "raw + LOCK TABLE + NOTIFY, 1 conn",
            lock_rate,
            "rows/s",
            ratio=f"{lock_rate / raw_rate:.0%} of raw",
        )

        settings = settings_for(db)
        app = build_app(settings, make_engine(settings))
        try:
            fixture = Fixture(app, leads=scale.threads * 8)
            org = fixture.org_id

            def save(lead: Lead) -> None:
                app.save(lead, organization_ids={lead.id: org})

            def commit(lead: Lead) -> None:
                app.commit(lead)

            for label, threads, write in (
                ("app.save() 1 aggregate/call, 1 thread", 1, save),
                (f"app.save() 1 aggregate/call, {scale.threads} threads", scale.threads, save),
                ("CrmApplication.commit, 1 thread", 1, commit),
                (
                    f"CrmApplication.commit (group commit), {scale.threads} threads",
                    scale.threads,
                    commit,
                ),
            ):
                before = head_position(db)
                rate, lat = library_loop(fixture, threads, scale.lib_seconds, write)
                events, txns = events_per_transaction(db, before)
                per_txn = events / txns if txns else float("nan")
                say(
                    f"  {label}: {fmt(rate, 'commands/s')} ({rate / raw_rate:.0%} of raw); "
                    f"{per_txn:.1f} events/transaction; {latency_line(lat)}"
                )
                results.add(
                    name,
                    label,
                    rate,
                    "commands/s",
                    ratio=f"{rate / raw_rate:.0%} of raw",
                    extra={
                        "events_per_txn": per_txn,
                        "p50_ms": ms(pct(lat, 50)),
                        "p95_ms": ms(pct(lat, 95)),
                    },
                )
        finally:
            app.close()

        say(
            f"  HTTP: PATCH /crm/leads/{{id}}/stage via `crm serve` (separate process, "
            f"projectors in-process), {scale.http_conns} keep-alive connections, 1 organization"
        )
        with crm_server(db) as server:
            with httpx.Client(base_url=server.base, timeout=30) as client:
                tenant = register(client, "Bench HTTP org")
            workers = prepare_movers(server.base, [tenant], scale.http_conns, scale.leads_per_conn)
            http_run(name, db, server, workers, scale, results, raw_rate, "HTTP PATCH stage, 1 org")


def http_run(
    name: str,
    db: str,
    server: Any,
    workers: list[Any],
    scale: Scale,
    results: Results,
    raw_rate: float,
    label: str,
) -> None:
    before = head_position(db)
    meter = CpuMeter(server.pid)
    load = drive_moves(
        server.port, workers, warmup=scale.http_warmup, seconds=scale.http_seconds, meter=meter
    )
    events, txns = events_per_transaction(db, before)
    per_txn = events / txns if txns else float("nan")
    # fsync latency drifts on shared disks: measure the baseline again and use the mean
    raw_after, _ = raw_inserts(db, seconds=scale.raw_seconds)
    say(
        f"    raw INSERT+COMMIT again after the load: {fmt(raw_after, 'rows/s')} "
        f"(before: {fmt(raw_rate, 'rows/s')}); the ratio uses their mean"
    )
    raw_rate = (raw_rate + raw_after) / 2
    ratio = load.rate / raw_rate
    say(
        f"    {fmt(load.rate, 'commands/s')} = {ratio:.0%} of raw insert/s "
        f"({load.commands} in {load.seconds:.1f} s, errors {load.errors or 'none'}); "
        f"{latency_line(load.latencies)}"
    )
    say(
        f"    {per_txn:.1f} events per insert transaction (group commit); "
        + meter.describe(load.commands, "command")
    )
    results.add(
        name,
        label,
        load.rate,
        "commands/s",
        ratio=f"{ratio:.0%} of raw insert/s",
        bar=">= 60% of raw",
        meets=ratio >= 0.6,
        extra={
            "p50_ms": ms(pct(load.latencies, 50)),
            "p95_ms": ms(pct(load.latencies, 95)),
            "events_per_txn": per_txn,
            "errors": load.errors,
            "raw_rows_per_s_mean": raw_rate,
            **meter.as_dict(load.commands),
        },
    )
    results.add(name, f"{label} p50", ms(pct(load.latencies, 50)), "ms")
    results.add(name, f"{label} p95", ms(pct(load.latencies, 95)), "ms")


# --------------------------------------------------------------------------- (d)


def bench_tenants(scale: Scale, results: Results) -> None:
    name = "d_tenants"
    with scratch_db("crm_bench_d") as db:
        create_raw_table(db)
        raw_rate, _ = raw_inserts(db, seconds=scale.raw_seconds)
        say(f"  raw INSERT+COMMIT, 1 connection: {fmt(raw_rate, 'rows/s')} (baseline)")
        results.add(name, "raw INSERT+COMMIT, 1 conn", raw_rate, "rows/s", ratio="baseline")
        n = scale.threads
        for lock in (False, True):
            rate, lat = raw_inserts(db, seconds=scale.raw_seconds, connections=n, lock=lock)
            label = f"raw {'+ LOCK TABLE + NOTIFY ' if lock else ''}INSERT+COMMIT, {n} conns"
            say(
                f"  {label}: {fmt(rate, 'rows/s')} ({rate / raw_rate:.0%} of 1-conn raw); "
                f"{latency_line(lat)}"
            )
            results.add(name, label, rate, "rows/s", ratio=f"{rate / raw_rate:.0%} of raw")

        orgs = scale.tenant_orgs
        per_org = max(1, scale.http_conns // orgs)
        say(
            f"  HTTP: PATCH stage from {orgs} organizations x {per_org} connections "
            f"= {orgs * per_org} concurrent, each moving its own leads"
        )
        with crm_server(db) as server:
            with httpx.Client(base_url=server.base, timeout=30) as client:
                tenants = [register(client, f"Bench org {i}") for i in range(orgs)]
            workers = prepare_movers(server.base, tenants, per_org, scale.leads_per_conn)
            http_run(
                name,
                db,
                server,
                workers,
                scale,
                results,
                raw_rate,
                f"HTTP PATCH stage, {orgs} orgs",
            )
