"""Auditors' use case: export an organization's history straight from the event log.

The export reads the organization's stored events through the tenant column's index, a page at a
time up to a position fixed when it starts (a consistent snapshot), and yields the hash-chained
lines of `application.audit.chain` page by page: memory stays flat however long the history.
Each export is recorded first, as a `HistoryExport.Made` event of the organization.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import Notification

from application.audit.chain import Chain, event_record
from application.personal_data import PersonalDataMapper
from application.store import CrmApplication
from domain import audit, call, conversation, lead, organization, pipeline, security
from domain.audit import HistoryExport
from domain.base import TenantAggregate
from domain.errors import InvalidValueError
from domain.values import Actor

#: events read per query of the log (and lines per chunk of the stream)
PAGE = 500
_AGGREGATE_MODULES = (audit, call, conversation, lead, organization, pipeline, security)
# an unencoded "+01:00" in a query string arrives as " 01:00"
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


@runtime_checkable
class OrganizationLog(Protocol):
    """An event store that can read one organization's notifications through an index."""

    def select_organization_notifications(
        self, organization_id: UUID, start: int = 0, limit: int = 1000, stop: int | None = None
    ) -> list[Notification]: ...


@dataclass(frozen=True)
class ExportFilters:
    """By event time (`since` inclusive, `until` exclusive, UTC) and by event type names."""

    since: datetime | None = None
    until: datetime | None = None
    types: frozenset[str] = frozenset()

    def admits(self, event_type: str, time: datetime) -> bool:
        if self.types and event_type not in self.types:
            return False
        if self.since is not None and time < self.since:
            return False
        return self.until is None or time < self.until


@dataclass(frozen=True)
class Export:
    organization_id: UUID
    filters: ExportFilters
    up_to: int  #: the last log position the export may read (the head when it started)
    position: int  #: where the export's own record is in the log


@cache
def event_types() -> frozenset[str]:
    """Every event type name an aggregate of the domain can record, e.g. `Lead.MovedToStage`."""
    names: set[str] = set()
    for module in _AGGREGATE_MODULES:
        for kind in vars(module).values():
            if not (isinstance(kind, type) and issubclass(kind, TenantAggregate)):
                continue
            if kind.__module__ != module.__name__:
                continue
            events = (v for n, v in vars(kind).items() if n != "Event" and isinstance(v, type))
            names.update(e.__qualname__ for e in events if issubclass(e, CanMutateAggregate))
    return frozenset(names)


def parse_time(field: str, value: str | None) -> datetime | None:
    """An ISO 8601 date-time (naive means UTC), as UTC; 422 for anything else."""
    if value is None or not value.strip():
        return None
    text = _SPACED_OFFSET.sub(r"\1+\2", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # year 1 at +05:00 has no UTC equivalent
        raise InvalidValueError(field, "must be an ISO 8601 date-time") from None


def parse_filters(
    since: str | None = None, until: str | None = None, types: str | None = None
) -> ExportFilters:
    """The filters of an export from their text form; `types` is comma-separated."""
    start, end = parse_time("since", since), parse_time("until", until)
    if start is not None and end is not None and start > end:
        raise InvalidValueError("since", "must not be after until")
    names = frozenset(n.strip() for n in (types or "").split(",")) - {""}
    if types and types.strip() and not names:
        raise InvalidValueError("types", "names no event type")
    unknown = sorted(names - event_types())
    if unknown:
        shown = ", ".join(repr(n[:100]) for n in unknown[:5])
        raise InvalidValueError(
            "types", f"unknown event type {shown} (names look like Lead.MovedToStage)"
        )
    return ExportFilters(start, end, names)


def start_export(
    app: CrmApplication,
    organization_id: UUID,
    filters: ExportFilters,
    actor: Actor,
    *,
    channel: str,
) -> Export:
    """Fix the export's end at the log's head, then record the export (just past that end)."""
    up_to = app.recorder.max_notification_id() or 0
    record = HistoryExport.make(
        organization_id=organization_id,
        since=filters.since,
        until=filters.until,
        types=sorted(filters.types),
        up_to=up_to,
        channel=channel,
        actor=actor,
    )
    return Export(organization_id, filters, up_to, app.commit(record))


class ExportLines:
    """The export's lines, one chunk (up to a page of events) at a time; iterate once.

    `chain.count` and `chain.last_hash` tell how many event lines were written and the final
    hash; `progress` is called with the log position reached after each page.
    """

    def __init__(
        self,
        app: CrmApplication,
        export: Export,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.export = export
        self.progress = progress
        self.chain = Chain(export.organization_id)

    def __iter__(self) -> Iterator[bytes]:
        export, chain = self.export, self.chain
        for page in self._pages():
            lines = [
                chain.line(event_record(export.organization_id, position, event))
                for position, event in page
                if export.filters.admits(type(event).__qualname__, event.timestamp)
            ]
            if lines:
                yield b"".join(lines)
        filters = export.filters
        yield chain.trailer(
            since=None if filters.since is None else filters.since.isoformat(),
            until=None if filters.until is None else filters.until.isoformat(),
            types=sorted(filters.types),
            up_to=export.up_to,
        )

    def _pages(self) -> Iterator[list[tuple[int, Any]]]:
        log = self.app.recorder
        if not isinstance(log, OrganizationLog):
            raise TypeError("the event store has no organization column to read through")
        start, org = 0, self.export.organization_id
        while True:
            notifications = log.select_organization_notifications(
                org, start=start, limit=PAGE, stop=self.export.up_to
            )
            if not notifications:
                return
            mapper = self.app.mapper
            if isinstance(mapper, PersonalDataMapper):
                mapper.prefetch(notifications)
            yield [(n.id, mapper.to_domain_event(n)) for n in notifications]
            start = notifications[-1].id
            if self.progress is not None:
                self.progress(start)
            if len(notifications) < PAGE:
                return
