"""The OpenAPI document tells the truth about errors and alternate formats.

Litestar documents its own `{status_code, detail, extra}` error body and only the errors it can
infer (400); this rewrites the document once at start: one `Problem` schema, and on each
operation the problems its guard and its commands can answer. Litestar also documents only the
JSON body of a success; operations whose handler says `opt={"csv": True}` answer `text/csv` too
(`Accept: text/csv` or `?format=csv`), and that content is added beside the JSON.
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
CSV_CONTENT = OpenAPIMediaType(
    schema=Schema(
        type=OpenAPIType.STRING,
        description=(
            "The same report as the JSON, flattened to long rows under the header "
            "`section,index,field,value`: one row per number; a top-level figure is in section "
            "`summary` at index 0, the i-th item of a list in the list's name at index i; "
            "null is an empty cell (RFC 4180, CRLF line ends, UTF-8)."
        ),
    ),
    example="section,index,field,value\r\nsummary,0,from,2026-01-01\r\nsummary,0,won,3\r\n",
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


def _answering_csv(app: Litestar) -> set[str]:
    """Operation ids of the handlers that declare a CSV answer (`opt={"csv": True}`)."""
    ids: set[str] = set()
    for route in app.routes:
        handlers: Any = getattr(route, "route_handlers", ())
        for handler in handlers:
            if handler.opt.get("csv") and isinstance(handler.operation_id, str):
                ids.add(handler.operation_id)
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
                ok.content = dict(ok.content or {}) | {CSV: CSV_CONTENT}
