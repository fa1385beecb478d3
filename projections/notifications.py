"""Notifications: what each member is told, derived from the events that concern them.

- `lead_assigned`: Lead.Captured with an assignee, Lead.Assigned → the new assignee;
- `task_due`: Task.CameDue → the task's assignee;
- `conversation_handed_off`: Conversation.HandedOff → whom it was handed to;
- `sla_breached`: Conversation.ResponseSlaBreached → the assignee, the managers and admins;
- `mentioned`: Lead.NoteAdded with mentions → each member mentioned;
- `urgent_message`: Conversation.MessageAnalysed at or above the organization's urgency alert
  (AI settings, 80 by default) → the lead's assignee, at once;
- `negative_sentiment`: Conversation.MessageAnalysed at or below the sentiment alert (−0.5 by
  default) → the managers and admins.
The thresholds are those of the organization's AI settings as of the analysis (the model follows
AiSettings events itself, so a rebuild applies the same ones).
Nobody is told of their own doing (a member assigning a lead to themselves, mentioning
themselves).

Only members of the organization at that point of the log are told: the model keeps its own
member list (from Organization events), so a rebuild gives the same rows with the same ids
(`notification_id(position, user)`). Personal data is never copied here: a notification names
its lead by id (queries read the lead's current name from the leads model, so an erased lead
reads as erased) and a note's text stays in the note; a value the privacy rules call personal is
left out of a summary. The member's preferences (NotificationInbox.PreferencesChanged) decide
whether a notification is shown in the app (`in_app`) and whether it is queued for email.

After each committed batch `take_announcements()` hands the new in-app notifications to the
live publisher (each goes on its member's own channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid5

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.ai_settings import DEFAULTS as AI_DEFAULTS
from domain.notification_inbox import (
    CONVERSATION_HANDED_OFF,
    LEAD_ASSIGNED,
    MENTIONED,
    NEGATIVE_SENTIMENT,
    SLA_BREACHED,
    TASK_DUE,
    URGENT_MESSAGE,
)
from domain.privacy import PERSONAL_DATA
from projections.base import Envelope, Projector, UtcDateTime, bulk_insert, metadata
from projections.conversations import rm_conversations
from projections.leads import rm_leads
from projections.notification_emails import email_row, enqueue, notification_emails

rm_notifications = sa.Table(
    "rm_notifications",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),  # of the event it comes from
    sa.Column("notification_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("summary", sa.String(500), nullable=False),
    sa.Column("link", sa.String(300), nullable=False),
    sa.Column("lead_id", sa.Uuid),
    sa.Column("subject_id", sa.Uuid, nullable=False),  # the lead, task or conversation
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(100), nullable=False),
    sa.Column("in_app", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("read_at", UtcDateTime),
    sa.Index("ix_rm_notifications_unread", "organization_id", "user_id", "read_at"),
    sa.Index("ix_rm_notifications_key", "organization_id", "notification_id", unique=True),
    # the one lookup that starts from the id alone: who holds an id another organization asked
    # for (the audit of a cross-organization 404), as rm_members is looked up by user
    sa.Index("ix_rm_notifications_id", "notification_id"),
)

rm_notification_members = sa.Table(
    "rm_notification_members",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
)

rm_notification_preferences = sa.Table(
    "rm_notification_preferences",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("kind", sa.String(40), primary_key=True),
    sa.Column("in_app", sa.Boolean, nullable=False),
    sa.Column("email", sa.Boolean, nullable=False),
)

rm_notification_alerts = sa.Table(
    "rm_notification_alerts",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("urgency_alert", sa.Integer, nullable=False),
    sa.Column("sentiment_alert", sa.Float, nullable=False),
)

_NAMESPACE = UUID("0b6e4f8e-3c1a-4d0b-9f7e-5a2c8d4b1e60")
MEMBER_EVENTS = frozenset(
    f"Organization.{n}" for n in ("Registered", "MemberAdded", "MemberRoleChanged", "MemberRemoved")
)
ALERT_SETTINGS = "AiSettings.DetailsChanged"
INBOX_EVENTS = frozenset(
    f"NotificationInbox.{n}" for n in ("MarkedRead", "AllMarkedRead", "PreferencesChanged")
)
SOURCES = frozenset(
    {
        "Lead.Captured",
        "Lead.Assigned",
        "Lead.NoteAdded",
        "Task.CameDue",
        "Conversation.HandedOff",
        "Conversation.ResponseSlaBreached",
        "Conversation.MessageAnalysed",
    }
)
#: announcements kept for the live publisher between two batches; older ones are dropped
MAX_ANNOUNCEMENTS = 10_000
#: who hears of a breached response SLA besides the assignee
SUPERVISORS = frozenset({"admin", "manager"})


def notification_id(position: int, user_id: UUID) -> UUID:
    """The id of the notification made for `user_id` by the event at `position`."""
    return uuid5(_NAMESPACE, f"{position}:{user_id}")


def _public(event: Any, field: str) -> Any:
    """The event's value of `field`, or None when the privacy rules call it personal."""
    rule = PERSONAL_DATA.get(type(event).__qualname__)
    if rule is not None and any(path[0] == field for path in rule.paths):
        return None
    return getattr(event, field, None)


