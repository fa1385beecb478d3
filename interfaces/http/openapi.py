"""The OpenAPI document tells the truth about errors and alternate formats.

Litestar documents its own `{status_code, detail, extra}` error body and only the errors it can
infer (400); this rewrites the document once at start: one `Problem` schema, and on each
operation the problems its guard and its commands can answer. Litestar also documents only the
JSON body of a success; operations whose handler says `opt={"csv": Tables(...)}` answer `text/csv`
too (`Accept: text/csv` or `?format=csv`), and that content is added beside the JSON, described
from the report's own type (its tables, their columns, the default one).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)

from interfaces.http.csv_tables import Tables
from interfaces.http.problems import PROBLEM

_TEXT = Schema(type=OpenAPIType.STRING)
_INT = Schema(type=OpenAPIType.INTEGER)
PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="An RFC 9457 problem: what went wrong, for people (detail) and programs (status).",
    required=["type", "title", "status", "detail"],
    properties={
        "type": _TEXT,
        "title": _TEXT,
        "status": _INT,
        "detail": _TEXT,
        "instance": _TEXT,
        "errors": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT)),
        "current_version": _INT,
        "expected_version": Schema(one_of=[_INT, Schema(type=OpenAPIType.NULL)]),
    },
)
_WRITES = ("post", "put", "patch", "delete")
CSV = "text/csv"
CSV_FORMAT = (
    "One table of the report per request, chosen by `section` (one per list of the report, one "
    "per top-level object, and `summary`: one row of its top-level values). A header row of "
    "column names, then one row per item; a list inside the items would be a table "
    "`<list>.<field>` with the item's columns repeated. Cells as in the JSON: null is empty, "
    "numbers plain (never in exponent notation, decimal strings unchanged), `true`/`false`; "
    "a text cell a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, and "
    "not a number) starts with `'`. RFC 4180 (CRLF line ends, quotes only where needed), UTF-8 "
    'without a byte-order mark; `Content-Disposition: attachment; filename="analytics-<report>-'
    '<section>_<from>_<to>.csv"`. Tables of this operation:\n'
)


def _csv_content(tables: Tables | None) -> OpenAPIMediaType:
    if tables is None:
        return OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
    return OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, description=CSV_FORMAT + tables.describe()),
        example=tables.example(),
    )


def _problem(code: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=HTTPStatus(code).phrase,
        content={PROBLEM: OpenAPIMediaType(schema=Reference("#/components/schemas/Problem"))},
    )


def _codes(path: str, method: str) -> set[int]:
    """The problems an operation can answer besides the 400s Litestar infers.

    Every API route may be refused by the guard or the rate limiter and may meet rule checks;
    documenting the superset keeps clients and schema checkers honest about what can come back.
    """
    if path == "/health":
        return set()
    codes = {400, 401, 403, 404, 422, 429}
    if method in _WRITES:
        codes.add(409)
    return codes


def document_problems(app: Litestar) -> None:
    """Rewrite the document once at start (the app factory's one call): problems, then CSV."""
    schema = app.openapi_schema
    schema.components = schema.components or Components()
    schema.components.schemas = dict(schema.components.schemas or {}) | {"Problem": PROBLEM_SCHEMA}
    for path, item in (schema.paths or {}).items():
        for method in ("get", *_WRITES):
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            responses = dict(operation.responses or {})
            for status in list(responses):
                if status[0] in "45":
                    responses[status] = _problem(int(status))
            if path != "/health":
                for code in _codes(path, method):
                    responses.setdefault(str(code), _problem(code))
            operation.responses = dict(sorted(responses.items()))
    document_csv(app)


def _answering_csv(app: Litestar) -> dict[str, Tables | None]:
    """Operation ids of the handlers that declare a CSV answer (`opt={"csv": Tables(...)}`)."""
    ids: dict[str, Tables | None] = {}
    for route in app.routes:
        handlers: Any = getattr(route, "route_handlers", ())
        for handler in handlers:
            tables = handler.opt.get("csv")
            if tables and isinstance(handler.operation_id, str):
                ids[handler.operation_id] = tables if isinstance(tables, Tables) else None
    return ids


def document_csv(app: Litestar) -> None:
    """Add `text/csv` beside `application/json` on the 200 of every operation answering CSV."""
    answering = _answering_csv(app)
    for item in (app.openapi_schema.paths or {}).values():
        for method in ("get", *_WRITES):
            operation: Operation | None = getattr(item, method, None)
            if operation is None or operation.operation_id not in answering:
                continue
            ok = (operation.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse):
                content = _csv_content(answering[operation.operation_id])
                ok.content = dict(ok.content or {}) | {CSV: content}
