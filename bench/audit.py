"""(h) Auditors: the hash-chained export of one organization, its verification, read models checked.

The log is written as (g) writes it (`bench.analytics.write_history`: leads with stories of
moves, notes, closes, WhatsApp messages and calls, in time order; personal data sealed, one
subject key per lead): first a medium organization alone (`small` events), then one big
organization (`big` events) among `orgs - 1` small ones (10 leads each). The log is set-up, so
it is written with `synchronous_commit` off (one fsync per subject key would take minutes).

1. Export: the path of `crm audit export` (fresh services, `organization_exists`,
   `start_export`, `ExportLines` written chunk by chunk to a file), each run in a fresh spawned
   process as the CLI is: events/s, and the process's peak RSS above what it had before the
   export (the high-water mark is reset through /proc/self/clear_refs), and how often the
   subject-key table was read. With `--quick` a second run with tracemalloc on gives the peak of
   Python allocations (about 3x slower, so not at full scale: 1 M events would take ~10 min).
   Baselines in the same run: a plain psycopg keyset scan of the organization's stored rows
   (pages of the export's size, no decoding), and the recorder's read + decode of the same rows.
2. `crm audit verify` (`application.audit_export.verify` over the file read line by line).
3. `crm projections verify` (`projections.verify.verify`) after every projector caught up;
   skipped with a note when that module is not there. Catching up is set-up, bounded (600 s
   quick, 150 s full; BENCH_AUDIT_CATCHUP_S overrides): the check then covers the events the
   projectors reached (here all projectors catch up at ~2,900 events/s and the check runs at
   ~1,300, so the whole 1.26 M-event log would take ~7 + ~16 min).
"""

from __future__ import annotations

import gc
import math
import os
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from application.audit.chain import verify
from application.audit.export import PAGE, ExportFilters, ExportLines, start_export
from application.identity.organizations import organization_exists
from bench.analytics import write_history
from bench.catchup import timed_catch_up
from bench.common import CpuMeter, Results, Scale, dsn, fmt, say, scratch_db, settings_for
from bench.privacy import KeyCalls, count_key_calls
from domain.values import Actor
from interfaces.database import make_engine
from interfaces.services import build_app, build_services, projector_batch_setup
from projections.registry import all_projectors
from projections.runner import ProjectionRunner

NAME = "h_audit"
EVENTS_PER_LEAD = 11.2  # write_history's stories average about this many events per lead
BAR = 20_000  # events/s, the bar for the export
ACTOR = Actor(kind="system", id="crm-cli", user_agent="bench")
RAW_SCAN = (
    "SELECT notification_id, originator_id, originator_version, topic, state FROM crm_events "
    "WHERE organization_id = %s AND notification_id > %s ORDER BY notification_id LIMIT %s"
)


def bench_audit(scale: Scale, results: Results) -> None:
    big = 100_000 if scale.quick else 1_000_000
    small = big // 10
    orgs = 100 if scale.quick else 1_000
    with scratch_db("crm_bench_h") as db, tempfile.TemporaryDirectory(prefix="bench-h-") as tmp:
        orgs_events = _write(db, small, big, orgs)
        (small_org, small_n), (big_org, big_n) = orgs_events
        say(f"  raw baseline and read + decode of the big organization ({big_n:,} events)")
        raw_rate = _raw_scan(results, db, big_org, big_n)
        decode_rate = _read_decode(results, db, big_org, raw_rate)
        exports: dict[str, dict[str, float]] = {}
        for label, org, n in (("small", small_org, small_n), ("big", big_org, big_n)):
            out = Path(tmp) / f"export-{label}.ndjson"
            baselines = (raw_rate, decode_rate)
            exports[label] = _export(results, db, org, n, out, baselines, trace=scale.quick)
        _memory_verdict(exports)
        _verify_file(results, Path(tmp) / "export-big.ndjson")
        _verify_projections(results, db, scale)


# --------------------------------------------------------------------------- the log


