"""Security incidents: failed logins, cross-organization attempts, refused permissions.

Each incident is its own one-event aggregate in the organization's history, so the audit trail
shows it beside every other change and recording one never contends with other writes.
Incidents no organization can own (a login attempt for an unknown email) belong to PLATFORM.
A request for an id the caller's organization does not hold is `unknown_id_requested` in the
caller's trail whether or not the id exists elsewhere (no existence oracle); the organization
that holds it records the `cross_organization_attempt` with its full detail.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError
from domain.values import Actor

#: the tenant of incidents that belong to no organization
PLATFORM = UUID(int=0)

CROSS_ORGANIZATION = "cross_organization_attempt"
UNKNOWN_ID = "unknown_id_requested"

KINDS = frozenset(
    {
        "login_failed",
        CROSS_ORGANIZATION,
        UNKNOWN_ID,
        "permission_denied",
        "password_reset_requested",
        "password_reset_completed",
        "token_reuse_detected",
        "rate_limited",
        "webhook_rejected",
    }
)


class SecurityIncident(TenantAggregate):
    """Something a security reviewer must be able to find later."""

    kind: str
    details: dict[str, Any]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Recorded(TenantAggregate.Created):
        kind: str
        details: dict[str, Any]

        def apply(self, incident: SecurityIncident) -> None:
            incident.organization_id = self.organization_id
            incident.kind = self.kind
            incident.details = self.details

    @classmethod
    def record(
        cls, *, organization_id: UUID, kind: str, details: dict[str, Any], actor: Actor
    ) -> SecurityIncident:
        if kind not in KINDS:
            raise InvalidValueError("kind", f"unknown security incident kind {kind!r}")
        plain = {str(k): (str(val) if isinstance(val, UUID) else val) for k, val in details.items()}
        return cls._create(
            cls.Recorded,
            id=uuid4(),
            organization_id=organization_id,
            actor=actor,
            kind=kind,
            details=v.custom_fields(plain),
        )
