"""Notification routes: a member's own notifications, unread count, read marks, preferences.

Every route names `organization:read` (every member holds it) and answers for the caller only:
another member's notification is 404, another organization's 404 and audited, an API key 403.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from application.context import Written
from application.paging import Page
from application.permissions import Permission
from application.work import notifications as notes
from interfaces.http.common import answer, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

MINE = {"permission": Permission.ORGANIZATION_READ}
PROJECTION = "notifications"
Cursor = Annotated[str | None, QueryParameter(max_length=500)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]


class NotificationController(Controller):
    path = "/notifications"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["notifications"]  # noqa: RUF012

    @get("/", opt=MINE, sync_to_thread=True, operation_id="listNotifications")
    def list(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        unread: Annotated[bool, QueryParameter()] = False,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Response[Page]:
        """The caller's notifications, newest first (keyset pagination); `unread=true` for the
        unread ones only. Each names what it is about and links to it."""
        headers = read_after(services, request, PROJECTION, "leads")
        with services.reading(ctx.organization_id) as conn:
            page = notes.list_notifications(conn, ctx, unread=unread, limit=limit, cursor=cursor)
        return answer(page, headers)

    @get("/count", opt=MINE, sync_to_thread=True, operation_id="countUnreadNotifications")
    def count(
        self, request: Request[Any, Any, Any], ctx: CtxDep, services: ServicesDep
    ) -> Response[notes.UnreadCount]:
        """How many of the caller's notifications are unread (the bell's number)."""
        headers = read_after(services, request, PROJECTION)
        with services.reading(ctx.organization_id) as conn:
            return answer(notes.unread_count(conn, ctx), headers)

    @post(
        "/{notification_id:uuid}/read",
        opt=MINE,
        sync_to_thread=True,
        status_code=200,
        operation_id="markNotificationRead",
    )
    def read(
        self,
        request: Request[Any, Any, Any],
        notification_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Mark one of the caller's notifications read (again: nothing recorded)."""
        read_after(services, request, PROJECTION)
        return notes.mark_read(services.app, services, ctx, notification_id)

    @post(
        "/read-all",
        opt=MINE,
        sync_to_thread=True,
        status_code=200,
        operation_id="markAllNotificationsRead",
    )
    def read_all(
        self, request: Request[Any, Any, Any], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Mark read every notification the caller has now; later ones stay unread."""
        read_after(services, request, PROJECTION)
        return notes.mark_all_read(services.app, services, ctx)

    @get("/preferences", opt=MINE, sync_to_thread=True, operation_id="getNotificationPreferences")
    def preferences(
        self, request: Request[Any, Any, Any], ctx: CtxDep, services: ServicesDep
    ) -> Response[notes.NotificationPreferences]:
        """Per kind of notification: shown in the app (default on), sent by email (default
        off)."""
        headers = read_after(services, request, PROJECTION)
        with services.reading(ctx.organization_id) as conn:
            return answer(notes.preferences(conn, ctx), headers)

    @put(
        "/preferences",
        opt=MINE,
        sync_to_thread=True,
        operation_id="changeNotificationPreferences",
    )
    def change_preferences(
        self,
        data: JSONBody[notes.NotificationPreferences],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Set the preferences of the kinds given (`{"in_app": bool, "email": bool}` each);
        the kinds left out keep theirs. They apply to notifications made from then on."""
        return notes.change_preferences(services.app, ctx, data)
