"""Live updates: Server-Sent Events at GET /events/stream and a WebSocket at /ws.

Each delivers the organization's change messages (see interfaces.live) to its members only,
and to a person also their own notifications (their channel; an API key has none).
Browsers' EventSource and WebSocket cannot send headers, so POST /events/ticket (authenticated
like every route) hands out a 60-second ticket bound to the caller, the organization and the
role, accepted as `?ticket=`; membership is checked again whenever a ticket is used and at every
ping of an open stream, so a removed member is cut off within a ping interval.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import anyio
import jwt
import msgspec
from litestar import Controller, Request, WebSocket, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    WebSocketDisconnect,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.response import ServerSentEvent, ServerSentEventMessage

from application.context import Ctx
from application.identity.organizations import role_in
from application.permissions import Permission, allows
from domain.errors import NotFoundError
from domain.organization import Organization
from domain.values import Actor, Role
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard
from interfaces.live import SubscriberTooSlowError, Subscription, subscribe
from interfaces.services import Services

READ = {"permission": Permission.LEADS_READ}
AUDIENCE = "events"
TICKET_SECONDS = 60
PING_SECONDS = 15.0
REFUSED_CREDENTIALS = 4401
REFUSED_PERMISSION = 4403


class EventTicket(msgspec.Struct, frozen=True):
    ticket: str
    expires_in: int
    organization_id: UUID


@dataclass(frozen=True)
class _Use:
    """Where a ticket is presented from."""

    ticket: str
    organization: str | None
    ip: str | None
    user_agent: str | None


def issue_ticket(secret: str, ctx: Ctx) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(ctx.user_id),
        "org": str(ctx.organization_id),
        "role": str(ctx.role),
        "kind": ctx.actor.kind,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=TICKET_SECONDS),
        "jti": uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def ticket_ctx(services: Services, use: _Use) -> Ctx:
    """The caller a ticket stands for, if it is still a member allowed to read (else refused)."""
    try:
        claims = jwt.decode(
            use.ticket,
            services.settings.secret_key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "org", "aud", "kind"]},
        )
        subject, org_id, kind = UUID(claims["sub"]), UUID(claims["org"]), str(claims["kind"])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise NotAuthorizedException("invalid or expired ticket") from None
    if use.organization and use.organization != str(org_id):
        raise PermissionDeniedException("the ticket is not valid for this organization")
    actor = Actor(kind, str(subject), use.ip, use.user_agent)
    role = _current_role(services, org_id, subject, kind)
    if role is None:
        raise PermissionDeniedException("not an active member of this organization")
    return Ctx(organization_id=org_id, user_id=subject, role=role, actor=actor)


def _current_role(services: Services, org_id: UUID, subject: UUID, kind: str) -> Role | None:
    """The subject's role now if it may still read the organization's changes, else None."""
    if kind == "user":
        role = role_in(services.app, org_id, subject)
        return role if role is not None and allows(role, Permission.LEADS_READ) else None
    if kind == "api_key":
        try:
            org = services.app.view(Organization, org_id, org_id)
        except NotFoundError:
            return None
        key = org.api_keys.get(subject)
        usable = key is not None and not key.revoked and Permission.LEADS_READ in key.scopes
        return Role.VIEWER if usable else None
    return None


def still_allowed(services: Services, ctx: Ctx) -> bool:
    return _current_role(services, ctx.organization_id, ctx.user_id, ctx.actor.kind) is not None


def _use(connection: ASGIConnection[Any, Any, Any, Any], ticket: str) -> _Use:
    return _Use(
        ticket,
        connection.headers.get("x-org-id") or connection.query_params.get("org"),
        connection.client.host if connection.client else None,
        (connection.headers.get("user-agent") or "")[:500] or None,
    )


async def stream_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A `?ticket=` (for EventSource), else the tenant guard's headers."""
    ticket = connection.query_params.get("ticket")
    if ticket is None:
        await tenant_guard(connection, handler)
        return
    services: Services = connection.app.state.services
    loop = asyncio.get_running_loop()
    connection.state.ctx = await loop.run_in_executor(
        None, ticket_ctx, services, _use(connection, ticket)
    )


def _person(ctx: Ctx) -> UUID | None:
    """Whose notifications the stream also carries: the person's own; a key's, nobody's."""
    return ctx.user_id if ctx.actor.kind == "user" else None


