"""Importing leads from a CSV file: a dry run that only reports, or a real run that captures.

A real run records one `LeadImport` (who, which file, which mapping; then the counts) and
captures each valid row through `capture_lead`, the path of `POST /crm/leads` (its permission
rule and assignment included). Each row's lead id is derived from the organization and the
row's key — its external id, else its email and phone — so capturing a row a second time (a
re-upload, two uploads at once, a repeated line) finds its lead there and is *skipped*, with
no lookup table: the event store's version check is the arbiter. Rows are read and planned
one by one and captured on a few threads with a bounded number in flight (so memory does not
grow with the file), whose saves the store groups into shared transactions. A dry run keeps one
set entry per distinct row (~80 bytes) to tell repeats within the file.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

import msgspec

from application.context import Ctx
from application.leads.commands import (
    CaptureLead,
    _pipeline,
    capture_lead,
)
from application.leads.import_rows import RowPlanner, check_capture
from application.leads.spreadsheet import (
    ImportTooLargeError,
    Layout,
    Row,
    RowError,
    Spool,
    choose_delimiter,
    choose_encoding,
    layout,
    records,
    row_of,
    text_of,
)
from application.permissions import NotPermittedError
from application.ports import ReadModels
from application.store import CrmApplication
from domain.errors import (
    DomainError,
    InvalidValueError,
    VersionConflictError,
)
from domain.lead_import import LeadImport

MAX_REPORTED_ERRORS = 1000
#: concurrent captures: each waits on the store's group commit, so more workers make bigger
#: commit groups (fewer fsyncs); bounded by the event store's connection pool
WORKERS = 8


class ImportRowError(msgspec.Struct, frozen=True):
    """Why a row was not imported: its number (the header is row 1), column and reason."""

    row: int
    column: str | None
    message: str


class ImportReport(msgspec.Struct, frozen=True):
    """What an import did (or, in a dry run, would do) with each row of the file."""

    import_id: UUID | None
    dry_run: bool
    file_name: str
    encoding: str
    delimiter: str
    mapping: dict[str, str]
    ignored_columns: list[str]
    rows: int
    created: int
    skipped: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool
    position: int


@dataclass(frozen=True)
class ImportRequest:
    file_name: str
    mapping: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    dry_run: bool = False
    max_rows: int = 1_000_000


@dataclass
class _Tally:
    """Outcome counts, updated from the capture threads (hence the lock)."""

    created: int = 0
    skipped: int = 0
    failed: int = 0
    truncated: bool = False

    def __post_init__(self) -> None:
        self.errors: list[ImportRowError] = []
        self._lock = threading.Lock()

    def count(self, outcome: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def fail(self, number: int, column: str | None, message: str) -> None:
        with self._lock:
            self.failed += 1
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append(ImportRowError(number, column, message))
            else:
                self.truncated = True


def import_leads(
    app: CrmApplication,
    spool: Spool,
    request: ImportRequest,
    ctx: Ctx,
    *,
    read_models: ReadModels | None = None,
) -> ImportReport:
    """Read the spooled file twice: once to check its shape and count its rows (nothing is
    written if that fails), once to check or capture row by row (a row without an assignee
    through the assignment rules; their least-open counts need `read_models`)."""
    encoding = choose_encoding(spool, request.encoding)
    lay, count = _survey(spool, encoding, request)
    started: LeadImport | None = None
    if not request.dry_run:
        started = LeadImport.start(
            organization_id=ctx.organization_id,
            file_name=request.file_name,
            rows=count,
            mapping=lay.mapping,
            encoding=encoding.removesuffix("-sig"),
            delimiter=lay.delimiter,
            sha256=spool.sha256,
            actor=ctx.actor,
        )
        app.commit(started)
    tally = _Tally()
    with closing(_rows(spool, lay)) as rows:  # closed here, even when the run stops early
        _Rows(app, ctx, lay, tally, dry_run=request.dry_run, read_models=read_models).run(rows)
    position = 0
    if started is not None:
        started.finish(
            created=tally.created, skipped=tally.skipped, failed=tally.failed, actor=ctx.actor
        )
        position = app.commit(started)
    return ImportReport(
        import_id=started.id if started else None,
        dry_run=request.dry_run,
        file_name=request.file_name,
        encoding=encoding.removesuffix("-sig"),
        delimiter=lay.delimiter,
        mapping=lay.mapping,
        ignored_columns=list(lay.ignored),
        rows=count,
        created=tally.created,
        skipped=tally.skipped,
        failed=tally.failed,
        errors=sorted(tally.errors, key=lambda e: e.row),
        errors_truncated=tally.truncated,
        position=position,
    )


def _survey(spool: Spool, encoding: str, request: ImportRequest) -> tuple[Layout, int]:
    """The layout and the number of data rows; 422/413 before anything is written."""
    with _reading(spool, encoding) as text:
        first = text.readline()
        delimiter = choose_delimiter(first, request.delimiter)
        header = next(records(iter([first]), delimiter), [])
        lay = layout(header, request.mapping, encoding, delimiter)
        count = 0
        for cells in _checked(records(text, delimiter)):
            if cells:
                count += 1
                if count > request.max_rows:
                    raise ImportTooLargeError(f"the file has more than {request.max_rows} rows")
    return lay, count


@contextmanager
def _reading(spool: Spool, encoding: str) -> Iterator[io.TextIOWrapper]:
    """The spool as text; the wrapper is detached after, so the spool stays open."""
    text = text_of(spool, encoding)
    try:
        yield text
    finally:
        text.detach()


def _checked(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """Records, with decoding and CSV errors turned into a 422 naming the record."""
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise InvalidValueError(
                "encoding", f"row {number + 1} is not valid text in the chosen encoding"
            ) from None
        except Exception as error:  # noqa: BLE001 - csv.Error: a malformed record
            raise InvalidValueError("file", f"row {number + 1}: {error}") from None
        number += 1
        yield cells


def _rows(spool: Spool, lay: Layout) -> Generator[Row | RowError, None, None]:
    with _reading(spool, lay.encoding) as text:
        text.readline()  # the header
        for number, cells in enumerate(_checked(records(text, lay.delimiter)), start=2):
            if not cells:
                continue
            try:
                yield row_of(number, cells, lay)
            except RowError as error:
                error.number = number
                yield error


@dataclass(frozen=True)
class _Planned:
    number: int
    command: CaptureLead
    lead_id: UUID


class _Rows:
    """Turns rows into captures (or checks of them) on a pool of workers, counting outcomes."""

    def __init__(
        self,
        app: CrmApplication,
        ctx: Ctx,
        lay: Layout,
        tally: _Tally,
        *,
        dry_run: bool,
        read_models: ReadModels | None = None,
    ) -> None:
        self.app, self.ctx, self.lay, self.tally, self.dry_run = app, ctx, lay, tally, dry_run
        self.read_models = read_models
        self.pipeline = _pipeline(app, ctx)
        self.planner = RowPlanner(app, ctx, lay, self.pipeline)
        #: lead ids seen in this file (a dry run has no store to tell it a row repeats)
        self.seen: set[bytes] = set()
        #: the first failure that is not a row's own (the database is gone): stops the run
        self.broken: Exception | None = None
        self.flying_lock = threading.Lock()

    def run(self, rows: Iterator[Row | RowError]) -> None:
        """Plan rows here, capture them on the pool: at most 2 × WORKERS rows in flight (the
        memory bound), as many concurrent saves as workers (the size of a commit group)."""
        act = self._check if self.dry_run else self._capture
        slots = threading.BoundedSemaphore(2 * WORKERS)
        #: rows on the workers by lead id: a repeat waits for its first, so the first wins
        flying: dict[UUID, Future[None]] = {}
        with ThreadPoolExecutor(WORKERS, "crm-import") as pool:
            for row in rows:
                if (planned := self._plan(row)) is None:
                    continue
                with self.flying_lock:
                    first = flying.get(planned.lead_id)
                if first is not None:
                    first.result()
                slots.acquire()
                if self.broken is not None:
                    break
                future = pool.submit(self._outcome, planned, act)
                with self.flying_lock:
                    flying[planned.lead_id] = future
                future.add_done_callback(partial(self._landed, flying, planned.lead_id, slots))
        if self.broken is not None:  # the store failed: the import stops unfinished
            raise self.broken

    def _landed(
        self,
        flying: dict[UUID, Future[None]],
        lead_id: UUID,
        slots: threading.BoundedSemaphore,
        future: Future[None],
    ) -> None:
        with self.flying_lock:
            if flying.get(lead_id) is future:
                del flying[lead_id]
        slots.release()

    def _plan(self, row: Row | RowError) -> _Planned | None:
        if isinstance(row, RowError):
            self.tally.fail(row.number, row.column, row.message)
            return None
        try:
            command, lead_id = self.planner.command(row)
        except RowError as error:
            self.tally.fail(row.number, error.column, error.message)
            return None
        if self.dry_run:
            if lead_id.bytes in self.seen:
                self.tally.count("skipped")
                return None
            self.seen.add(lead_id.bytes)
        return _Planned(row.number, command, lead_id)

    def _outcome(self, planned: _Planned, act: Any) -> None:
        """Check or capture one row, on a worker; a lead already there means skipped."""
        try:
            if self.app.organization_of(planned.lead_id) is not None:
                self.tally.count("skipped")
                return
            act(planned)
        except VersionConflictError:  # captured meanwhile: by another upload, or a repeat
            self.tally.count("skipped")
            return
        except (DomainError, NotPermittedError) as error:
            column, message = self.planner.explain(error)
            self.tally.fail(planned.number, column, message)
            return
        except Exception as error:  # noqa: BLE001 - handed to the planning thread
            self.broken = self.broken or error
            return
        self.tally.count("created")

    def _capture(self, planned: _Planned) -> None:
        capture_lead(
            self.app,
            planned.command,
            self.ctx,
            lead_id=planned.lead_id,
            read_models=self.read_models,
        )

    def _check(self, planned: _Planned) -> None:
        check_capture(self.app, self.ctx, self.pipeline, planned.command, planned.lead_id)
