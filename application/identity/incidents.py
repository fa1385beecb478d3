"""Recording security incidents in the organizations' audit trails."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from application.store import CrmApplication
from domain.security import SecurityIncident
from domain.values import Actor


def record_incident(
    app: CrmApplication,
    organization_ids: set[UUID] | list[UUID],
    kind: str,
    actor: Actor,
    **details: Any,
) -> int:
    """Record the incident once in each organization concerned; return the log position."""
    incidents = [
        SecurityIncident.record(organization_id=org, kind=kind, details=details, actor=actor)
        for org in sorted(set(organization_ids))
    ]
    return app.commit(*incidents) if incidents else 0
