"""Recording security incidents in the organizations' audit trails."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from application.context import Ctx
from application.store import CrmApplication
from domain.security import CROSS_ORGANIZATION, PLATFORM, UNKNOWN_ID, SecurityIncident
from domain.values import Actor


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