def _write(db: str, small: int, big: int, orgs: int) -> list[tuple[UUID, int]]:
    """Write the log; return (organization, its stored events) for the small and the big one."""
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" SET synchronous_commit = off')
    settings = settings_for(db)
    engine = make_engine(settings)
    app = build_app(settings, engine)
    try:
        t0 = time.perf_counter()
        small_org, _, small_leads = write_history(app, round(small / EVENTS_PER_LEAD), 1)
        big_org, head, big_leads = write_history(app, round(big / EVENTS_PER_LEAD), orgs)
        seconds = time.perf_counter() - t0
    finally:
        app.close()
        engine.dispose()
    gc.collect()
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{db}" RESET synchronous_commit')
        conn.execute("VACUUM ANALYZE crm_events")
        counts = [_count(conn, org) for org in (small_org, big_org)]
        keys = _scalar(conn, "SELECT count(*) FROM privacy_subject_keys")
    say(
        f"  wrote {head:,} events in {seconds:.0f} s ({head / seconds:,.0f} events/s, "
        f"synchronous_commit off, {keys:,} subject keys): organization A alone "
        f"{counts[0]:,} events ({small_leads:,} leads), organization B {counts[1]:,} events "
        f"among {orgs} organizations ({big_leads:,} leads in all)"
    )
    return [(small_org, counts[0]), (big_org, counts[1])]


def _count(conn: psycopg.Connection[Any], org: UUID) -> int:
    return _scalar(conn, "SELECT count(*) FROM crm_events WHERE organization_id = %s", org)


def _scalar(conn: psycopg.Connection[Any], sql: str, *params: object) -> int:
    row = conn.execute(sql, params or None).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- baselines


def _raw_scan(results: Results, db: str, org: UUID, expected: int) -> float:
    """Pages of the organization's stored rows by (organization_id, notification_id), as is."""
    with psycopg.connect(dsn(db), autocommit=True) as conn:
        t0 = time.perf_counter()
        last, count, size = 0, 0, 0
        while True:
            rows = conn.execute(RAW_SCAN, (org, last, PAGE), prepare=True).fetchall()
            count += len(rows)
            size += sum(len(r[4]) for r in rows)
            if len(rows) < PAGE:
                break
            last = rows[-1][0]
        seconds = time.perf_counter() - t0
    rate = count / seconds
    say(
        f"    raw psycopg keyset scan, pages of {PAGE}, no decoding: {count:,} rows in "
        f"{seconds:.1f} s = {fmt(rate, 'events/s')} ({size / seconds / 1e6:.0f} MB/s of state)"
    )
    if count < expected:
        say(f"    (expected {expected:,} rows)")
    results.add(
        NAME, f"baseline: raw keyset scan, {count:,} events", rate, "events/s", ratio="baseline"
    )
    return rate


def _read_decode(results: Results, db: str, org: UUID, raw_rate: float) -> float:
    """The recorder's organization read + `mapper.to_domain_event` (sealed values opened)."""
    settings = settings_for(db)
    engine = make_engine(settings)
    app = build_app(settings, engine)  # fresh: no subject key cached, as in a CLI process
    calls = count_key_calls(app)
    try:
        t0 = time.perf_counter()
        start, count = 0, 0
        prefetch = getattr(app.mapper, "prefetch", None)  # as the export does, when it can
        while True:
            page = app.recorder.select_organization_notifications(org, start=start, limit=PAGE)  # type: ignore[attr-defined]
            if prefetch is not None:
                prefetch(page)
            for n in page:
                app.mapper.to_domain_event(n)
            count += len(page)
            if len(page) < PAGE:
                break
            start = page[-1].id
        seconds = time.perf_counter() - t0
    finally:
        app.close()
        engine.dispose()
    rate = count / seconds
    say(
        f"    recorder read + decode (opens sealed values): {fmt(rate, 'events/s')} "
        f"= {rate / raw_rate:.0%} of the raw scan; key table: {_key_reads(calls)}"
    )
    results.add(
        NAME,
        f"baseline: read + decode, {count:,} events",
        rate,
        "events/s",
        ratio=f"{rate / raw_rate:.0%} of raw scan",
    )
    return rate


