"""Base of every tenant-owned aggregate: each event records its organization and actor."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.values import Actor


class TenantAggregate(Aggregate):
    """An aggregate owned by exactly one organization, for its whole life."""

    organization_id: UUID

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Event(Aggregate.Event):
        """Every event names its organization and who caused it."""

        organization_id: UUID
        actor: Actor

    class Created(Aggregate.Created):
        organization_id: UUID
        actor: Actor

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        # the organization never changes, so events get it from the aggregate itself
        kwargs.setdefault("organization_id", self.organization_id)
        super().trigger_event(event_class, **kwargs)
