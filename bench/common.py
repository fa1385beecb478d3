"""Shared pieces of the benchmarks: scratch databases, scales, timers, CPU meters, results.

Benchmarks never assert timings: they print figures and ratios against a raw baseline measured
in the same run, and collect rows for the final summary (printed and written as JSON).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.settings import Settings, load_settings

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
PG_ADMIN = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres connect_timeout=5"
SECRET = "bench-secret-key-of-at-least-32-characters-long!"


def dsn(dbname: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname}"


def url(dbname: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def settings_for(dbname: str, **extra: str) -> Settings:
    return load_settings({"CRM_DATABASE_URL": url(dbname), "CRM_SECRET_KEY": SECRET, **extra})


@contextmanager
def scratch_db(name: str) -> Iterator[str]:
    """Create and migrate a fresh database; drop it afterwards whatever happens."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = settings_for(name)
        engine = make_engine(settings)
        try:
            migrate(settings, engine)
        finally:
            engine.dispose()
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """Counts and time bounds; `--quick` shrinks every one of them."""

    quick: bool
    raw_seconds: float  # each raw insert baseline
    lib_seconds: float  # each library-level write loop
    http_seconds: float  # each HTTP load phase (after warm-up)
    http_warmup: float
    http_conns: int  # concurrent HTTP connections
    leads_per_conn: int
    tenant_orgs: int  # (d) organizations
    threads: int  # library-level writer threads
    catchup_events: int  # (b) events written before catch-up
    catchup_orgs: int
    catchup_timeout: float  # per catch-up run of one projector
    catchup_timeout_all: float  # the run of all four together
    board_leads: int  # (c) leads of the big organization
    board_orgs: int  # (c) organizations in all
    board_other_leads: int  # (c) leads of each other organization
    board_iterations: int
    ryw_iterations: int

    @staticmethod
    def make(quick: bool) -> Scale:
        if quick:
            return Scale(
                quick=True,
                raw_seconds=1.0,
                lib_seconds=1.0,
                http_seconds=2.5,
                http_warmup=0.5,
                http_conns=24,
                leads_per_conn=2,
                tenant_orgs=6,
                threads=16,
                catchup_events=5_000,
                catchup_orgs=50,
                catchup_timeout=10.0,
                catchup_timeout_all=15.0,
                board_leads=10_000,
                board_orgs=100,
                board_other_leads=10,
                board_iterations=50,
                ryw_iterations=30,
            )
        return Scale(
            quick=False,
            raw_seconds=4.0,
            lib_seconds=4.0,
            http_seconds=12.0,
            http_warmup=2.0,
            http_conns=40,
            leads_per_conn=4,
            tenant_orgs=20,
            threads=16,
            catchup_events=100_000,
            catchup_orgs=500,
            catchup_timeout=25.0,
            catchup_timeout_all=40.0,
            board_leads=100_000,
            board_orgs=1_000,
            board_other_leads=50,
            board_iterations=200,
            ryw_iterations=200,
        )


# --------------------------------------------------------------------------- statistics


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank on sorted data); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> float:
    return seconds * 1000.0


def fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def latency_line(latencies: list[float]) -> str:
    return (
        f"p50 {ms(pct(latencies, 50)):.2f} ms, p95 {ms(pct(latencies, 95)):.2f} ms, "
        f"p99 {ms(pct(latencies, 99)):.2f} ms, mean {ms(statistics.fmean(latencies)):.2f} ms"
        if latencies
        else "no samples"
    )