# --------------------------------------------------------------------------- 1. export


def export_in_child(db: str, org: UUID, out: str, trace: bool) -> dict[str, Any]:
    """`crm audit export --org ORG --out OUT` minus the progress bar, in this (fresh) process."""
    services = build_services(settings_for(db), with_runner=False)
    calls = count_key_calls(services.app)
    try:
        gc.collect()
        rss_before = _status_kb("VmRSS")
        peak_reset = _reset_peak_rss()
        if trace:
            tracemalloc.start()
        # measured here: the parent's meter would miss this process's PostgreSQL backends
        meter = CpuMeter()
        with meter:
            if not organization_exists(services.app, org):
                raise RuntimeError(f"no organization {org}")
            export = start_export(services.app, org, ExportFilters(), ACTOR, channel="cli")
            reached = [0]
            lines = ExportLines(services.app, export, lambda p: reached.__setitem__(0, p))
            with open(out, "wb") as file:
                for chunk in lines:
                    file.write(chunk)
        traced_peak = tracemalloc.get_traced_memory()[1] if trace else float("nan")
        tracemalloc.stop()
        events = lines.chain.count
        return {
            "seconds": meter.delta.wall if meter.delta else float("nan"),
            "cpu": meter.describe(events, "event").replace("bench process", "export process"),
            **meter.as_dict(events),
            "events": events,
            "bytes": os.path.getsize(out),
            "rss_before_mb": rss_before / 1024,
            "rss_peak_mb": _status_kb("VmHWM") / 1024,
            "peak_reset": float(peak_reset),
            "traced_peak_mb": traced_peak / 2**20,
            "key_reads": _key_reads(calls),
            "cached_keys": len(getattr(services.app.personal_data.cipher, "_cache", ())),
        }
    finally:
        services.close()


def _key_reads(calls: KeyCalls) -> str:
    return (
        f"{calls.loads:,} single SELECTs, {calls.prefetches:,} page prefetches "
        f"({calls.seconds:.1f} s in all)"
    )


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is the export's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _in_child(db: str, org: UUID, out: Path, trace: bool) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(export_in_child, db, org, str(out), trace).result()


def _export(
    results: Results,
    db: str,
    org: UUID,
    n: int,
    out: Path,
    baselines: tuple[float, float],
    *,
    trace: bool,
) -> dict[str, float]:
    raw_rate, decode_rate = baselines
    run = _in_child(db, org, out, trace=False)
    events = int(run["events"])
    rate = events / run["seconds"]
    growth = run["rss_peak_mb"] - run["rss_before_mb"]
    say(
        f"  export of {events:,} events: {run['seconds']:.1f} s = {fmt(rate, 'events/s')} = "
        f"{rate / raw_rate:.0%} of the raw scan, {rate / decode_rate:.0%} of read + decode; "
        f"file {run['bytes'] / 1e6:,.0f} MB"
    )
    peak_note = "" if run["peak_reset"] else " (peak not reset: since process start)"
    say(
        f"    process RSS {run['rss_before_mb']:.0f} MB before, peak {run['rss_peak_mb']:.0f} MB "
        f"(+{growth:.0f} MB){peak_note}; {run['cached_keys']:,.0f} keys cached at the end; "
        f"key table: {run['key_reads']}"
    )
    say(f"    {run['cpu']}")
    results.add(
        NAME,
        f"export {events:,} events",
        rate,
        "events/s",
        ratio=f"{rate / raw_rate:.0%} of raw scan, {rate / decode_rate:.0%} of read + decode",
        bar=f">= {BAR:,} events/s",
        meets=rate >= BAR,
        extra=run,
    )
    results.add(NAME, f"export {events:,} events: RSS growth", growth, "MB")
    traced = float("nan")
    if trace:
        traced = _in_child(db, org, out, trace=True)["traced_peak_mb"]
        say(f"    with tracemalloc: peak of Python allocations {traced:.1f} MB")
        results.add(NAME, f"export {events:,} events: tracemalloc peak", traced, "MB")
    return {"growth": growth, "traced": traced, "keys": run["cached_keys"], "events": events}


