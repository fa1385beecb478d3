"""Auditors' use case: any aggregate of the organization as it was at a version or a time.

The state is rebuilt from the event store itself (not a read model), so it is exactly what the
history says, and it comes with the stored event that produced it. Another organization's
aggregate is 'not found' (the caller cannot tell it from an id that exists nowhere).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import msgspec
from eventsourcing.application import project_aggregate
from eventsourcing.domain import CanMutateAggregate

from application.store import CrmApplication
from domain.base import TenantAggregate
from domain.errors import ForeignAggregateError, InvalidValueError, NotFoundError
from domain.values import Actor
from projections.base import event_data, jsonable

Event = CanMutateAggregate[UUID]


class ProducingEvent(msgspec.Struct, frozen=True):
    """The stored event that brought the aggregate to the version shown."""

    type: str  #: e.g. `Lead.MovedToStage`, as in the audit trail and the export
    version: int
    time: str  #: ISO 8601, UTC
    actor: dict[str, Any]  #: `{kind, id, ip, user_agent}`
    data: dict[str, Any]  #: the event's own fields, ids and amounts as strings


class AggregateAsOf(msgspec.Struct, frozen=True, omit_defaults=True):
    """An aggregate's public state at one version; `as_of` is the time asked for, if any."""

    id: UUID
    type: str  #: the aggregate's class, e.g. `Lead`
    organization_id: UUID
    version: int
    current_version: int
    state: dict[str, Any]
    event: ProducingEvent
    as_of: str | None = None


def aggregate_history(
    app: CrmApplication,
    organization_id: UUID,
    aggregate_id: UUID,
    *,
    kind: type[TenantAggregate] = TenantAggregate,
) -> list[ProducingEvent]:
    """Every stored event of the aggregate, oldest first, described as `aggregate_as_of` does.

    `kind` narrows what counts as found: a lead route asked for a conversation's id says 404.
    """
    events = cast("list[Event]", list(app.events.get(aggregate_id)))
    _created(events, aggregate_id, organization_id, kind)
    return [_describe(event) for event in events]


def aggregate_as_of(
    app: CrmApplication,
    organization_id: UUID,
    aggregate_id: UUID,
    *,
    version: int | None = None,
    at: datetime | None = None,
    kind: type[TenantAggregate] = TenantAggregate,
) -> AggregateAsOf:
    """The aggregate at `version`, or as it was at time `at`, or (neither) as it is now.

    NotFoundError for an unknown id (or one of another kind), ForeignAggregateError for another
    organization's; InvalidValueError for both selectors, a version it never had, or a time
    before it existed.
    """
    # the store holds only aggregates' events: each has a timestamp and mutates its aggregate
    events = cast("list[Event]", list(app.events.get(aggregate_id)))
    # whose it is comes before what is asked of it: another organization's id is 404 (and
    # audited) whatever the selectors, exactly like an id that exists nowhere
    aggregate = _created(events, aggregate_id, organization_id, kind)
    target = _version_wanted(events, version, at)
    project_aggregate(aggregate, events[1:target])
    produced_by = events[target - 1]
    return AggregateAsOf(
        id=aggregate_id,
        type=type(aggregate).__name__,
        organization_id=aggregate.organization_id,
        version=target,
        current_version=len(events),
        state=_plain({k: v for k, v in vars(aggregate).items() if not k.startswith("_")}),
        event=_describe(produced_by),
        as_of=None if at is None else at.astimezone(UTC).isoformat(),
    )


def _created(
    events: list[Event], aggregate_id: UUID, organization_id: UUID, kind: type[TenantAggregate]
) -> TenantAggregate:
    """The aggregate at version 1, once it is known to be the caller's organization's."""
    first: object = project_aggregate(None, events[:1]) if events else None
    if not isinstance(first, kind):
        raise NotFoundError(
            kind.__name__.lower() if kind is not TenantAggregate else "aggregate", aggregate_id
        )
    if first.organization_id != organization_id:
        raise ForeignAggregateError("aggregate", aggregate_id, first.organization_id)
    return first


def _version_wanted(events: list[Event], version: int | None, at: datetime | None) -> int:
    current = len(events)
    if version is not None and at is not None:
        raise InvalidValueError("at", "give either a version or a time (at), not both")
    if version is not None:
        if version < 1:
            raise InvalidValueError("version", "must be at least 1")
        if version > current:
            raise InvalidValueError("version", f"the aggregate is at version {current}")
        return version
    if at is None:
        return current
    # the log order is the truth: the state at `at` is the run of events recorded up to it,
    # so a later event stamped earlier (a clock that went back) does not jump the queue
    reached = 0
    for event in events:
        if event.timestamp > at:
            break
        reached = event.originator_version
    if reached == 0:
        raise InvalidValueError("at", "the aggregate did not exist yet at that time")
    return reached


def _describe(event: Event) -> ProducingEvent:
    actor = getattr(event, "actor", None) or Actor.system()
    return ProducingEvent(
        type=type(event).__qualname__,
        version=event.originator_version,
        time=event.timestamp.astimezone(UTC).isoformat(),
        actor=_plain(actor),
        data=_plain(event_data(event)),
    )


def _plain(value: Any) -> Any:
    """Plain JSON values as in the export (ids, amounts, times as strings), sets sorted."""
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return jsonable(value)