def _ready(ctx: Ctx) -> str:
    return json.dumps({"ready": True, "organization_id": str(ctx.organization_id)})


async def _close(subscription: Subscription) -> None:
    with anyio.CancelScope(shield=True):  # runs while the stream's task is being cancelled
        await subscription.close()


async def _checked(services: Services, ctx: Ctx) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, still_allowed, services, ctx)


async def server_sent_events(services: Services, ctx: Ctx) -> AsyncIterator[ServerSentEventMessage]:
    # subscribed inside the generator: a response that never starts leaves nothing behind
    subscription = await subscribe(services.live, ctx.organization_id, _person(ctx))
    try:
        yield ServerSentEventMessage(data=_ready(ctx), event="ready", retry=3000)
        while True:
            try:
                text = await subscription.next(PING_SECONDS)
            except SubscriberTooSlowError:  # too slow, or Redis was away: changes missed
                yield ServerSentEventMessage(data=_ready(ctx), event="resync")
                return
            if text is not None:
                yield ServerSentEventMessage(data=text)
            elif await _checked(services, ctx):
                yield ServerSentEventMessage(comment="ping", data=None)
            else:
                yield ServerSentEventMessage(data=_ready(ctx), event="revoked")
                return
    finally:
        await _close(subscription)


class LiveController(Controller):
    path = "/events"
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["events"]  # noqa: RUF012

    @post(
        "/ticket",
        guards=[tenant_guard],
        opt=READ,
        status_code=200,
        operation_id="createEventTicket",
    )
    async def ticket(self, ctx: CtxDep, services: ServicesDep) -> EventTicket:
        """A 60-second ticket for `GET /events/stream?ticket=…` (EventSource) or `/ws?ticket=…`.

        Browsers cannot send headers on those: the ticket stands for this caller in this
        organization. Membership is checked again when it is used; ask for a new one to
        reconnect after it expired.
        """
        return EventTicket(
            issue_ticket(services.settings.secret_key, ctx), TICKET_SECONDS, ctx.organization_id
        )

    # out of the OpenAPI document: it never ends, which generated-request checks cannot handle
    @get("/stream", guards=[stream_guard], opt=READ, include_in_schema=False)
    async def stream(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> ServerSentEvent:
        """The organization's changes as Server-Sent Events, with a ping comment every 15 s."""
        ctx: Ctx = request.state.ctx
        return ServerSentEvent(
            server_sent_events(services, ctx),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


@websocket("/ws", opt=READ)
async def live_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """The same change messages as the event stream, one JSON text frame each (`?ticket=`)."""
    services: Services = socket.app.state.services
    await socket.accept()  # then close with a code: a refused handshake tells the browser nothing
    try:
        ctx = await asyncio.get_running_loop().run_in_executor(
            None, ticket_ctx, services, _use(socket, socket.query_params.get("ticket") or "")
        )
    except NotAuthorizedException as refused:
        await socket.close(REFUSED_CREDENTIALS, str(refused.detail))
        return
    except PermissionDeniedException as refused:
        await socket.close(REFUSED_PERMISSION, str(refused.detail))
        return
    subscription = await subscribe(services.live, ctx.organization_id, _person(ctx))
    try:
        await socket.send_text(_ready(ctx))
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_forward, socket, services, ctx, subscription, tasks.cancel_scope)
            await _drain(socket)  # until the client goes
            tasks.cancel_scope.cancel()
    finally:
        await _close(subscription)


async def _drain(socket: WebSocket[Any, Any, Any]) -> None:
    try:
        while True:
            await socket.receive_data("text")
    except WebSocketDisconnect:
        return


async def _forward(
    socket: WebSocket[Any, Any, Any],
    services: Services,
    ctx: Ctx,
    subscription: Subscription,
    scope: anyio.CancelScope,
) -> None:
    try:
        while True:
            text = await subscription.next(PING_SECONDS)
            if text is not None:
                await socket.send_text(text)
            elif not await _checked(services, ctx):
                await socket.close(REFUSED_PERMISSION, "no longer a member")
                break
    except SubscriberTooSlowError:  # too slow, or Redis was away: changes may be missing
        await socket.close(1013, "changes missed: reconnect and refetch")
    scope.cancel()
