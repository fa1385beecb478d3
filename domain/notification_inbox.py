"""A member's notification inbox: what they have read, and how they want to be told.

One aggregate per member of an organization (`inbox_id(organization, user)`), made on its
member's first mark or preference. Notifications themselves are derived from other aggregates'
events by a projector; this aggregate holds only the member's own decisions about them.

Invariants: marking read what is already covered by a read-all records nothing; preferences
name known kinds only, each with both channels (in-app, email); an unchanged preference is no
event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from domain.base import TenantAggregate
from domain.errors import InvalidValueError
from domain.values import Actor

LEAD_ASSIGNED = "lead_assigned"
TASK_DUE = "task_due"
CONVERSATION_HANDED_OFF = "conversation_handed_off"
SLA_BREACHED = "sla_breached"
MENTIONED = "mentioned"
URGENT_MESSAGE = "urgent_message"
NEGATIVE_SENTIMENT = "negative_sentiment"
KINDS = (
    LEAD_ASSIGNED,
    TASK_DUE,
    CONVERSATION_HANDED_OFF,
    SLA_BREACHED,
    MENTIONED,
    URGENT_MESSAGE,
    NEGATIVE_SENTIMENT,
)

_NAMESPACE = UUID("6f1d3c52-8a0e-4f57-9a43-2b7f0c9e5d11")


def inbox_id(organization_id: UUID, user_id: UUID) -> UUID:
    """The id of a member's inbox: the same for the same member of the same organization."""
    return uuid5(_NAMESPACE, f"inbox:{organization_id}:{user_id}")


@dataclass(frozen=True)
class Preference:
    """How a member wants to hear of one kind of notification."""

    in_app: bool = True
    email: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {"in_app": self.in_app, "email": self.email}


DEFAULT_PREFERENCE = Preference()


def clean_preferences(changes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, bool]]:
    """Validate preferences by kind: known kinds, both channels given as booleans."""
    cleaned: dict[str, dict[str, bool]] = {}
    for kind, channels in changes.items():
        if kind not in KINDS:
            raise InvalidValueError("preferences", f"{kind!r} is not a kind of notification")
        if set(channels) != {"in_app", "email"} or not all(
            isinstance(on, bool) for on in channels.values()
        ):
            raise InvalidValueError(kind, "needs in_app and email, each true or false")
        cleaned[kind] = {"in_app": channels["in_app"], "email": channels["email"]}
    return cleaned


class NotificationInbox(TenantAggregate):
    """One member's read marks and preferences."""

    user_id: UUID
    read_up_to: int
    preferences: dict[str, dict[str, bool]]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Opened(TenantAggregate.Created):
        user_id: UUID

        def apply(self, inbox: NotificationInbox) -> None:
            inbox.organization_id = self.organization_id
            inbox.user_id = self.user_id
            inbox.read_up_to = 0
            inbox.preferences = {}

    class MarkedRead(TenantAggregate.Event):
        """One notification read (its log position orders it against read-alls)."""

        user_id: UUID
        notification_id: UUID
        position: int

        def apply(self, inbox: NotificationInbox) -> None:
            pass

    class AllMarkedRead(TenantAggregate.Event):
        """Every notification up to log position `up_to` read."""

        user_id: UUID
        up_to: int

        def apply(self, inbox: NotificationInbox) -> None:
            inbox.read_up_to = self.up_to

    class PreferencesChanged(TenantAggregate.Event):
        """`preferences` by kind ({"in_app": bool, "email": bool}); `previous` as they were."""

        user_id: UUID
        preferences: dict[str, dict[str, bool]]
        previous: dict[str, dict[str, bool]]

        def apply(self, inbox: NotificationInbox) -> None:
            inbox.preferences = {**inbox.preferences, **self.preferences}

    @classmethod
    def open(cls, *, organization_id: UUID, user_id: UUID, actor: Actor) -> NotificationInbox:
        return cls._create(
            cls.Opened,
            id=inbox_id(organization_id, user_id),
            organization_id=organization_id,
            user_id=user_id,
            actor=actor,
        )

    def mark_read(self, notification_id: UUID, position: int, *, actor: Actor) -> bool:
        """Record one notification read; False (nothing recorded) if a read-all covered it."""
        if position <= self.read_up_to:
            return False
        self.trigger_event(
            self.MarkedRead,
            user_id=self.user_id,
            notification_id=notification_id,
            position=position,
            actor=actor,
        )
        return True

    def mark_all_read(self, up_to: int, *, actor: Actor) -> bool:
        """Record every notification up to `up_to` read; False if nothing new is covered."""
        if up_to <= self.read_up_to:
            return False
        self.trigger_event(self.AllMarkedRead, user_id=self.user_id, up_to=up_to, actor=actor)
        return True

    def change_preferences(self, changes: Mapping[str, Mapping[str, Any]], *, actor: Actor) -> None:
        cleaned = clean_preferences(changes)
        changed = {k: p for k, p in cleaned.items() if p != self.preference(k).as_dict()}
        if changed:
            previous = {k: self.preference(k).as_dict() for k in changed}
            self.trigger_event(
                self.PreferencesChanged,
                user_id=self.user_id,
                preferences=changed,
                previous=previous,
                actor=actor,
            )

    def preference(self, kind: str) -> Preference:
        found = self.preferences.get(kind)
        return DEFAULT_PREFERENCE if found is None else Preference(**found)
