"""Every projector of the system, by name."""

from __future__ import annotations

from projections.analysis_queue import AnalysisQueueProjector
from projections.analytics import AnalyticsProjector
from projections.assignment_rules import AssignmentRulesProjector
from projections.audit import AuditProjector
from projections.base import Projector
from projections.calls import CallsProjector
from projections.conversations import ConversationsProjector
from projections.directory import DirectoryProjector
from projections.leads import LeadsProjector
from projections.notifications import NotificationsProjector
from projections.outbox import OutboxProjector
from projections.sla import SlaProjector
from projections.tasks import TasksProjector
from projections.templates import TemplatesProjector
from projections.timeline import TimelineProjector


def all_projectors() -> list[Projector]:
    # conversations read the leads model's assignees: they come after it
    return [
        LeadsProjector(),
        ConversationsProjector(),
        CallsProjector(),
        TimelineProjector(),
        AuditProjector(),
        DirectoryProjector(),
        OutboxProjector(),
        AnalyticsProjector(),
        SlaProjector(),
        TemplatesProjector(),
        TasksProjector(),
        # reads the conversations model (a handed-off conversation's lead): after it
        NotificationsProjector(),
        AssignmentRulesProjector(),
        AnalysisQueueProjector(),
    ]
