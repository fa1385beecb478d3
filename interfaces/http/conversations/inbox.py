"""Inbox and calls log reads: conversations, their messages, a lead's messages, calls."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, QueryParameter

from application.conversations import inbox
from application.paging import Page
from application.permissions import Permission
from interfaces.http.common import answer, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.LEADS_READ}
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(max_length=500)]
Choice = Annotated[str | None, QueryParameter(max_length=20)]


class InboxController(Controller):
    path = "/crm"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["inbox"]  # noqa: RUF012

    @get("/conversations", opt=READ, sync_to_thread=True, operation_id="listConversations")
    def conversations(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        status: Choice = None,
        assigned_to: FromQuery[UUID | None] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Response[Page]:
        """The inbox, latest message first: unread count and how long the contact has waited."""
        headers = read_after(services, request, "conversations")
        with services.reading(ctx.organization_id) as conn:
            page = inbox.list_conversations(
                conn,
                ctx.organization_id,
                status=status,
                assigned_to=assigned_to,
                cursor=cursor,
                limit=limit,
            )
        return answer(page, headers)

    @get(
        "/conversations/{conversation_id:uuid}/messages",
        opt=READ,
        sync_to_thread=True,
        operation_id="conversationMessages",
    )
    def conversation_messages(
        self,
        request: Request[Any, Any, Any],
        conversation_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Response[Page]:
        """A conversation's messages, newest first, with their delivery status."""
        headers = read_after(services, request, "conversations")
        with services.reading(ctx.organization_id) as conn:
            page = inbox.conversation_messages(
                conn, ctx.organization_id, conversation_id, cursor=cursor, limit=limit
            )
        return answer(page, headers)

    # GET /crm/leads/{lead_id}/messages lives in interfaces/http/conversations/communications.py
    # beside the
    # POST on the same path: Litestar cannot register one path from two controllers.

    @get("/calls", opt=READ, sync_to_thread=True, operation_id="listCalls")
    def calls(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        lead_id: FromQuery[UUID | None] = None,
        direction: Choice = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Response[Page]:
        """The calls log, newest first, of the organization or of one lead."""
        headers = read_after(services, request, "calls")
        with services.reading(ctx.organization_id) as conn:
            page = inbox.list_calls(
                conn,
                ctx.organization_id,
                lead_id=lead_id,
                direction=direction,
                cursor=cursor,
                limit=limit,
            )
        return answer(page, headers)

    @get("/calls/{call_id:uuid}", opt=READ, sync_to_thread=True, operation_id="getCall")
    def call(
        self,
        request: Request[Any, Any, Any],
        call_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Response[inbox.CallView]:
        """One call: its progress, outcome, duration and recordings."""
        headers = read_after(services, request, "calls")
        with services.reading(ctx.organization_id) as conn:
            return answer(inbox.get_call(conn, ctx.organization_id, call_id), headers)
