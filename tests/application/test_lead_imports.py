"""Lead imports through the application (both backends): bounded memory for a large file (the
file is spooled and read row by row, never held whole, as the HTTP route feeds it), two uploads
at once, and counting as a property."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.context import Ctx
from application.leads.imports import ImportReport, ImportRequest, import_leads
from application.leads.spreadsheet import Spool
from application.store import CrmApplication
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, Role
from interfaces.database import make_engine
from interfaces.services import build_app
from interfaces.settings import Settings

NOTE = "x" * 2000  # wide rows (two such notes): a file of megabytes from a few thousand rows


@pytest.fixture
def app(settings: Settings) -> Iterator[CrmApplication]:
    """The event store alone: no projector threads allocating beside the import."""
    engine = make_engine(settings)
    application = build_app(settings, engine)
    yield application
    application.close()
    engine.dispose()


def organization(app: CrmApplication, owner: UUID = UUID(int=7)) -> Ctx:
    actor = Actor(kind="user", id=str(owner))
    org = Organization.register(name="Big import", owner_user_id=owner, actor=actor)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=actor)
    app.commit(org, pipeline)
    return Ctx(organization_id=org.id, user_id=owner, role=Role.ADMIN, actor=actor)


def chunks(rows: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """The CSV, generated on the fly, in chunks as a request body arrives."""
    pending = ["full_name,email,custom.note,custom.more\r\n"]
    length = 0
    for i in range(rows):
        line = f"Lead {i},lead{i}@example.com,{NOTE},{NOTE}\r\n"
        pending.append(line)
        length += len(line)
        if length >= size:
            yield "".join(pending).encode()
            pending, length = [], 0
    yield "".join(pending).encode()


def test_a_large_file_is_imported_with_bounded_memory(app: CrmApplication) -> None:
    ctx = organization(app)
    rows = 2_500
    tracemalloc.start()
    try:
        spool = Spool(1 << 30)
        for chunk in chunks(rows):
            spool.write(chunk)
        spool.finish()
        report = import_leads(app, spool, ImportRequest(file_name="big.csv", max_rows=rows), ctx)
        spool.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (report.rows, report.created, report.failed) == (rows, rows, 0)
    assert spool.size > 10_000_000
    # the file alone would be 10 MB as bytes and 10 more as text: a third of that is room for
    # the spool's in-memory megabyte, the rows in flight and the store's own buffers
    assert peak < spool.size / 3, f"peak {peak / 1e6:.1f} MB for a {spool.size / 1e6:.1f} MB file"


def spooled(text: str) -> Spool:
    spool = Spool(1 << 20)
    spool.write(text.encode())
    spool.finish()
    return spool


def run(app: CrmApplication, ctx: Ctx, text: str, **kw: Any) -> ImportReport:
    spool = spooled(text)
    try:
        return import_leads(app, spool, ImportRequest(file_name="t.csv", **kw), ctx)
    finally:
        spool.close()


def test_two_uploads_of_one_file_at_once_capture_each_row_once(app: CrmApplication) -> None:
    ctx = organization(app)
    rows = 120
    text = "full_name,email\r\n" + "".join(f"L{i},l{i}@example.com\r\n" for i in range(rows))
    reports: list[ImportReport] = []

    def upload() -> None:
        reports.append(run(app, ctx, text))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.created for r in reports) == rows
    assert sum(r.skipped for r in reports) == rows
    assert all(r.failed == 0 and r.created + r.skipped == rows for r in reports)
    # the lost races left no pooled connection broken (PostgreSQL: a failed key insert once
    # left a statement believed prepared): every later capture still works
    more = "full_name,email\r\n" + "".join(f"M{i},m{i}@example.com\r\n" for i in range(50))
    assert run(app, ctx, more).created == 50


ROW = st.tuples(
    st.sampled_from(["Ana", "Bia", ""]),  # an empty name fails the row
    st.sampled_from(["a@example.com", "b@example.com", "", "not-an-email"]),
    st.sampled_from(["+55 11 90000-0001", "", "12"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(ROW, max_size=8), dry_run=st.booleans())
def test_every_row_is_counted_once_and_each_key_captured_once(
    app: CrmApplication, lines: list[tuple[str, str, str]], dry_run: bool
) -> None:
    ctx = organization(app, owner=uuid4())
    text = "full_name,email,phone\r\n" + "".join(f"{n},{e},{p}\r\n" for n, e, p in lines)

    report = run(app, ctx, text, dry_run=dry_run)
    again = run(app, ctx, text)

    valid = [(e, p) for n, e, p in lines if n and (e or p) and e != "not-an-email" and p != "12"]
    assert report.rows == len(lines)
    assert report.created + report.skipped + report.failed == len(lines)
    assert report.created == len(set(valid))
    assert report.failed == len(lines) - len(valid)
    if dry_run:  # the dry run foretold the real one
        assert (again.created, again.skipped, again.failed) == (
            report.created,
            report.skipped,
            report.failed,
        )
    else:  # a re-upload skips every valid row
        assert (again.created, again.skipped) == (0, len(valid))
