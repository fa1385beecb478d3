"""Recording security incidents in the organizations' audit trails."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from application.context import Ctx
from application.ports import ReadModels
from application.store import CrmApplication
from domain.errors import ForeignAggregateError, NotFoundError
from domain.security import CROSS_ORGANIZATION, PLATFORM, UNKNOWN_ID, SecurityIncident
from domain.values import Actor
from projections.assignment_rules import rm_assignment_rules
from projections.directory import rm_members
from projections.leads import rm_stages
from projections.notifications import rm_notifications

#: ids that live inside an aggregate rather than being one: whose they are is in a read model
_INNER_IDS = {
    "stage": (rm_stages, rm_stages.c.stage_id),
    "member": (rm_members, rm_members.c.user_id),
    "notification": (rm_notifications, rm_notifications.c.notification_id),
    "assignment_rule": (rm_assignment_rules, rm_assignment_rules.c.rule_id),
}


def record_incident(
    app: CrmApplication,
    organization_ids: set[UUID] | list[UUID],
    kind: str,
    actor: Actor,
    **details: Any,
) -> int:
    """Record the incident once in each organization concerned (a list: in its order, a set:
    sorted); return the log position."""
    if isinstance(organization_ids, set):
        organization_ids = sorted(organization_ids)
    incidents = [
        SecurityIncident.record(organization_id=org, kind=kind, details=details, actor=actor)
        for org in dict.fromkeys(organization_ids)
    ]
    return app.commit(*incidents) if incidents else 0


def attempt_trails(asker: UUID, holders: Collection[UUID]) -> list[UUID]:
    """Where an attempt on something not the asker's is recorded: the asker's trail first, then
    each organization holding it — or the platform's when none does, so that an attempt writes
    as many events, in the same order, either way: the log positions an asker sees afterwards
    do not tell whether the target exists."""
    return [asker, *(sorted(set(holders) - {asker}) or [PLATFORM])]


def record_unknown_id(
    app: CrmApplication,
    ctx: Ctx,
    holders: Collection[UUID],
    *,
    kind: str,
    id: UUID,
    method: str,
    path: str,
) -> int:
    """The caller asked for an id its organization does not hold.

    The caller's trail gets the same `unknown_id_requested` record whether `holders` (the
    organizations that do hold the id) is empty or not: nothing in it, nor in the answer,
    tells the caller's admin that the id exists elsewhere. A holder's trail gets the whole
    attempt as `cross_organization_attempt` — who, from which organization, on which route —
    and the platform's trail the same as `unknown_id_requested` when nothing holds the id.
    """
    asked = {"method": method, "path": path, "resource_kind": kind, "resource_id": str(id)}
    mine, *others = attempt_trails(ctx.organization_id, holders)
    incidents = [
        SecurityIncident.record(
            organization_id=mine, kind=UNKNOWN_ID, details=asked, actor=ctx.actor
        )
    ]
    incidents += [
        SecurityIncident.record(
            organization_id=org,
            kind=UNKNOWN_ID if org == PLATFORM else CROSS_ORGANIZATION,
            details=asked | {"from_organization_id": str(ctx.organization_id)},
            actor=ctx.actor,
        )
        for org in others
    ]
    return app.commit(*incidents)


def holders_of(
    app: CrmApplication, read_models: ReadModels, ctx: Ctx, exc: NotFoundError
) -> set[UUID]:
    """The organizations that do hold the id the caller could not find (usually none)."""
    if isinstance(exc, ForeignAggregateError):
        return {exc.owner_id}
    if not isinstance(exc.id, UUID):
        return set()
    owner = app.organization_of(exc.id)
    if owner is not None:
        return {owner}
    table, column = _INNER_IDS.get(exc.kind, (None, None))
    if table is None or column is None:
        return set()
    # every organization's rows: this lookup is the platform's, not the caller's
    with read_models.internal(ctx.organization_id) as conn:
        rows = conn.execute(sa.select(table.c.organization_id).where(column == exc.id).limit(20))
        return {row[0] for row in rows}


def record_not_found(
    app: CrmApplication,
    read_models: ReadModels,
    ctx: Ctx,
    exc: NotFoundError,
    *,
    method: str,
    path: str,
) -> set[UUID]:
    """Record a request for an id the caller's organization does not hold (see
    `record_unknown_id`); answers the other organizations holding it, for the server log.
    An id of the caller's own organization (of another kind) is just a wrong request."""
    if not isinstance(exc.id, UUID):
        return set()
    holders = holders_of(app, read_models, ctx, exc)
    if ctx.organization_id in holders:
        return set()
    record_unknown_id(app, ctx, holders, kind=exc.kind, id=exc.id, method=method, path=path)
    return holders - {PLATFORM}
