"""Talking to a lead: send a WhatsApp message, place a call, hand off or close a conversation.

Each command is recorded first (status `queued` / `initiated`) and answered at once; the
outbox delivers it through the organization's active provider and records the provider's id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from application.context import Written
from application.conversations import calls, inbox
from application.conversations import messages as conversations
from application.leads import queries
from application.paging import Page
from application.permissions import Permission
from interfaces.http.common import answer, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

# sales talk only to the leads assigned to them and act only on their conversations: the use
# cases check it (application.permissions.check_lead_owner)
WRITE = {"permission": Permission.LEADS_WRITE}
READ = {"permission": Permission.LEADS_READ}
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
Cursor = Annotated[str | None, QueryParameter(max_length=500)]


class HandOffBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: UUID | None


class LeadCommunicationController(Controller):
    path = "/crm/leads/{lead_id:uuid}"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["conversations"]  # noqa: RUF012

    @get(
        "/messages",
        opt=READ,
        sync_to_thread=True,
        operation_id="leadMessages",
    )
    def lead_messages(
        self,
        request: Request[Any, Any, Any],
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Response[Page]:
        """A lead's messages over all its conversations, newest first."""
        headers = read_after(services, request, "conversations", "leads")
        with services.reading(ctx.organization_id) as conn:
            queries.get_lead(conn, ctx.organization_id, lead_id)
            page = inbox.lead_messages(
                conn, ctx.organization_id, lead_id, cursor=cursor, limit=limit
            )
        return answer(page, headers)

    @post("/messages", opt=WRITE, sync_to_thread=True, operation_id="sendMessage")
    def send_message(
        self,
        lead_id: FromPath[UUID],
        data: JSONBody[conversations.SendMessage],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> conversations.MessageQueued:
        """Send a WhatsApp message: free text inside the 24-hour window since the contact's
        last message, otherwise an approved template (`template_name`, `template_language`,
        `template_variables`). 422 explains a closed window. Delivered by the outbox."""
        now = datetime.now(UTC)
        return conversations.send_message(services.app, lead_id, data, ctx, now=now)

    @post("/calls", opt=WRITE, sync_to_thread=True, operation_id="placeCall")
    def place_call(
        self,
        lead_id: FromPath[UUID],
        data: JSONBody[calls.PlaceCall],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> calls.CallQueued:
        """Click-to-call the lead through the active VoIP provider (placed by the outbox)."""
        return calls.place_call(services.app, lead_id, data, ctx)


class ConversationCommandController(Controller):
    path = "/crm/conversations/{conversation_id:uuid}"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["conversations"]  # noqa: RUF012

    @post(
        "/handoff",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="handOff",
    )
    def hand_off(
        self,
        conversation_id: FromPath[UUID],
        data: JSONBody[HandOffBody],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Hand the conversation to a member (null: back to the lead's owner)."""
        cid, version, position = conversations.hand_off(
            services.app, conversation_id, data.user_id, ctx
        )
        return Written(id=cid, version=version, position=position)

    @post(
        "/close",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="closeChat",
    )
    def close(self, conversation_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Close the conversation: it takes no more outbound messages."""
        cid, version, position = conversations.close(services.app, conversation_id, ctx)
        return Written(id=cid, version=version, position=position)
