"""The tenant guard: credential → organization header → active member or key → permission.

401 without valid credentials (a user's access token, or an API key as `Authorization: Bearer`
or `X-API-Key`); 403 when the header's organization is not the credential's, the user is not a
member, or the role (or the key's scopes) lacks the route's permission. Routes name their
permission in `opt={"permission": ...}` and nothing else: which leads a role reaches is the use
cases' rule (`application.permissions.check_lead_owner`). Refusals of a role and
cross-organization headers are recorded as security incidents. Handlers receive the `Ctx`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias
from uuid import UUID

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import SkipValidation

from application.context import Ctx
from application.identity.api_keys import (
    InvalidApiKeyError,
    UsageRecorder,
    looks_like_key,
    verify_key,
)
from application.identity.incidents import attempt_trails, record_incident
from application.identity.organizations import organization_exists, role_in
from application.permissions import Permission, allows, key_allows
from domain.values import Actor, Role
from interfaces.security import InvalidTokenError, TokenClaims
from interfaces.services import Services

log = logging.getLogger("crm.guard")

# the server provides these: nothing to validate, and Litestar's signature model would otherwise
# try to convert them per request (it fails on fields typed as unions of custom classes)
ServicesDep: TypeAlias = NamedDependency[SkipValidation[Services]]
CtxDep: TypeAlias = NamedDependency[SkipValidation[Ctx]]

REALM = 'Bearer realm="crm"'


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return connection.client.host if connection.client else None


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("missing bearer token", headers={"WWW-Authenticate": REALM})
    return token.strip()


def _invalid(what: str) -> NotAuthorizedException:
    return NotAuthorizedException(
        f"invalid or expired {what}",
        headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )


@dataclass(frozen=True)
class _Call:
    """What the guard's thread needs to know about the request."""

    permission: Permission
    header_org: str | None
    method: str
    path: str
    ip: str | None
    user_agent: str | None


def _decode(services: Services, token: str) -> TokenClaims:
    try:
        return services.tokens.decode(token)
    except InvalidTokenError:
        raise _invalid("token") from None


async def tenant_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    services: Services = connection.app.state.services
    permission = handler.opt.get("permission")
    if not isinstance(permission, Permission):  # a route without a permission is closed
        raise PermissionDeniedException("this route names no permission")
    key = connection.headers.get("x-api-key")
    credential = key.strip() if key else bearer_token(connection)
    call = _Call(
        permission,
        connection.headers.get("x-org-id"),
        str(getattr(connection, "method", "GET")),
        connection.url.path,
        client_ip(connection),
        (connection.headers.get("user-agent") or "")[:500] or None,
    )
    loop = asyncio.get_running_loop()
    if key or looks_like_key(credential):
        ctx = await loop.run_in_executor(None, _key_ctx, services, credential, call)
        _note_use(connection, services, ctx)
    else:
        ctx = await loop.run_in_executor(None, _user_ctx, services, credential, call)
    connection.state.ctx = ctx


def _user_ctx(services: Services, token: str, call: _Call) -> Ctx:
    claims = _decode(services, token)
    actor = Actor("user", str(claims.user_id), call.ip, call.user_agent)
    org_id = _header_organization(services, call, claims.organization_id, actor, required=True)
    role = role_in(services.app, org_id, claims.user_id)
    if role is None:
        raise PermissionDeniedException("not an active member of this organization")
    ctx = Ctx(organization_id=org_id, user_id=claims.user_id, role=role, actor=actor)
    if not allows(role, call.permission):
        _refuse(services, ctx, call, f"the {role} role may not do this", role=str(role))
    return ctx


def _key_ctx(services: Services, key: str, call: _Call) -> Ctx:
    try:
        org_id, api_key = verify_key(services.app, key)
    except InvalidApiKeyError:
        raise _invalid("API key") from None
    actor = Actor("api_key", str(api_key.id), call.ip, call.user_agent)
    _header_organization(services, call, org_id, actor, required=False)
    # a key has scopes, not a role: the least role stands in for code that reads ctx.role
    ctx = Ctx(organization_id=org_id, user_id=api_key.id, role=Role.VIEWER, actor=actor)
    if not key_allows(api_key.scopes, call.permission):
        _refuse(
            services, ctx, call, "the API key's scopes do not allow this", scopes=api_key.scopes
        )
    return ctx


def _header_organization(
    services: Services, call: _Call, own_org: UUID, actor: Actor, *, required: bool
) -> UUID:
    """The X-Org-Id header must name the credential's organization (keys may omit it)."""
    if not call.header_org:
        if required:
            raise PermissionDeniedException("the X-Org-Id header is required")
        return own_org
    try:
        org_id = UUID(call.header_org)
    except ValueError:
        raise PermissionDeniedException("X-Org-Id is not an organization id") from None
    if org_id != own_org:
        exists = organization_exists(services.app, org_id)
        _record(
            services,
            attempt_trails(own_org, [org_id] if exists else []),
            "cross_organization_attempt",
            actor,
            call,
            header_organization_id=str(org_id),
            from_organization_id=str(own_org),
        )
        raise PermissionDeniedException("the credential is not valid for this organization")
    return org_id


def _refuse(services: Services, ctx: Ctx, call: _Call, reason: str, **details: Any) -> None:
    _record(
        services,
        {ctx.organization_id},
        "permission_denied",
        ctx.actor,
        call,
        permission=str(call.permission),
        reason=reason,
        **details,
    )
    raise PermissionDeniedException(reason)


def _record(
    services: Services,
    organizations: set[UUID] | list[UUID],
    kind: str,
    actor: Actor,
    call: _Call,
    **details: Any,
) -> None:
    try:
        record_incident(
            services.app,
            organizations,
            kind,
            actor,
            method=call.method,
            path=call.path,
            **{k: (" ".join(v) if isinstance(v, tuple) else v) for k, v in details.items()},
        )
    except Exception:  # the refusal stands even if it cannot be recorded
        log.exception("could not record a %s incident", kind)


def _note_use(connection: ASGIConnection[Any, Any, Any, Any], services: Services, ctx: Ctx) -> None:
    """Record the key's last use, at most once a minute, without making the request wait."""
    state = connection.app.state
    usage: UsageRecorder | None = state.get("api_key_usage")
    if usage is None:
        usage = UsageRecorder(services.engine)
        state["api_key_usage"] = usage
    if not usage.due(ctx.user_id):
        return
    future = asyncio.get_running_loop().run_in_executor(
        None, usage.record, ctx.organization_id, ctx.user_id, datetime.now(UTC)
    )
    future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not record an API key's use", exc_info=future.exception())


async def user_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A signed-in user, whatever organization the token is for (choosing another one)."""
    services: Services = connection.app.state.services
    token = bearer_token(connection)
    if looks_like_key(token):
        raise PermissionDeniedException("an API key belongs to one organization")
    claims = await asyncio.get_running_loop().run_in_executor(None, _decode, services, token)
    connection.state.claims = claims


async def optional_user(request: Request[Any, Any, Any]) -> UUID | None:
    """The user of a valid bearer token, if the request carries one (else None)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or looks_like_key(token.strip()):
        return None
    services: Services = request.app.state.services
    try:
        claims = await asyncio.get_running_loop().run_in_executor(
            None, services.tokens.decode, token.strip()
        )
    except InvalidTokenError:
        raise _invalid("token") from None
    return claims.user_id


async def provide_ctx(request: Request[Any, Any, Any]) -> Ctx:
    ctx: Ctx = request.state.ctx
    return ctx


async def provide_services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services
