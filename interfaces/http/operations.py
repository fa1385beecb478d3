"""Operators' routes: GET /database/info and GET /metrics, behind CRM_OPS_TOKEN.

The operator's credential comes from configuration, not from a tenant: no user's token and no
organization's API key opens these routes (they answer 401), and without CRM_OPS_TOKEN the
routes answer 404 exactly as a path that does not exist. They run outside the tenant guard and
its per-organization rate limit; answers never name an organization.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Litestar, Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)

from interfaces.http.metrics import CONTENT_TYPE, Metrics
from interfaces.http.problems import PROBLEM
from interfaces.operations import DatabaseInfo, database_info
from interfaces.services import Services

OPS_SCHEME = "operatorToken"
OPS_REALM = 'Bearer realm="crm-operations"'
OPS_PATHS = ("/database/info", "/metrics")
SECURITY: Any = [{OPS_SCHEME: []}]


async def ops_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """`Authorization: Bearer <CRM_OPS_TOKEN>`, compared in constant time; 404 when unset."""
    services: Services = connection.app.state.services
    expected = services.settings.ops_token
    if not expected:
        raise NotFoundException()  # the same answer as a path no route matches
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    valid = scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )
    if not valid:
        raise NotAuthorizedException(
            "this route needs the operator token: Authorization: Bearer <CRM_OPS_TOKEN>",
            headers={"WWW-Authenticate": OPS_REALM},
        )


@get(
    "/database/info",
    guards=[ops_guard],
    sync_to_thread=True,
    operation_id="databaseInfo",
    tags=["operations"],
    security=SECURITY,
)
def database_info_route(state: State) -> Response[DatabaseInfo]:
    """The database as an operator needs it (operator token only).

    Backend and server version; the migration scripts' head and the database's revision;
    the read models' connection pool and the event store's (PostgreSQL); the event log's head
    and its event count (estimated from PostgreSQL's statistics, counted on SQLite); each
    projector's position and lag.
    """
    return Response(database_info(state.services), headers={"Cache-Control": "no-store"})


@get(
    "/metrics",
    guards=[ops_guard],
    sync_to_thread=True,
    operation_id="metrics",
    tags=["operations"],
    security=SECURITY,
    media_type=CONTENT_TYPE,
)
def metrics_route(state: State) -> Response[bytes]:
    """Prometheus metrics in the text exposition format (operator token only).

    `crm_http_requests_total` and `crm_http_request_duration_seconds` by method, route template
    and status; `crm_projector_lag_events` and `crm_projector_position` by projector;
    `crm_event_log_head`; `crm_outbox_items` by status; `crm_live_connections` by transport.
    """
    metrics: Metrics = state.metrics
    return Response(
        metrics.exposition(state.services),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


OPERATIONS_HANDLERS = [database_info_route, metrics_route]


def _problem(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={PROBLEM: OpenAPIMediaType(schema=Reference("#/components/schemas/Problem"))},
    )


def document_operations(app: Litestar) -> None:
    """The operator-token scheme, and the answers these routes really give (after the rewrite
    of interfaces/http/openapi.py, which documents tenant routes' problems on every path)."""
    schema = app.openapi_schema
    schema.components = schema.components or Components()
    schemes = dict(schema.components.security_schemes or {})
    schemes[OPS_SCHEME] = SecurityScheme(
        type="http",
        scheme="bearer",
        description="The operators' credential, CRM_OPS_TOKEN from the server's configuration "
        "(never a user's token or an API key). Without it configured these routes answer 404.",
    )
    schema.components.security_schemes = schemes
    for path in OPS_PATHS:
        item = (schema.paths or {}).get(path)
        operation: Operation | None = getattr(item, "get", None)
        if operation is None:
            continue
        responses = dict(operation.responses or {})
        ok = responses.get("200")
        if path == "/metrics":
            ok = OpenAPIResponse(
                description="Prometheus text exposition format 0.0.4",
                content={CONTENT_TYPE: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            )
        operation.responses = {
            "200": ok or OpenAPIResponse(description="OK"),
            "401": _problem("The operator token is missing or wrong"),
            "404": _problem("CRM_OPS_TOKEN is not configured: the route does not exist"),
        }