def _memory_verdict(exports: dict[str, dict[str, float]]) -> None:
    s, b = exports["small"], exports["big"]
    traced = (
        ""
        if math.isnan(s["traced"])
        else f"tracemalloc peak {s['traced']:.1f} vs {b['traced']:.1f} MB, "
    )
    say(
        f"  memory, {s['events']:,.0f} vs {b['events']:,.0f} events "
        f"({b['events'] / s['events']:.0f}x the history): {traced}RSS growth "
        f"{s['growth']:.0f} vs {b['growth']:.0f} MB; subject keys cached "
        f"{s['keys']:,.0f} vs {b['keys']:,.0f}"
    )


# --------------------------------------------------------------------------- 2. verify


def _verify_file(results: Results, path: Path) -> None:
    t0 = time.perf_counter()
    with path.open("rb") as file:
        verified = verify(file)
    seconds = time.perf_counter() - t0
    rate = (verified.count + 1) / seconds
    say(
        f"  crm audit verify of the {verified.count:,}-event file ({path.stat().st_size / 1e6:,.0f}"
        f" MB): {seconds:.1f} s = {fmt(rate, 'lines/s')}"
    )
    results.add(
        NAME, f"audit verify, {verified.count:,} lines", rate, "lines/s", extra={"seconds": seconds}
    )


# --------------------------------------------------------------------------- 3. projections


def _verify_projections(results: Results, db: str, scale: Scale) -> None:
    try:
        from projections.verify import verify as verify_projections
    except ImportError as error:
        say(f"  crm projections verify: skipped, projections.verify is not there ({error})")
        results.note(NAME, "projections verify skipped: the module is not there yet")
        return
    settings = settings_for(db)
    engine = make_engine(settings)
    app = build_app(settings, engine)
    try:
        projectors = all_projectors()
        runner = ProjectionRunner(
            engine,
            app.recorder,
            app.mapper,
            projectors,
            before_batch=projector_batch_setup(settings),
        )
        timeout = float(os.environ.get("BENCH_AUDIT_CATCHUP_S") or (600 if scale.quick else 150))
        read, catch_up_s, finished = timed_catch_up(runner, timeout)
        log_events = read / len(projectors)
        status = "" if finished else f" (stopped at the {timeout:.0f} s bound)"
        say(
            f"  all {len(projectors)} projectors caught up on {log_events:,.0f} events in "
            f"{catch_up_s:.0f} s{status} = {fmt(log_events / catch_up_s, 'events/s')} (set-up)"
        )
    finally:
        app.close()
    app = build_app(settings, engine)  # a fresh process's cold subject-key cache
    try:
        t0 = time.perf_counter()
        verdicts = verify_projections(engine, app.recorder, app.mapper)
        seconds = time.perf_counter() - t0
    finally:
        app.close()
        engine.dispose()
    differing = [v for v in verdicts if not v.ok]
    rate = log_events / seconds
    say(
        f"  crm projections verify (all projectors, {log_events:,.0f} events): {seconds:.1f} s "
        f"= {fmt(rate, 'events/s')}; {len(verdicts) - len(differing)} of {len(verdicts)} "
        f"tables match"
    )
    for verdict in differing:
        for line in verdict.lines()[:5]:
            say(f"    {line}")
    results.add(
        NAME,
        f"projections verify, {log_events:,.0f} events",
        seconds,
        "s",
        ratio=f"{rate:,.0f} events/s; {len(differing)} tables differ"
        + ("" if finished else f"; catch-up bounded at {catch_up_s:.0f} s"),
        extra={"catch_up_s": catch_up_s, "caught_up": finished},
    )