# --------------------------------------------------------------------------- CPU accounting

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _postgres_cpu() -> float:
    """CPU seconds of every live postgres process (backends that exited are not counted)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += _proc_cpu(int(entry))
    return total


def _machine_cpu() -> tuple[float, float]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) / CLK_TCK, idle / CLK_TCK


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class CpuSample:
    wall: float
    client: float
    server: float
    postgres: float
    machine_total: float
    machine_idle: float


class CpuMeter:
    """CPU seconds used by this process, a server process and PostgreSQL over a window."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.start: CpuSample | None = None
        self.delta: CpuSample | None = None

    def _sample(self) -> CpuSample:
        total, idle = _machine_cpu()
        return CpuSample(
            wall=time.perf_counter(),
            client=_self_cpu(),
            server=_proc_cpu(self.server_pid) if self.server_pid else 0.0,
            postgres=_postgres_cpu(),
            machine_total=total,
            machine_idle=idle,
        )

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        assert self.start is not None
        s = self.start
        self.delta = CpuSample(
            wall=end.wall - s.wall,
            client=end.client - s.client,
            server=end.server - s.server,
            postgres=end.postgres - s.postgres,
            machine_total=end.machine_total - s.machine_total,
            machine_idle=end.machine_idle - s.machine_idle,
        )

    def describe(self, operations: int, what: str = "op") -> str:
        d = self.delta
        if d is None or operations <= 0:
            return "cpu: n/a"
        busy = 1 - d.machine_idle / d.machine_total if d.machine_total > 0 else float("nan")
        parts = [f"machine busy {busy * 100:.0f}% of {os.cpu_count()} cores"]
        parts.append(f"bench process {d.client / operations * 1e3:.2f} ms/{what}")
        if self.server_pid:
            parts.append(f"server {d.server / operations * 1e3:.2f} ms/{what}")
        parts.append(f"postgres {d.postgres / operations * 1e3:.2f} ms/{what}")
        parts.append(f"everything else {self.other_cores():.2f} cores")
        return "cpu: " + ", ".join(parts)

    def other_cores(self) -> float:
        """Cores used by anything but this process, the server and PostgreSQL (noise)."""
        d = self.delta
        if d is None or d.wall <= 0:
            return float("nan")
        busy_cpu_seconds = d.machine_total - d.machine_idle  # /proc/stat sums every core
        ours = d.client + d.server + d.postgres
        return max(0.0, (busy_cpu_seconds - ours) / d.wall)

    def as_dict(self, operations: int) -> dict[str, float]:
        d = self.delta
        if d is None or operations <= 0:
            return {}
        busy = 1 - d.machine_idle / d.machine_total if d.machine_total > 0 else float("nan")
        return {
            "machine_busy": busy,
            "bench_cpu_ms_per_op": d.client / operations * 1e3,
            "server_cpu_ms_per_op": d.server / operations * 1e3,
            "postgres_cpu_ms_per_op": d.postgres / operations * 1e3,
            "other_cores": self.other_cores(),
        }


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    bench: str
    metric: str
    value: float
    unit: str
    ratio: str = ""  # e.g. "23% of raw insert/s"
    bar: str = ""  # the target, printed only
    meets: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Results:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: dict[str, list[str]] = {}
        self.errors: dict[str, str] = {}
        self.durations: dict[str, float] = {}

    def add(self, bench: str, metric: str, value: float, unit: str, **kw: Any) -> Row:
        row = Row(bench, metric, value, unit, **kw)
        self.rows.append(row)
        return row

    def note(self, bench: str, text: str) -> None:
        self.notes.setdefault(bench, []).append(text)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
            "errors": self.errors,
            "durations_s": self.durations,
        }


def say(text: str = "") -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info = {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    try:
        with psycopg.connect(PG_ADMIN) as conn:
            info["postgresql"] = str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "shared_buffers", "max_connections"):
                info[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    except psycopg.Error as error:
        info["postgresql"] = f"unreachable: {error}"
    return info


def background_load(seconds: float = 1.0) -> float:
    """Cores busy while this process sleeps: other work on the machine skews every figure."""
    total0, idle0 = _machine_cpu()
    time.sleep(seconds)
    total1, idle1 = _machine_cpu()
    if total1 <= total0:
        return 0.0
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then t[0] is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def drive(
    threads: int, seconds: float, step: Callable[[int, int], None]
) -> tuple[int, float, list[float]]:
    """`step(thread, i)` from each thread until the deadline: (commands, seconds, latencies)."""
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    box: dict[str, float] = {}

    def work(k: int) -> None:
        try:
            start.wait()
            deadline, i = box["deadline"], 0
            while counts[k] < 100_000:
                t0 = time.perf_counter()
                if t0 >= deadline:
                    break
                step(k, i)
                i += 1
                latencies[k].append(time.perf_counter() - t0)
                counts[k] += 1
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    box["deadline"] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in pool:
        t.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts), elapsed, [x for lat in latencies for x in lat]
