"""Notification use cases: a member lists, counts and marks their own notifications and sets
how they want to hear of each kind.

Notifications belong to one person: every query and command is scoped to the caller's own
(organization, user); another member's notification is not found, like another organization's.
An API key has no notifications (refused, 403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.context import Ctx, Written
from application.paging import Page, encode_cursor, limit_of, number_cursor
from application.permissions import NotPermittedError, Permission
from application.ports import ReadModels
from application.store import CrmApplication
from domain.errors import NotFoundError
from domain.notification_inbox import KINDS, NotificationInbox, inbox_id
from projections.leads import rm_leads
from projections.notifications import rm_notification_preferences, rm_notifications


class NotificationView(msgspec.Struct, frozen=True):
    id: UUID
    kind: str
    title: str
    summary: str
    link: str
    lead_id: UUID | None
    #: the lead's current name from the leads model (never stored with the notification)
    lead_name: str | None
    subject_id: UUID
    actor_kind: str
    actor_id: str
    created_at: datetime
    read_at: datetime | None
    position: int


class UnreadCount(msgspec.Struct, frozen=True):
    unread: int


class KindPreference(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    in_app: bool
    email: bool


class NotificationPreferences(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per kind: shown in the app, and sent by email. A kind left out of a PUT keeps its own."""

    lead_assigned: KindPreference | msgspec.UnsetType = msgspec.UNSET
    task_due: KindPreference | msgspec.UnsetType = msgspec.UNSET
    conversation_handed_off: KindPreference | msgspec.UnsetType = msgspec.UNSET
    sla_breached: KindPreference | msgspec.UnsetType = msgspec.UNSET
    mentioned: KindPreference | msgspec.UnsetType = msgspec.UNSET
    urgent_message: KindPreference | msgspec.UnsetType = msgspec.UNSET
    negative_sentiment: KindPreference | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, dict[str, bool]]:
        return {
            kind: {"in_app": found.in_app, "email": found.email}
            for kind in KINDS
            if isinstance(found := getattr(self, kind), KindPreference)
        }


def check_person(ctx: Ctx) -> None:
    """Notifications are a person's: an API key has none."""
    if ctx.actor.kind != "user":
        raise NotPermittedError(
            Permission.ORGANIZATION_READ, "notifications belong to a person; an API key has none"
        )


# queries


def _mine(ctx: Ctx) -> tuple[Any, ...]:
    n = rm_notifications.c
    return (n.organization_id == ctx.organization_id, n.user_id == ctx.user_id, n.in_app)


def list_notifications(
    conn: Connection, ctx: Ctx, *, unread: bool, limit: int, cursor: str | None
) -> Page:
    """The caller's notifications, newest first (keyset on the log position)."""
    check_person(ctx)
    n, lead = rm_notifications.c, rm_leads.c
    query = (
        sa.select(rm_notifications, lead.full_name)
        .select_from(
            rm_notifications.outerjoin(
                rm_leads,
                sa.and_(lead.organization_id == n.organization_id, lead.lead_id == n.lead_id),
            )
        )
        .where(*_mine(ctx))
        .order_by(n.position.desc())
        .limit(limit_of(limit) + 1)
    )
    if unread:
        query = query.where(n.read_at.is_(None))
    if cursor is not None:
        query = query.where(n.position < number_cursor(cursor))
    rows = list(conn.execute(query).mappings())
    items = [_view(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].position) if more else None)


def _view(r: Any) -> NotificationView:
    return NotificationView(
        id=r["notification_id"],
        kind=r["kind"],
        title=r["title"],
        summary=r["summary"],
        link=r["link"],
        lead_id=r["lead_id"],
        lead_name=r["full_name"],
        subject_id=r["subject_id"],
        actor_kind=r["actor_kind"],
        actor_id=r["actor_id"],
        created_at=r["created_at"],
        read_at=r["read_at"],
        position=r["position"],
    )


def unread_count(conn: Connection, ctx: Ctx) -> UnreadCount:
    check_person(ctx)
    n = rm_notifications.c
    query = sa.select(sa.func.count()).where(*_mine(ctx), n.read_at.is_(None))
    return UnreadCount(unread=int(conn.execute(query).scalar_one()))


def preferences(conn: Connection, ctx: Ctx) -> NotificationPreferences:
    """Every kind's preference: as the member set it, else in the app and not by email."""
    check_person(ctx)
    p = rm_notification_preferences.c
    rows = conn.execute(
        sa.select(p.kind, p.in_app, p.email).where(
            p.organization_id == ctx.organization_id, p.user_id == ctx.user_id
        )
    )
    found = {kind: KindPreference(in_app, email) for kind, in_app, email in rows}
    return NotificationPreferences(
        **{kind: found.get(kind, KindPreference(True, False)) for kind in KINDS}
    )


# commands


def _inbox(app: CrmApplication, ctx: Ctx) -> NotificationInbox:
    try:
        return app.load(
            NotificationInbox, inbox_id(ctx.organization_id, ctx.user_id), ctx.organization_id
        )
    except NotFoundError:
        return NotificationInbox.open(
            organization_id=ctx.organization_id, user_id=ctx.user_id, actor=ctx.actor
        )


def _written(app: CrmApplication, inbox: NotificationInbox) -> Written:
    return Written(id=inbox.id, version=inbox.version, position=app.commit(inbox))


def mark_read(
    app: CrmApplication, read_models: ReadModels, ctx: Ctx, notification_id: UUID
) -> Written:
    """Mark one of the caller's notifications read; one already read records nothing."""
    check_person(ctx)
    n = rm_notifications.c
    with read_models.reading(ctx.organization_id) as conn:
        found = conn.execute(
            sa.select(n.position, n.read_at).where(
                *_mine(ctx), n.notification_id == notification_id
            )
        ).first()
    if found is None:  # someone else's, another organization's, or nobody's: not found
        raise NotFoundError("notification", notification_id)
    inbox = _inbox(app, ctx)
    if found.read_at is None:
        inbox.mark_read(notification_id, int(found.position), actor=ctx.actor)
    return _written(app, inbox)


def mark_all_read(app: CrmApplication, read_models: ReadModels, ctx: Ctx) -> Written:
    """Mark read every notification the caller has so far (not those arriving after)."""
    check_person(ctx)
    n = rm_notifications.c
    with read_models.reading(ctx.organization_id) as conn:
        newest = conn.execute(sa.select(sa.func.max(n.position)).where(*_mine(ctx))).scalar()
    inbox = _inbox(app, ctx)
    if newest is not None:
        inbox.mark_all_read(int(newest), actor=ctx.actor)
    return _written(app, inbox)


def change_preferences(app: CrmApplication, ctx: Ctx, data: NotificationPreferences) -> Written:
    check_person(ctx)
    inbox = _inbox(app, ctx)
    inbox.change_preferences(data.changes(), actor=ctx.actor)
    return _written(app, inbox)
