"""Exporting leads as spreadsheet rows: the filtered list, in the columns the import takes.

Columns: the lead fields of `spreadsheet.FIELDS` (the stage by name, the assignee by member
id, `external_id` = the lead's id, which an import into the same organization recognises as
that lead), then one `custom.KEY` column per custom field key found among the exported leads,
in alphabetical order. The list is walked by keyset pages (`queries.list_leads`), each page in
a short read transaction of its own: memory stays bounded whatever the number of leads. A
first walk collects the custom keys (the header must name them before the first row).
Values are plain builtins; the interface writes them as CSV cells.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Connection

from application.leads import queries
from application.leads.spreadsheet import CUSTOM, FIELDS
from application.paging import MAX_LIMIT

Reading = Callable[[], AbstractContextManager[Connection]]


@dataclass(frozen=True)
class LeadFilters:
    """The filters of `GET /crm/leads`, minus paging."""

    stage_id: UUID | None = None
    assigned_to: UUID | None = None
    q: str | None = None
    status: str | None = None
    include_archived: bool = False


def _pages(reading: Reading, org: UUID, filters: LeadFilters) -> Iterator[list[queries.LeadView]]:
    cursor: str | None = None
    while True:
        with reading() as conn:
            page = queries.list_leads(
                conn,
                org,
                stage_id=filters.stage_id,
                assigned_to=filters.assigned_to,
                q=filters.q,
                status=filters.status,
                include_archived=filters.include_archived,
                limit=MAX_LIMIT,
                cursor=cursor,
            )
        yield page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def check_filters(reading: Reading, org: UUID, filters: LeadFilters) -> None:
    """Refuse bad filters (422) before the answer starts streaming."""
    with reading() as conn:
        queries.list_leads(
            conn,
            org,
            stage_id=filters.stage_id,
            assigned_to=filters.assigned_to,
            q=filters.q,
            status=filters.status,
            include_archived=filters.include_archived,
            limit=1,
        )


def lead_rows(reading: Reading, org: UUID, filters: LeadFilters) -> Iterator[list[Any]]:
    """The header, then one row per lead (newest first), page by page."""
    keys: set[str] = set()
    for items in _pages(reading, org, filters):
        for lead in items:
            keys.update(lead.custom_fields)
    custom = sorted(keys)
    with reading() as conn:
        stage_names = {s.id: s.name for s in queries.list_stages(conn, org)}
    yield [*FIELDS, *(CUSTOM + k for k in custom)]
    for items in _pages(reading, org, filters):
        for lead in items:
            yield [
                lead.full_name,
                lead.email,
                lead.phone,
                lead.company,
                lead.source,
                None if lead.estimated_value is None else str(lead.estimated_value),
                stage_names.get(lead.stage_id, str(lead.stage_id)),
                None if lead.assigned_to is None else str(lead.assigned_to),
                str(lead.id),
                *(lead.custom_fields.get(k) for k in custom),
            ]
