"""The OpenAPI document tells the truth about errors: every 4xx/5xx is an RFC 9457 problem.

Litestar documents its own `{status_code, detail, extra}` error body and only the errors it can
infer (400); this rewrites the document once at start: one `Problem` schema, and on each
operation the problems its guard and its commands can answer.
"""

from __future__ import annotations

from http import HTTPStatus

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
    schema = app.openapi_schema
    schema.components = schema.components or Components()
    schema.components.schemas = dict(schema.components.schemas or {}) | {"Problem": PROBLEM_SCHEMA}
    for path, item in (schema.paths or {}).items():
        for method in ("get", *_WRITES):
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            responses = dict(operation.responses or {})
            for code in list(responses):
                if code[0] in "45":
                    responses[code] = _problem(int(code))
            if path != "/health":
                for code in _codes(path, method):
                    responses.setdefault(str(code), _problem(code))
            operation.responses = dict(sorted(responses.items()))
