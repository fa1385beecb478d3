"""What `PRAGMA secure_delete=ON` costs writes on the embedded database (SQLite).

`python -m bench.secure_delete [--leads N] [--rounds R]`: in each round, on a fresh copy of a
migrated SQLite file per mode, alternating the modes:
- capture N leads through `CrmApplication.commit`, one commit each (sealed personal values: each
  first capture also writes the lead's data key);
- run every projector over them (`ProjectionRunner.catch_up`, one transaction per batch);
- change each lead's details once (one commit each: the read-model rows are rewritten, which is
  where zeroing the old cell content happens), and project again.
"on" is the production setting; "off" sets `secure_delete=OFF` on every connection, as a SQLite
build compiled without SQLITE_SECURE_DELETE would run.

Raw baseline in the same run, without the application (its fsync per commit and the projector
work dominate, and vary a lot on a shared machine): one sqlite3 connection in WAL mode with
synchronous=NORMAL, N single-row transactions each inserting, updating (a longer value) and
deleting a ~0.5 kB row with two indexes. Medians and bests over the rounds; nothing asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool

from bench.common import SECRET
from bench.privacy import Workload
from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.services import Services, build_services
from interfaces.settings import Settings, load_settings
from projections.registry import all_projectors
from projections.runner import ProjectionRunner


class _OffPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection.cursor().execute("PRAGMA secure_delete=OFF")
        return connection


def _turn_off(services: Services) -> None:
    """Every connection of both kinds with secure_delete off (new connections from now on)."""

    def off(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    sa.event.listen(services.engine, "connect", off)  # after the engine's own: it wins
    services.engine.dispose()
    datastore: Any = services.app.recorder.datastore  # type: ignore[attr-defined]
    plain = datastore.pool
    datastore.pool = _OffPool(db_name=plain.db_name, lock_timeout=plain.lock_timeout)
    plain.close()


def _modes(services: Services) -> tuple[int, int]:
    with services.engine.connect() as conn:
        engine_mode = int(conn.exec_driver_sql("PRAGMA secure_delete").scalar_one())
    datastore: Any = services.app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cursor:
        cursor.execute("PRAGMA secure_delete")
        store_mode = int(cursor.fetchone()[0])
    return engine_mode, store_mode


def _timed(action: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def one_round(template: Path, workdir: Path, mode: str, leads: int) -> dict[str, float]:
    target = workdir / f"{mode}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, target)
    services = build_services(_settings(target), with_runner=False)
    try:
        if mode == "off":
            _turn_off(services)
        assert _modes(services) == ((1, 1) if mode == "on" else (0, 0)), _modes(services)
        app = services.app
        work = Workload(app)
        runner = ProjectionRunner(services.engine, app.recorder, app.mapper, all_projectors())
        runner.catch_up()
        captured = []

        def capture() -> None:
            for i in range(leads):
                lead = work.capture(i)
                app.commit(lead)
                captured.append(lead)

        def change() -> None:
            for i, lead in enumerate(captured):
                Workload.change(lead, i)
                app.commit(lead)

        capture_s = _timed(capture)
        project_s = _timed(runner.catch_up)
        change_s = _timed(change)
        reproject_s = _timed(runner.catch_up)
        return {
            "captures/s": leads / capture_s,
            "capture projections events/s": leads / project_s,
            "changes/s": leads / change_s,
            "change projections events/s": leads / reproject_s,
            "ms per lead, captured and projected": 1000 * (capture_s + project_s) / leads,
            "ms per lead, changed and projected": 1000 * (change_s + reproject_s) / leads,
        }
    finally:
        services.close()


def raw_round(workdir: Path, mode: str, rows: int) -> dict[str, float]:
    path = workdir / f"raw-{mode}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA secure_delete={'ON' if mode == 'on' else 'OFF'}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, name TEXT, note TEXT)")
        conn.execute("CREATE INDEX t_email ON t (email)")
        conn.execute("CREATE INDEX t_name ON t (name)")
        note = "x" * 400

        def each(sql: str, values: Callable[[int], tuple[Any, ...]]) -> float:
            t0 = time.perf_counter()
            for i in range(rows):
                conn.execute("BEGIN")
                conn.execute(sql, values(i))
                conn.execute("COMMIT")
            return time.perf_counter() - t0

        insert = each(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            lambda i: (i, f"maria.{i}@example.com", f"Maria Lead {i}", note),
        )
        update = each(
            "UPDATE t SET email = ?, name = ?, note = ? WHERE id = ?",
            lambda i: (f"m.{i}@example.org", f"Maria S. Lead {i}", note + "y" * 40, i),
        )
        delete = each("DELETE FROM t WHERE id = ?", lambda i: (i,))
    finally:
        conn.close()
    return {
        "raw inserts/s": rows / insert,
        "raw updates/s": rows / update,
        "raw deletes/s": rows / delete,
    }


def _settings(path: Path) -> Settings:
    return load_settings({"CRM_DATABASE_URL": f"sqlite:///{path}", "CRM_SECRET_KEY": SECRET})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--raw-rows", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crm-bench-secure-delete-") as tmp:
        workdir = Path(tmp)
        template = workdir / "template.db"
        settings = _settings(template)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for r in range(args.rounds):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                figures = raw_round(workdir, mode, args.raw_rows)
                figures |= one_round(template, workdir, mode, args.leads)
                results[mode].append(figures)
                print(f"round {r + 1} {mode}: {figures['captures/s']:.0f} captures/s")
    print(
        f"\n{args.leads} leads, {args.raw_rows} raw rows; {args.rounds} rounds per mode"
        " (rates: higher is better; ms: lower)"
    )
    print(f"{'metric':<40} {'on':>9} {'off':>9} {'on/off':>7} {'best on':>9} {'best off':>9}")
    for metric in results["on"][0]:
        on = [x[metric] for x in results["on"]]
        off = [x[metric] for x in results["off"]]
        best = min if metric.startswith("ms") else max
        mid_on, mid_off = statistics.median(on), statistics.median(off)
        print(
            f"{metric:<40} {mid_on:>9.1f} {mid_off:>9.1f} {mid_on / mid_off:>7.2f}"
            f" {best(on):>9.1f} {best(off):>9.1f}"
        )


if __name__ == "__main__":
    main()
