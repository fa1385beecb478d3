"""A large lead import keeps memory bounded: the file is spooled and read row by row, never
held whole (both backends, through the application's import path as the HTTP route feeds it)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from uuid import UUID

import pytest

from application.context import Ctx
from application.leads.imports import ImportRequest, import_leads
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


def organization(app: CrmApplication) -> Ctx:
    owner = UUID(int=7)
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
