"""Every error leaves as RFC 9457 application/problem+json, translated here once."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any
from uuid import UUID

import eventsourcing.persistence
import psycopg
import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from application.context import Ctx
from application.conversations.providers import ProviderError
from application.identity.accounts import EmailAlreadyRegisteredError, InvalidCredentialsError
from application.identity.incidents import record_incident, record_not_found
from application.permissions import NotPermittedError
from domain.conversation import WindowClosedError
from domain.errors import (
    DomainError,
    InvalidValueError,
    NotFoundError,
    RuleViolationError,
    VersionConflictError,
)
from interfaces.observability import report_request_error

PROBLEM = "application/problem+json"
log = logging.getLogger("crm.http")

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
    headers = dict(exc.headers or {})
    return problem(request, exc.status_code, str(exc.detail), headers=headers, **extra)


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    if isinstance(exc, VersionConflictError):
        return problem(
            request,
            409,
            str(exc),
            current_version=exc.current_version,
            expected_version=exc.expected_version,
        )
    if isinstance(exc, InvalidValueError):
        return problem(
            request, 422, str(exc), errors=[{"field": exc.field, "message": exc.message}]
        )
    if isinstance(exc, NotFoundError):
        _record_unknown_id(request, exc)
        return problem(request, 404, str(exc))
    if isinstance(exc, WindowClosedError):  # the client must change the request: a template
        return problem(request, 422, str(exc), errors=[{"field": "text", "message": str(exc)}])
    if isinstance(exc, InvalidCredentialsError):
        return problem(request, 401, str(exc))
    if isinstance(exc, RuleViolationError | EmailAlreadyRegisteredError):
        return problem(request, 409, str(exc))
    return problem(request, 422, str(exc))


def _ctx(request: Request[Any, Any, Any]) -> Ctx | None:
    """The guard's context, on routes behind the tenant guard."""
    ctx: Ctx | None = request.scope.get("state", {}).get("ctx")
    return ctx


def _record_unknown_id(request: Request[Any, Any, Any], exc: NotFoundError) -> None:
    """An id the caller's organization does not hold (an id of its own, of another kind, is
    just a wrong request): the caller's trail records the same whether it exists elsewhere or
    nowhere; an owner's trail and the log get the full attempt. The answer is the same 404."""
    ctx = _ctx(request)
    if ctx is None or not isinstance(exc.id, UUID):
        return
    services = request.app.state.services
    try:
        method, path = request.method, request.url.path
        owners = record_not_found(services.app, services, ctx, exc, method=method, path=path)
        if owners:
            log.warning(
                "cross-organization attempt: %s %s by %s %s of organization %s for %s %s "
                "of organization %s",
                method,
                path,
                ctx.actor.kind,
                ctx.actor.id,
                ctx.organization_id,
                exc.kind,
                exc.id,
                ", ".join(sorted(str(o) for o in owners)),
            )
    except Exception:
        log.exception("could not record a request for an unknown id")


def on_not_permitted(request: Request[Any, Any, Any], exc: NotPermittedError) -> Response[Any]:
    """A use case refused the caller this resource (e.g. a sales member someone else's lead):
    403, recorded like the guard's refusals."""
    ctx = _ctx(request)
    if ctx is not None:
        try:
            record_incident(
                request.app.state.services.app,
                {ctx.organization_id},
                "permission_denied",
                ctx.actor,
                method=request.method,
                path=request.url.path,
                permission=str(exc.permission),
                reason=exc.reason,
            )
        except Exception:  # the refusal stands even if it cannot be recorded
            log.exception("could not record a permission_denied incident")
    return problem(request, 403, exc.reason)


def on_provider_error(request: Request[Any, Any, Any], exc: ProviderError) -> Response[Any]:
    """A provider's API refused or failed a synchronous request (e.g. a bridge QR code)."""
    log.warning("provider error on %s: %s (code %s)", request.url.path, exc, exc.code)
    status = 503 if exc.retryable else 502
    # the provider's own text stays in the log: an answer never relays a remote body
    detail = "the provider is unreachable or failing" if exc.retryable else "the provider refused"
    return problem(request, status, detail, provider_code=exc.code)


#: the database does not answer (down, unreachable, its pool exhausted): a known outage that
#: a client may retry, not a bug of ours
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
    psycopg.OperationalError,
    sqlite3.OperationalError,
)
RETRY_AFTER_SECONDS = "5"


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, DATABASE_UNAVAILABLE):
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        report_request_error(request.scope, exc)
        return problem(
            request,
            503,
            "the database is not answering; try again shortly",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    report_request_error(request.scope, exc)  # to Sentry, when SENTRY_DSN is set
    return problem(request, HTTP_500_INTERNAL_SERVER_ERROR, "an unexpected error occurred")


EXCEPTION_HANDLERS: Any = {
    HTTPException: on_http_exception,
    DomainError: on_domain_error,
    NotPermittedError: on_not_permitted,
    ProviderError: on_provider_error,
    Exception: on_unexpected,
}
