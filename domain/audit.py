"""History exports: each export of an organization's event log is itself a fact of its history.

An export is its own one-event aggregate (like a security incident), so the audit trail shows
who took which part of the history and when, and recording one never contends with other writes.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from domain.base import TenantAggregate
from domain.errors import InvalidValueError
from domain.values import Actor

CHANNELS = frozenset({"http", "cli"})


class HistoryExport(TenantAggregate):
    """One export: its filters and the log position it reads up to (inclusive)."""

    since: datetime | None
    until: datetime | None
    types: list[str]
    up_to: int
    channel: str

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Made(TenantAggregate.Created):
        since: datetime | None
        until: datetime | None
        types: list[str]
        up_to: int
        channel: str

        def apply(self, export: HistoryExport) -> None:
            export.organization_id = self.organization_id
            export.since = self.since
            export.until = self.until
            export.types = self.types
            export.up_to = self.up_to
            export.channel = self.channel

    @classmethod
    def make(
        cls,
        *,
        organization_id: UUID,
        since: datetime | None,
        until: datetime | None,
        types: list[str],
        up_to: int,
        channel: str,
        actor: Actor,
    ) -> HistoryExport:
        if channel not in CHANNELS:
            raise InvalidValueError("channel", f"unknown export channel {channel!r}")
        if up_to < 0:
            raise InvalidValueError("up_to", "must not be negative")
        return cls._create(
            cls.Made,
            id=uuid4(),
            organization_id=organization_id,
            actor=actor,
            since=since,
            until=until,
            types=sorted(types),
            up_to=up_to,
            channel=channel,
        )


class PersonalDataExport(TenantAggregate):
    """One subject-access export (LGPD art. 18 / GDPR art. 15): whose data, found how.

    What was searched for (an email, a phone) is personal data itself and is not recorded:
    only how the person was matched and the leads the export covered.
    """

    matched_by: str
    lead_ids: list[UUID]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Made(TenantAggregate.Created):
        matched_by: str
        lead_ids: list[UUID]

        def apply(self, export: PersonalDataExport) -> None:
            export.organization_id = self.organization_id
            export.matched_by = self.matched_by
            export.lead_ids = self.lead_ids

    @classmethod
    def make(
        cls, *, organization_id: UUID, matched_by: str, lead_ids: list[UUID], actor: Actor
    ) -> PersonalDataExport:
        if matched_by not in MATCHED_BY:
            raise InvalidValueError("matched_by", f"unknown match {matched_by!r}")
        return cls._create(
            cls.Made,
            id=uuid4(),
            organization_id=organization_id,
            actor=actor,
            matched_by=matched_by,
            lead_ids=sorted(lead_ids),
        )


MATCHED_BY = frozenset({"lead_id", "email", "phone"})