class _Draft:
    """A notification before its recipients are known."""

    def __init__(
        self, kind: str, title: str, summary: str, link: str, lead: Any, subject: UUID
    ) -> None:
        self.kind, self.title, self.summary, self.link = kind, title, summary, link
        self.lead_id: UUID | None = lead
        self.subject_id = subject


class NotificationsProjector(Projector):
    name = "notifications"
    tables = (
        rm_notifications,
        rm_notification_members,
        rm_notification_preferences,
        rm_notification_alerts,
    )
    side_tables = (notification_emails,)  # a rebuild must not mail anyone again
    handles = MEMBER_EVENTS | INBOX_EVENTS | SOURCES | {ALERT_SETTINGS}

    def __init__(self) -> None:
        self._made: list[dict[str, Any]] = []
        self._ready: list[dict[str, Any]] = []

    def starting(self, start: int) -> None:
        self._made = []

    def committed(self, last: int) -> None:
        self._ready.extend(r for r in self._made if r.get("in_app", True))
        # without a live publisher taking them (a rebuild, a test runner) they must not pile up
        del self._ready[:-MAX_ANNOUNCEMENTS]
        self._made = []

    def discarded(self) -> None:
        self._made = []

    def take_announcements(self) -> list[dict[str, Any]]:
        """The in-app notifications and read marks (`"read": True`, `notification_id` None for
        a read-all) of the batches committed since the last call."""
        ready, self._ready = self._ready, []
        return ready

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        # members and preferences read once per organization per batch; rows written at the end
        # of the batch, or before a read mark that may concern them
        known = _Lookups(conn)
        rows: list[dict[str, Any]] = []
        emails: list[dict[str, Any]] = []
        for env in batch:
            name = env.type_name
            if name in MEMBER_EVENTS:
                _member(conn, env.event)
                known.forget(env.event.organization_id)
            elif name == ALERT_SETTINGS:
                _alerts(conn, env.event)
                known.forget(env.event.organization_id)
            elif name in INBOX_EVENTS:
                bulk_insert(conn, rm_notifications, rows)
                rows = []
                _inbox(conn, env.event)
                known.forget(env.event.organization_id)
                if name != "NotificationInbox.PreferencesChanged":
                    self._made.append(_read_mark(env))
            else:
                rows += self._notify(conn, known, env, emails)
        bulk_insert(conn, rm_notifications, rows)
        enqueue(conn, emails)

    def _notify(
        self, conn: Connection, known: _Lookups, env: Envelope, emails: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        e = env.event
        found = _draft(conn, known, env)
        if found is None:
            return []
        draft, wanted = found
        org = e.organization_id
        if getattr(e.actor, "kind", None) == "user":  # nobody is told of their own doing
            wanted = [u for u in wanted if str(u) != e.actor.id]
        members = known.members(org)
        made = []
        for user in dict.fromkeys(u for u in wanted if u in members):
            in_app, email = known.preference(org, user, draft.kind)
            row = {
                "organization_id": org,
                "user_id": user,
                "position": env.position,
                "notification_id": notification_id(env.position, user),
                "kind": draft.kind,
                "title": draft.title,
                "summary": draft.summary,
                "link": draft.link,
                "lead_id": draft.lead_id,
                "subject_id": draft.subject_id,
                "actor_kind": e.actor.kind,
                "actor_id": e.actor.id[:100],
                "in_app": in_app,
                "created_at": e.timestamp,
                "read_at": None,
            }
            made.append(row)
            if email:
                emails.append(email_row(org, row["notification_id"], user, e.timestamp))
        self._made += made
        return made


class _Lookups:
    """Each organization's members and preferences, read once per batch (and read again after
    an event of the batch changed them)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._members: dict[UUID, dict[UUID, str]] = {}
        self._preferences: dict[UUID, dict[tuple[UUID, str], tuple[bool, bool]]] = {}
        self._alerts: dict[UUID, tuple[int, float]] = {}

    def forget(self, org: UUID) -> None:
        self._members.pop(org, None)
        self._preferences.pop(org, None)
        self._alerts.pop(org, None)

    def alerts(self, org: UUID) -> tuple[int, float]:
        """The organization's (urgency, sentiment) alert thresholds."""
        if org not in self._alerts:
            a = rm_notification_alerts.c
            query = sa.select(a.urgency_alert, a.sentiment_alert).where(a.organization_id == org)
            row = self.conn.execute(query).first()
            default = (AI_DEFAULTS["urgency_alert"], AI_DEFAULTS["sentiment_alert"])
            self._alerts[org] = (int(row[0]), float(row[1])) if row else default
        return self._alerts[org]

    def members(self, org: UUID) -> dict[UUID, str]:
        if org not in self._members:
            m = rm_notification_members.c
            query = sa.select(m.user_id, m.role).where(m.organization_id == org)
            self._members[org] = {row[0]: row[1] for row in self.conn.execute(query)}
        return self._members[org]

    def supervisors(self, org: UUID) -> list[UUID]:
        return sorted(u for u, role in self.members(org).items() if role in SUPERVISORS)

    def preference(self, org: UUID, user: UUID, kind: str) -> tuple[bool, bool]:
        """(in the app, by email): as the member set it, else in the app only."""
        if org not in self._preferences:
            p = rm_notification_preferences.c
            query = sa.select(p.user_id, p.kind, p.in_app, p.email).where(p.organization_id == org)
            self._preferences[org] = {
                (u, k): (bool(i), bool(e)) for u, k, i, e in self.conn.execute(query)
            }
        return self._preferences[org].get((user, kind), (True, False))


def _draft(conn: Connection, known: _Lookups, env: Envelope) -> tuple[_Draft, list[UUID]] | None:
    """What the event tells, and whom (before members and preferences are considered)."""
    e, name = env.event, env.type_name
    lead_link = f"/crm/leads/{e.originator_id}"
    if name == "Lead.Captured" or name == "Lead.Assigned":
        to = e.assignee_id if name == "Lead.Captured" else e.to_user_id
        if to is None:
            return None
        by_rule = " by an assignment rule" if e.actor.kind == "rule" else ""
        summary = f"A lead was assigned to you{by_rule}."
        draft = _Draft(
            LEAD_ASSIGNED,
            "Lead assigned to you",
            summary,
            lead_link,
            e.originator_id,
            e.originator_id,
        )
        return draft, [to]
    if name == "Lead.NoteAdded":
        mentions = list(getattr(e, "mentions", None) or [])
        summary = "You were mentioned in a note on a lead."
        draft = _Draft(
            MENTIONED, "You were mentioned", summary, lead_link, e.originator_id, e.originator_id
        )
        return (draft, mentions) if mentions else None
    if name == "Task.CameDue":
        assignee = getattr(e, "assignee_id", None)
        if assignee is None:
            return None
        title = _public(e, "title")
        summary = f"Task due: {title}"[:500] if title else "A task of yours is due."
        link = f"/crm/tasks/{e.originator_id}"
        lead = getattr(e, "lead_id", None)
        return _Draft(TASK_DUE, "Task due", summary, link, lead, e.originator_id), [assignee]
    link = f"/crm/conversations/{e.originator_id}/messages"
    if name == "Conversation.HandedOff":
        if e.to_user_id is None:
            return None
        lead = _conversation_lead(conn, e.organization_id, e.originator_id)
        summary = "A conversation was handed off to you."
        title = "Conversation handed off to you"
        draft = _Draft(CONVERSATION_HANDED_OFF, title, summary, link, lead, e.originator_id)
        return draft, [e.to_user_id]
    if name == "Conversation.MessageAnalysed":
        return _alert(conn, known, e, link)
    # Conversation.ResponseSlaBreached: the assignee first, then who supervises
    summary = f"A contact has waited more than {e.sla_minutes} minutes for a first response."
    draft = _Draft(
        SLA_BREACHED, "First response overdue", summary, link, e.lead_id, e.originator_id
    )
    supervisors = known.supervisors(e.organization_id)
    return draft, [*([e.assignee_id] if e.assignee_id else []), *supervisors]


def _alert(
    conn: Connection, known: _Lookups, e: Any, link: str
) -> tuple[_Draft, list[UUID]] | None:
    """An analysed message worth a person's attention now: urgent → the lead's assignee; very
    negative → the managers and admins (an urgent complaint tells both: the more pressing
    first)."""
    urgency_alert, sentiment_alert = known.alerts(e.organization_id)
    if e.urgency >= urgency_alert:
        assignee = _lead_assignee(conn, e.organization_id, e.lead_id)
        if assignee is not None:
            summary = f"A contact wrote a message of urgency {e.urgency}/100."
            draft = _Draft(
                URGENT_MESSAGE, "Urgent message", summary, link, e.lead_id, e.originator_id
            )
            return draft, [assignee]
    if e.sentiment <= sentiment_alert:
        summary = f"A contact wrote a very negative message (sentiment {e.sentiment:+.2f})."
        title = "Unhappy contact"
        draft = _Draft(NEGATIVE_SENTIMENT, title, summary, link, e.lead_id, e.originator_id)
        return draft, known.supervisors(e.organization_id)
    return None


def _lead_assignee(conn: Connection, org: UUID, lead_id: UUID) -> UUID | None:
    # the leads model runs before this one: it has this batch's assignments already
    c = rm_leads.c
    found = conn.execute(
        sa.select(c.assignee_id).where(c.organization_id == org, c.lead_id == lead_id)
    ).scalar()
    return found if isinstance(found, UUID) else None


def _alerts(conn: Connection, e: Any) -> None:
    changes = e.changes
    if "urgency_alert" not in changes and "sentiment_alert" not in changes:
        return
    a = rm_notification_alerts.c
    org = e.organization_id
    current = conn.execute(
        sa.select(a.urgency_alert, a.sentiment_alert).where(a.organization_id == org)
    ).first()
    urgency = changes.get("urgency_alert", current[0] if current else AI_DEFAULTS["urgency_alert"])
    sentiment = changes.get(
        "sentiment_alert", current[1] if current else AI_DEFAULTS["sentiment_alert"]
    )
    conn.execute(rm_notification_alerts.delete().where(a.organization_id == org))
    conn.execute(
        rm_notification_alerts.insert().values(
            organization_id=org, urgency_alert=int(urgency), sentiment_alert=float(sentiment)
        )
    )


def _conversation_lead(conn: Connection, org: UUID, conversation_id: UUID) -> UUID | None:
    c = rm_conversations.c
    found = conn.execute(
        sa.select(c.lead_id).where(c.organization_id == org, c.conversation_id == conversation_id)
    ).scalar()
    return found if isinstance(found, UUID) else None


def _member(conn: Connection, e: Any) -> None:
    m = rm_notification_members.c
    org = e.organization_id
    name = type(e).__qualname__
    if name == "Organization.Registered":
        conn.execute(
            rm_notification_members.insert().values(
                organization_id=org, user_id=e.owner_user_id, role="admin"
            )
        )
    elif name == "Organization.MemberAdded":
        conn.execute(
            rm_notification_members.insert().values(
                organization_id=org, user_id=e.user_id, role=e.role
            )
        )
    elif name == "Organization.MemberRoleChanged":
        conn.execute(
            rm_notification_members.update()
            .where(m.organization_id == org, m.user_id == e.user_id)
            .values(role=e.role)
        )
    else:
        conn.execute(
            rm_notification_members.delete().where(m.organization_id == org, m.user_id == e.user_id)
        )


def _read_mark(env: Envelope) -> dict[str, Any]:
    e = env.event
    return {
        "read": True,
        "organization_id": e.organization_id,
        "user_id": e.user_id,
        "position": env.position,
        "notification_id": getattr(e, "notification_id", None),
        "up_to": getattr(e, "up_to", None),
        "created_at": e.timestamp,
    }


def _inbox(conn: Connection, e: Any) -> None:
    n = rm_notifications.c
    org = e.organization_id
    name = type(e).__qualname__
    if name == "NotificationInbox.MarkedRead":
        conn.execute(
            rm_notifications.update()
            .where(n.organization_id == org, n.notification_id == e.notification_id)
            .where(n.user_id == e.user_id, n.read_at.is_(None))
            .values(read_at=e.timestamp)
        )
    elif name == "NotificationInbox.AllMarkedRead":
        conn.execute(
            rm_notifications.update()
            .where(n.organization_id == org, n.user_id == e.user_id)
            .where(n.position <= e.up_to, n.read_at.is_(None))
            .values(read_at=e.timestamp)
        )
    else:
        _preferences(conn, org, e.user_id, e.preferences)


def _preferences(
    conn: Connection, org: UUID, user: UUID, preferences: dict[str, dict[str, bool]]
) -> None:
    p = rm_notification_preferences.c
    for kind, channels in preferences.items():
        conn.execute(
            rm_notification_preferences.delete().where(
                p.organization_id == org, p.user_id == user, p.kind == kind
            )
        )
        conn.execute(
            rm_notification_preferences.insert().values(
                organization_id=org,
                user_id=user,
                kind=kind,
                in_app=channels["in_app"],
                email=channels["email"],
            )
        )
