"""(j) Lead import: rows/s and memory for a large CSV, through the application's import path.

`python -m bench.imports [--rows N] [--backend postgres|sqlite]` (default 100,000 rows on a
scratch PostgreSQL database). The file is generated on the fly and fed to the spool in 64 KiB
chunks, as the HTTP route feeds it: a dry run (every row checked, nothing written), a real run
(every row captured through `capture_lead`: sealing of personal data, group commit, the table
lock) and a re-upload (every row skipped). Printed: rows/s of each and the process's peak RSS
growth; with `--trace`, also the peak of Python allocations (tracemalloc, which slows the run
several times) against the file's size. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

from application.context import Ctx
from application.leads.imports import ImportReport, ImportRequest, import_leads
from application.leads.spreadsheet import Spool
from application.store import CrmApplication
from bench.common import scratch_db, settings_for
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, Role
from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.services import build_app
from interfaces.settings import Settings, load_settings

HEADER = "full_name,email,phone,company,source,estimated_value,custom.segment,custom.note\r\n"


def csv_chunks(rows: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A CSV of `rows` distinct leads, in chunks of about `size` bytes."""
    buffer = [HEADER]
    length = len(HEADER)
    for i in range(rows):
        line = (
            f"Lead {i},lead{i}@example.com,+55 11 9{i:08d},Company {i % 997},fair,"
            f'{i % 10_000}.50,segment {i % 7},"a note, with a comma, for row {i}"\r\n'
        )
        buffer.append(line)
        length += len(line)
        if length >= size:
            yield "".join(buffer).encode()
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer).encode()


def organization(app: CrmApplication) -> Ctx:
    owner = uuid4()
    actor = Actor(kind="user", id=str(owner))
    org = Organization.register(name="Import bench", owner_user_id=owner, actor=actor)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=actor)
    app.commit(org, pipeline)
    return Ctx(organization_id=org.id, user_id=owner, role=Role.ADMIN, actor=actor)


def run_import(
    app: CrmApplication, ctx: Ctx, rows: int, *, dry_run: bool = False, trace: bool = False
) -> tuple[ImportReport, float, int, int]:
    """(report, seconds, peak traced bytes, file bytes) of one upload of `rows` rows."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    spool = Spool(1 << 34)
    try:
        for chunk in csv_chunks(rows):
            spool.write(chunk)
        spool.finish()
        request = ImportRequest(file_name="bench.csv", dry_run=dry_run, max_rows=rows)
        report = import_leads(app, spool, request, ctx)
    finally:
        spool.close()
    seconds = time.perf_counter() - started
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return report, seconds, peak, spool.size


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(settings: Settings, rows: int, *, trace: bool = False) -> None:
    engine = make_engine(settings)
    migrate(settings, engine)
    app = build_app(settings, engine)
    ctx = organization(app)
    base = rss_mb()
    for label, dry in (("dry run", True), ("real run", False), ("re-upload", False)):
        report, seconds, peak, size = run_import(app, ctx, rows, dry_run=dry, trace=trace)
        traced = f", peak traced {peak / 1e6:.1f} MB" if trace else ""
        print(
            f"{label:>10}: {rows} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s "
            f"(created {report.created}, skipped {report.skipped}, failed {report.failed}); "
            f"file {size / 1e6:.1f} MB{traced}, max RSS +{rss_mb() - base:.0f} MB",
            flush=True,
        )
    app.close()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--trace", action="store_true", help="measure allocations too")
    args = parser.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'crm.db'}"
            settings = load_settings({"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": "x" * 40})
            bench(settings, args.rows, trace=args.trace)
        return
    with scratch_db("j_imports") as name:
        bench(settings_for(name), args.rows, trace=args.trace)


if __name__ == "__main__":
    main()
