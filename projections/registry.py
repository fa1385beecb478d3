"""Every projector of the system, by name."""

from __future__ import annotations

from projections.audit import AuditProjector
from projections.base import Projector
from projections.directory import DirectoryProjector
from projections.leads import LeadsProjector
from projections.timeline import TimelineProjector


def all_projectors() -> list[Projector]:
    return [
        LeadsProjector(),
        TimelineProjector(),
        AuditProjector(),
        DirectoryProjector(),
    ]
