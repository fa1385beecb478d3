"""The tenant guard: token → organization header → active member → role permission.

401 without valid credentials; 403 when the header's organization is not the token's, the user
is not a member, or the role lacks the route's permission. Routes name their permission in
`opt={"permission": ...}`; handlers receive the resulting `Ctx` by dependency.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias
from uuid import UUID

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import SkipValidation

from application.context import Ctx
from application.permissions import Permission, allows
from domain.errors import NotFoundError
from domain.organization import Organization
from domain.values import Actor
from interfaces.security import InvalidTokenError
from interfaces.services import Services

# the server provides these: nothing to validate, and Litestar's signature model would otherwise
# try to convert them per request (it fails on fields typed as unions of custom classes)
ServicesDep: TypeAlias = NamedDependency[SkipValidation[Services]]
CtxDep: TypeAlias = NamedDependency[SkipValidation[Ctx]]


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return connection.client.host if connection.client else None


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException(
            "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="crm"'}
        )
    return token.strip()


async def tenant_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    services: Services = connection.app.state.services
    try:
        claims = services.tokens.decode(bearer_token(connection))
    except InvalidTokenError:
        raise NotAuthorizedException(
            "invalid or expired token",
            headers={"WWW-Authenticate": 'Bearer realm="crm", error="invalid_token"'},
        ) from None
    raw_org = connection.headers.get("x-org-id")
    if not raw_org:
        raise PermissionDeniedException("the X-Org-Id header is required")
    try:
        org_id = UUID(raw_org)
    except ValueError:
        raise PermissionDeniedException("X-Org-Id is not an organization id") from None
    if org_id != claims.organization_id:
        raise PermissionDeniedException("the token is not valid for this organization")
    role = await asyncio.get_running_loop().run_in_executor(
        None, _role_of, services, org_id, claims.user_id
    )
    if role is None:
        raise PermissionDeniedException("not an active member of this organization")
    permission = handler.opt.get("permission")
    if not isinstance(permission, Permission) or not allows(role, permission):
        raise PermissionDeniedException(f"the {role} role may not do this")
    actor = Actor(
        kind="user",
        id=str(claims.user_id),
        ip=client_ip(connection),
        user_agent=(connection.headers.get("user-agent") or "")[:500] or None,
    )
    connection.state.ctx = Ctx(
        organization_id=org_id, user_id=claims.user_id, role=role, actor=actor
    )


def _role_of(services: Services, org_id: UUID, user_id: UUID) -> Any:
    try:
        org = services.app.view(Organization, org_id, org_id)
    except NotFoundError:
        return None
    return org.role_of(user_id)


async def provide_ctx(request: Request[Any, Any, Any]) -> Ctx:
    ctx: Ctx = request.state.ctx
    return ctx


async def provide_services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services
