"""Leads in and out as spreadsheets: `POST /crm/leads/import`, `GET /crm/leads/export`.

The import reads its body as a stream — a raw `text/csv` body (what `curl --data-binary`
sends) or a `multipart/form-data` upload with the file in any part that has a file name (what
a browser form or `curl -F file=@leads.csv` sends) — into a spool with a size limit, so a large
file never sits in memory; it skips the app-wide body limit and NUL scan (which would read the
whole body) and refuses NUL itself, per cell. The export streams CSV page by page.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Litestar, Request, get, post
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream
from multipart import (  # type: ignore[import-untyped]
    MultipartSegment,
    ParserError,
    PushMultipartParser,
)

from application.leads import exports, imports
from application.leads.spreadsheet import ImportTooLargeError, Spool
from application.permissions import Permission
from interfaces.http.common import read_after
from interfaces.http.csv_tables import MEDIA_TYPE, cell
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.LEADS_READ}
#: `streamed_body`: the app's before-request hook leaves the body to the handler
WRITE = {"permission": Permission.LEADS_WRITE, "streamed_body": True}
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', re.IGNORECASE)
_ROWS_PER_CHUNK = 200
_FORM_FIELDS = ("mapping", "encoding", "delimiter")


class LeadSpreadsheetController(Controller):
    path = "/crm/leads"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["leads"]  # noqa: RUF012

    @post(
        "/import",
        opt=WRITE,
        status_code=200,
        operation_id="importLeads",
        request_max_body_size=None,  # the spool enforces CRM_IMPORT_MAX_BYTES as it reads
    )
    async def import_leads(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        mapping: Annotated[str | None, QueryParameter(max_length=20_000)] = None,
        encoding: FromQuery[str | None] = None,
        delimiter: FromQuery[str | None] = None,
        dry_run: FromQuery[bool] = False,
        file_name: Annotated[str | None, QueryParameter(max_length=255)] = None,
    ) -> imports.ImportReport:
        """Import leads from a CSV file with a header row: UTF-8 (with or without a byte-order
        mark) or Latin-1 (detected; or `?encoding=utf-8|latin-1`), comma- or
        semicolon-separated (sniffed from the header; or `?delimiter=,|;|tab`). The body is
        the file itself (`Content-Type: text/csv`) or a `multipart/form-data` upload whose
        part with a file name is the file (form fields `mapping`, `encoding`, `delimiter` may
        come along). `mapping` is a JSON object, column header → lead field (`full_name`,
        `email`, `phone`, `company`, `source`, `estimated_value`, `stage` (name or id),
        `assigned_to` (member id), `external_id`, or `custom.KEY`); without it, columns named
        like a field are taken. A row is captured once: its lead id follows from its
        `external_id`, else its email and phone, so a re-upload reports it as skipped.
        `?dry_run=true` checks every row and writes nothing. Failed rows are reported with
        their row number (the header is row 1), column and reason; the others are captured.
        `file_name` names the file in the answer and the audit trail (default: the upload's
        file name, or the raw body's Content-Disposition file name, else `upload.csv`)."""
        settings = services.settings
        spool = Spool(settings.import_max_bytes)
        try:
            fields, name = await _receive(request, spool)
            request_ = imports.ImportRequest(
                file_name=file_name or name or "upload.csv",
                mapping=mapping if mapping is not None else fields.get("mapping"),
                encoding=encoding if encoding is not None else fields.get("encoding"),
                delimiter=delimiter if delimiter is not None else fields.get("delimiter"),
                dry_run=dry_run,
                max_rows=settings.import_max_rows,
            )
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                None,
                partial(
                    imports.import_leads, services.app, spool, request_, ctx, read_models=services
                ),
            )
        except ImportTooLargeError as error:
            raise HTTPException(status_code=413, detail=str(error)) from None
        finally:
            spool.close()

    @get(
        "/export",
        opt=READ,
        sync_to_thread=True,
        operation_id="exportLeads",
        media_type=MEDIA_TYPE,
        response_description="The leads as CSV, in the columns the import takes",
    )
    def export(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        stage_id: FromQuery[UUID | None] = None,
        assigned_to: FromQuery[UUID | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        status: FromQuery[str | None] = None,
        include_archived: FromQuery[bool] = False,
    ) -> Stream:
        """The leads `GET /crm/leads` lists with the same filters, newest first, as CSV
        (RFC 4180, UTF-8): `full_name`, `email`, `phone`, `company`, `source`,
        `estimated_value`, `stage` (its name), `assigned_to`, `external_id` (the lead's id),
        then a `custom.KEY` column per custom field. Importing the file back into this
        organization skips every row; into another, it captures them. Text a spreadsheet
        would run as a formula is prefixed with `'` (the import removes it)."""
        headers = read_after(services, request, "leads")
        filters = exports.LeadFilters(stage_id, assigned_to, q, status, include_archived)
        org = ctx.organization_id
        reading = partial(services.reading, org)
        exports.check_filters(reading, org, filters)
        return Stream(
            _off_the_loop(_csv(exports.lead_rows(reading, org, filters))),
            media_type=MEDIA_TYPE,
            headers=headers | {"Content-Disposition": 'attachment; filename="leads.csv"'},
        )


async def _receive(request: Request[Any, Any, Any], spool: Spool) -> tuple[dict[str, str], str]:
    """Spool the file from the body; the form fields and the file's name."""
    media, params = _content_type(request.headers.get("content-type", ""))
    if media == "multipart/form-data":
        fields, name = await _multipart(request, spool, params.get("boundary", ""))
    else:
        fields, name = {}, _filename(request.headers.get("content-disposition", ""))
        async for chunk in request.stream():
            spool.write(chunk)
    spool.finish()
    if spool.size == 0:
        raise ClientException("the body must be a CSV file with a header row")
    return fields, name


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    media, *rest = value.split(";")
    params = {}
    for item in rest:
        key, _, raw = item.strip().partition("=")
        params[key.lower()] = raw.strip().strip('"')
    return media.strip().lower(), params


def _filename(disposition: str) -> str:
    found = _FILENAME.search(disposition)
    return found.group(1).strip() if found else ""


async def _multipart(
    request: Request[Any, Any, Any], spool: Spool, boundary: str
) -> tuple[dict[str, str], str]:
    if not boundary:
        raise ClientException("a multipart/form-data body needs a boundary")
    fields: dict[str, str] = {}
    name = ""
    field: bytearray | None = None
    part: Any = None
    files = 0
    try:
        with PushMultipartParser(boundary, max_segment_count=16) as parser:
            async for chunk in request.stream():
                for item in parser.parse(chunk):
                    if isinstance(item, MultipartSegment):
                        part = item
                        # the first part with a file name, or named `file` (curl -F 'file=<…')
                        is_file = files == 0 and (item.filename is not None or item.name == "file")
                        files += is_file
                        name = (item.filename or "") if is_file else name
                        field = None if is_file else bytearray()
                    elif item:
                        if field is None:
                            spool.write(item)
                        elif len(field) + len(item) <= 20_000:
                            field.extend(item)
                    elif field is not None and part is not None and part.name in _FORM_FIELDS:
                        fields[part.name] = field.decode("utf-8", "replace")
            parser.parse(b"")
    except ParserError:
        raise ClientException("the multipart/form-data body is malformed") from None
    if files == 0:
        raise ClientException("the multipart/form-data body has no file part")
    return fields, name


def _csv(rows: Iterator[list[Any]]) -> Iterator[bytes]:
    """RFC 4180 text (CRLF, quotes where needed), a chunk per some rows, every cell guarded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for number, row in enumerate(rows, start=1):
        writer.writerow([cell(value) for value in row])
        if number % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


async def _off_the_loop(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk is read (from the database) on the thread pool, not the event loop."""
    loop = asyncio.get_running_loop()
    while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
        yield chunk


def document_spreadsheets(app: Litestar) -> None:
    """The import's body, which its handler reads as a stream (so Litestar cannot describe
    it), and its 413; once at start, after the problems rewrite."""
    item = (app.openapi_schema.paths or {}).get("/crm/leads/import")
    operation: Operation | None = getattr(item, "post", None)
    if operation is None:
        return
    text = Schema(type=OpenAPIType.STRING, description="the CSV file, header row first")
    form = Schema(
        type=OpenAPIType.OBJECT,
        required=["file"],
        properties={
            "file": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
            **{name: Schema(type=OpenAPIType.STRING) for name in _FORM_FIELDS},
        },
    )
    operation.request_body = RequestBody(
        required=True,
        content={
            "text/csv": OpenAPIMediaType(schema=text),
            "multipart/form-data": OpenAPIMediaType(schema=form),
        },
    )
    responses = dict(operation.responses or {})
    if "422" in responses and "413" not in responses:
        too_large = copy.deepcopy(responses["422"])
        if isinstance(too_large, OpenAPIResponse):
            too_large.description = "Content Too Large: more bytes or rows than an import takes"
        responses["413"] = too_large
    operation.responses = dict(sorted(responses.items()))
