"""Live notifications: after the notifications projector commits a batch, each new in-app
notification (and each read mark) is published on its member's own channel
(`interfaces.live.user_channel`) — never on the organization's, which every member's stream
hears.

The notifications projection's own per-organization change message is not sent either: it
would tell every member that someone read something. A message has the shape of every change
message (so one client loop reads them all) plus the notification, as `GET /notifications`
lists it except `lead_name`, which is personal data read at query time, not carried in queues.
The member's read marks go the same way (`notification.read`), so every open tab keeps the same
unread count.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from interfaces.live import AnalyticsCoalescer, LocalPublisher, RedisPublisher, user_channel
from projections.base import Envelope, Projector
from projections.notifications import NotificationsProjector
from projections.runner import AfterBatch

log = logging.getLogger("crm.live")

#: a notification older than this is not pushed (a rebuild or a long catch-up re-makes old
#: ones: those are in the list, not news)
FRESH = timedelta(minutes=10)


def read_message(mark: Mapping[str, Any]) -> str:
    """One notification read (`notification_id`), or all up to `up_to` (a read-all)."""
    found = mark["notification_id"]
    return json.dumps(
        {
            "type": "notification.read",
            "organization_id": str(mark["organization_id"]),
            "user_id": str(mark["user_id"]),
            "projection": NotificationsProjector.name,
            "position": mark["position"],
            "changes": [],
            "truncated": False,
            "notification_id": None if found is None else str(found),
            "up_to": mark["up_to"],
        }
    )


def notification_message(row: Mapping[str, Any]) -> str:
    org = row["organization_id"]
    return json.dumps(
        {
            "type": "notification.created",
            "organization_id": str(org),
            "user_id": str(row["user_id"]),
            "projection": NotificationsProjector.name,
            "position": row["position"],
            "changes": [],
            "truncated": False,
            "notification": {
                "id": str(row["notification_id"]),
                "kind": row["kind"],
                "title": row["title"],
                "summary": row["summary"],
                "link": row["link"],
                "lead_id": None if row["lead_id"] is None else str(row["lead_id"]),
                "subject_id": str(row["subject_id"]),
                "actor_kind": row["actor_kind"],
                "actor_id": row["actor_id"],
                "created_at": row["created_at"].isoformat(),
                "read_at": None,
                "position": row["position"],
            },
        }
    )


class NotificationAnnouncer:
    """An after-batch listener: notifications to their members, the rest to `inner`."""

    def __init__(
        self,
        inner: AfterBatch,
        live: RedisPublisher | LocalPublisher,
        projector: NotificationsProjector,
    ) -> None:
        self.inner = inner
        self.live = live
        self.projector = projector

    def __call__(
        self, name: str, orgs: Mapping[UUID, int], changes: Mapping[UUID, Sequence[Envelope]]
    ) -> None:
        if name != self.projector.name:
            self.inner(name, orgs, changes)
            return
        since = datetime.now(UTC) - FRESH
        for row in self.projector.take_announcements():
            if row["created_at"] < since:
                continue
            try:
                target = user_channel(row["organization_id"], row["user_id"])
                text = read_message(row) if row.get("read") else notification_message(row)
                self.live.send_to(target, text)
            except Exception:  # live updates never break the projector
                log.exception("could not push notification %s", row["notification_id"])


def live_listener(
    live: RedisPublisher | LocalPublisher, projectors: Sequence[Projector]
) -> AfterBatch:
    """What a runner of these projectors tells the live channels after each batch."""
    listener: AfterBatch = AnalyticsCoalescer(live)
    for projector in projectors:
        if isinstance(projector, NotificationsProjector):
            listener = NotificationAnnouncer(listener, live, projector)
    return listener
