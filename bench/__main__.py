"""`python -m bench [--quick] [NAME ...]`: run the benchmarks against PostgreSQL.

NAME is one of: http (a), catchup (b), board (c), tenants (d), ryw (e), webhooks (f),
analytics (g), audit (h), privacy (i), tasks (j), ai (k); default all.
Every benchmark creates its own scratch database and drops it at the end. Figures are printed
with ratios to a raw baseline measured in the same run; nothing is asserted. The summary is
also written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Results, Scale, background_load, machine_info, say

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _benchmarks() -> dict[str, tuple[str, Callable[[Scale, Results], None]]]:
    from bench.ai import bench_ai
    from bench.analytics import bench_analytics
    from bench.audit import bench_audit
    from bench.board import bench_board
    from bench.catchup import bench_catchup
    from bench.privacy import bench_privacy
    from bench.ryw import bench_ryw
    from bench.tasks import bench_tasks
    from bench.webhooks import bench_webhooks
    from bench.writes import bench_http, bench_tenants

    return {
        "http": ("(a) HTTP commands/s vs raw INSERT+COMMIT/s", bench_http),
        "catchup": ("(b) projector catch-up events/s", bench_catchup),
        "board": ("(c) board query latency, big organization among many", bench_board),
        "tenants": ("(d) HTTP commands from many organizations; table lock", bench_tenants),
        "ryw": ("(e) read-your-writes wait", bench_ryw),
        "webhooks": ("(f) WhatsApp webhook ingestion, outbox delivery, inbox RYW", bench_webhooks),
        "analytics": ("(g) analytics catch-up; endpoint latency, one year", bench_analytics),
        "audit": ("(h) hash-chained export, audit verify, projections verify", bench_audit),
        "privacy": ("(i) personal-data sealing: commands/s and loads, on vs off", bench_privacy),
        "tasks": ("(j) task reminders due at once; GET /crm/tasks, 100k in one org", bench_tasks),
        "ai": ("(k) offline message analysis throughput, one core", bench_ai),
    }


ALIASES = {
    "a": "http",
    "b": "catchup",
    "c": "board",
    "d": "tenants",
    "e": "ryw",
    "f": "webhooks",
    "g": "analytics",
    "h": "audit",
    "i": "privacy",
    "j": "tasks",
    "k": "ai",
}


def print_summary(results: Results) -> None:
    say()
    say("=" * 100)
    say("SUMMARY")
    say("=" * 100)
    width = max([len(r.metric) for r in results.rows] + [20])
    say(f"{'bench':<10} {'metric':<{width}} {'value':>14}  {'ratio / bar'}")
    say("-" * 100)
    for r in results.rows:
        value = (
            "n/a"
            if isinstance(r.value, float) and math.isnan(r.value)
            else (f"{r.value:,.0f}" if abs(r.value) >= 100 else f"{r.value:.2f}")
        )
        tail = r.ratio
        if r.bar:
            verdict = {True: "meets", False: "BELOW", None: ""}[r.meets]
            tail = f"{tail}; bar {r.bar}: {verdict}".strip("; ")
        say(f"{r.bench:<10} {r.metric:<{width}} {value:>10} {r.unit:<11} {tail}")
    for bench, error in results.errors.items():
        say(f"{bench:<10} FAILED: {error}")
    say("-" * 100)
    for bench, seconds in results.durations.items():
        say(f"  {bench}: {seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="where to write the summary (default: bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    benchmarks = _benchmarks()
    if args.list:
        for key, (title, _) in benchmarks.items():
            say(f"{key:<8} {title}")
        return 0
    names = [ALIASES.get(n, n) for n in args.names] or list(benchmarks)
    unknown = [n for n in names if n not in benchmarks]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(benchmarks)}")

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM unwinds like Ctrl+C: servers are stopped and scratch databases dropped
    signal.signal(signal.SIGTERM, _interrupt)
    scale = Scale.make(args.quick)
    info = machine_info()
    say("Loved CRM benchmarks" + (" (--quick)" if args.quick else ""))
    info["background_load_cores"] = f"{background_load():.2f}"
    for key, value in info.items():
        say(f"  {key:<22} {value}")
    if float(info["background_load_cores"]) > 0.2:
        say(
            f"  WARNING: {info['background_load_cores']} cores were busy before the run started "
            "(other work on this machine): every figure below is skewed by it; each measured "
            "window prints the cores used by 'everything else'"
        )
    results = Results()
    started = time.perf_counter()
    for name in names:
        title, run = benchmarks[name]
        say()
        say(f"== {title} [{name}]")
        t0 = time.perf_counter()
        try:
            run(scale, results)
        except KeyboardInterrupt:
            results.errors[name] = "interrupted"
            results.durations[name] = time.perf_counter() - t0
            break
        except Exception as error:
            traceback.print_exc()
            results.errors[name] = f"{type(error).__name__}: {error}"
        results.durations[name] = time.perf_counter() - t0
    results.durations["total"] = time.perf_counter() - started
    print_summary(results)
    for bench, notes in results.notes.items():
        for note in notes:
            say(f"  note [{bench}]: {note}")
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "benchmarks": names,
        "machine": info,
        **results.as_json(),
    }
    try:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str))
        say(f"summary written to {args.json}")
    except OSError as error:
        say(f"could not write {args.json}: {error}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
