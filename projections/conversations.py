"""Inbox read model: one row per conversation (last message, unread, waiting) and per message.

A batch is applied in memory: the rows it touches are loaded once, changed by each event in log
order and written back together. A conversation's assignee is whoever it was handed to, else
the lead's assignee; a new conversation reads that from `rm_leads`, so this projector runs after
the leads projector (the runner applies projectors in registry order), and later `Lead.Captured`
/ `Lead.Assigned` events are followed only for leads that have conversations.

Erasure: `Lead.PersonalDataErased` turns the lead's values in this model into what a rebuild
reads once the lead's key is gone (`[erased]`; None stays None): its messages so far (texts,
contact names, template variables) and its conversations' contact and last-message preview
(a template's preview names no one and stays). `Conversation.ContactErased` closes the thread;
`Conversation.Resumed` gives it to the new lead, whose messages then read in clear.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from domain.conversation import Conversation
from domain.lead import Lead
from domain.privacy import ERASED, erased
from projections.base import (
    Envelope,
    JSONType,
    Projector,
    UtcDateTime,
    bulk_insert,
    jsonable,
    metadata,
)
from projections.leads import rm_leads

PREVIEW = 200
#: sentiments kept per conversation for its trend, oldest first
TREND = 10

rm_conversations = sa.Table(
    "rm_conversations",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("conversation_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("contact", sa.String(32), nullable=False),
    sa.Column("provider_type", sa.String(40)),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("handled_by", sa.Uuid),
    sa.Column("lead_assignee_id", sa.Uuid),
    sa.Column("assigned_to", sa.Uuid),
    # the start time until the first message, so new conversations sort among the others
    sa.Column("last_message_at", UtcDateTime, nullable=False),
    sa.Column("last_message_preview", sa.String(PREVIEW)),
    sa.Column("last_message_direction", sa.String(10)),
    sa.Column("unread_count", sa.Integer, nullable=False),
    sa.Column("waiting_since", UtcDateTime),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("message_count", sa.Integer, nullable=False),
    # the latest analysed inbound message's sentiment and urgency, and the last TREND sentiments
    sa.Column("latest_sentiment", sa.Float),
    sa.Column("latest_urgency", sa.Integer),
    sa.Column("sentiment_trend", JSONType),
    sa.Column("position", sa.BigInteger, nullable=False),
)
sa.Index(
    "ix_rm_conversations_inbox",
    rm_conversations.c.organization_id,
    rm_conversations.c.last_message_at.desc(),
    rm_conversations.c.conversation_id,
)
sa.Index(
    "ix_rm_conversations_assigned",
    rm_conversations.c.organization_id,
    rm_conversations.c.assigned_to,
    rm_conversations.c.last_message_at,
)
sa.Index("ix_rm_conversations_lead", rm_conversations.c.organization_id, rm_conversations.c.lead_id)

rm_messages = sa.Table(
    "rm_messages",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("conversation_id", sa.Uuid, nullable=False),
    sa.Column("lead_id", sa.Uuid, nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("provider_type", sa.String(40), nullable=False),
    sa.Column("provider_message_id", sa.String(200)),
    sa.Column("text", sa.Text),
    sa.Column("template_name", sa.String(200)),
    sa.Column("template_variables", JSONType, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("error", sa.String(500)),
    sa.Column("contact_name", sa.String(200)),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("status_changed_at", UtcDateTime, nullable=False),
    # an inbound message's analysis (None until it is analysed); the summary is personal data
    sa.Column("sentiment", sa.Float),
    sa.Column("urgency", sa.Integer),
    sa.Column("intent", sa.String(40)),
    sa.Column("summary", sa.Text),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_rm_messages_conversation",
        "organization_id",
        "conversation_id",
        "occurred_at",
        "message_id",
    ),
    sa.Index("ix_rm_messages_lead", "organization_id", "lead_id", "occurred_at", "message_id"),
)

CONVERSATION_EVENTS = frozenset(
    f"Conversation.{n}"
    for n in (
        "Started",
        "MessageReceived",
        "MessageSent",
        "MessageStatusChanged",
        "MessageAnalysed",
    )
) | frozenset(f"Conversation.{n}" for n in ("HandedOff", "Closed", "ContactErased", "Resumed"))
ASSIGNEE_EVENTS = frozenset({"Lead.Captured", "Lead.Assigned"})
#: lead events that reach the lead's conversations
LEAD_FOLLOWED = ASSIGNEE_EVENTS | {"Lead.PersonalDataErased"}

Key = tuple[UUID, UUID]


def keys_filter(
    conn: Connection, org_column: sa.Column[Any], id_column: sa.Column[Any], keys: Iterable[Key]
) -> list[sa.ColumnElement[bool]]:
    """Rows of these (organization, id) keys, ids being globally unique: arrays on PostgreSQL
    (one statement shape whatever the count), IN lists elsewhere."""
    pairs = list(keys)
    orgs = sorted({org for org, _ in pairs})
    ids = [i for _, i in pairs]
    if conn.dialect.name == "postgresql":
        uuids = postgresql.ARRAY(sa.Uuid)
        return [
            org_column == sa.any_(sa.bindparam("orgs", orgs, type_=uuids)),
            id_column == sa.any_(sa.bindparam("ids", ids, type_=uuids)),
        ]
    return [org_column.in_(orgs), id_column.in_(ids)]


class BatchRows:
    """The rows of one table a batch touches: loaded once, changed in memory, written once."""

    def __init__(self, table: sa.Table, id_name: str) -> None:
        self.table = table
        self.id_name = id_name
        self.rows: dict[Key, dict[str, Any]] = {}
        self.new: set[Key] = set()
        self.dirty: set[Key] = set()

    def key(self, row: dict[str, Any]) -> Key:
        return (row["organization_id"], row[self.id_name])

    def load(self, conn: Connection, keys: Iterable[Key], by: str | None = None) -> None:
        """Load rows whose (organization, `by` column) is one of the keys (`by`: the id)."""
        column = self.table.c[by or self.id_name]
        ordered = sorted(set(keys))
        for i in range(0, len(ordered), 500):
            where = keys_filter(conn, self.table.c.organization_id, column, ordered[i : i + 500])
            for r in conn.execute(sa.select(self.table).where(*where)).mappings():
                self.rows.setdefault(self.key(dict(r)), dict(r))

    def get(self, org: UUID, id: UUID) -> dict[str, Any] | None:
        return self.rows.get((org, id))

    def add(self, row: dict[str, Any]) -> None:
        key = self.key(row)
        if key not in self.rows:  # a replayed creation changes nothing
            self.rows[key] = row
            self.new.add(key)

    def touch(self, row: dict[str, Any], position: int) -> None:
        row["position"] = position
        self.dirty.add(self.key(row))

    def flush(self, conn: Connection) -> None:
        new = [self.rows[k] for k in sorted(self.new)]
        changed = [self.rows[k] for k in sorted(self.dirty - self.new)]
        t = self.table
        if conn.dialect.name == "postgresql" and changed:
            # replace changed rows wholesale: one DELETE and one COPY for the whole batch
            where = keys_filter(
                conn, t.c.organization_id, t.c[self.id_name], map(self.key, changed)
            )
            conn.execute(t.delete().where(*where))
            new, changed = new + changed, []
        bulk_insert(conn, t, new)
        if changed:
            keys = ("organization_id", self.id_name)
            cols = [c.name for c in t.c if c.name not in keys]
            stmt = (
                t.update()
                .where(*(t.c[k] == sa.bindparam(f"k_{k}") for k in keys))
                .values({c: sa.bindparam(f"v_{c}") for c in cols})
            )
            params = [
                {f"k_{k}": r[k] for k in keys} | {f"v_{c}": r[c] for c in cols} for r in changed
            ]
            conn.execute(stmt, params)
        self.new.clear()
        self.dirty.clear()


def preview(text: str | None, template_name: str | None) -> str:
    shown = f"[template {template_name}]" if template_name is not None else text or ""
    return shown[:PREVIEW]


class ConversationsProjector(Projector):
    """Fills `rm_conversations` (the inbox) and `rm_messages`."""

    name = "conversations"
    tables = (rm_conversations, rm_messages)
    handles = CONVERSATION_EVENTS | LEAD_FOLLOWED

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        work = _Work(conn, batch)
        for env in batch:
            work.apply(env)
        work.conversations.flush(conn)
        work.messages.flush(conn)


class _Work:
    """One batch: its rows, and which conversations each lead has."""

    def __init__(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        self.conversations = BatchRows(rm_conversations, "conversation_id")
        self.messages = BatchRows(rm_messages, "message_id")
        ids: set[Key] = set()
        leads: set[Key] = set()
        started: set[Key] = set()
        messages: set[Key] = set()
        erased_leads: set[Key] = set()
        for env in batch:
            e = env.event
            key = (e.organization_id, e.originator_id)
            if env.type_name in LEAD_FOLLOWED:
                leads.add(key)
                if isinstance(e, Lead.PersonalDataErased):
                    erased_leads.add(key)
            elif isinstance(e, Conversation.Started):
                started.add((e.organization_id, e.lead_id))
            elif isinstance(e, Conversation.MessageStatusChanged):
                messages.add((e.organization_id, e.message_id))
            else:
                if isinstance(e, Conversation.MessageAnalysed):
                    messages.add((e.organization_id, e.message_id))
                ids.add(key)
                if isinstance(e, Conversation.Resumed):
                    started.add((e.organization_id, e.lead_id))
        self.conversations.load(conn, ids)
        # a lead event costs this one indexed lookup per batch unless the lead has conversations
        self.conversations.load(conn, leads, by="lead_id")
        self.messages.load(conn, messages)
        self.messages.load(conn, erased_leads, by="lead_id")
        self.by_lead: dict[Key, set[Key]] = defaultdict(set)
        for key, row in self.conversations.rows.items():
            self.by_lead[(key[0], row["lead_id"])].add(key)
        self.assignees = _lead_assignees(conn, started)

    def apply(self, env: Envelope) -> None:
        e = env.event
        if isinstance(e, Lead.Captured | Lead.Assigned):
            assignee = e.assignee_id if isinstance(e, Lead.Captured) else e.to_user_id
            self.assignees[(e.organization_id, e.originator_id)] = assignee
            for key in self.by_lead.get((e.organization_id, e.originator_id), ()):
                follows = self.conversations.rows[key]
                follows.update(
                    lead_assignee_id=assignee, assigned_to=follows["handled_by"] or assignee
                )
                self.conversations.touch(follows, env.position)
            return
        if isinstance(e, Lead.PersonalDataErased):
            self._erase_lead(e.organization_id, e.originator_id, env.position)
            return
        if isinstance(e, Conversation.Started):
            self._started(e, env.position)
            return
        if isinstance(e, Conversation.MessageStatusChanged):
            self._status_changed(e, env.position)
            return
        row = self.conversations.get(e.organization_id, e.originator_id)
        if row is None:  # defensive: a conversation whose start this model never saw
            return
        if isinstance(e, Conversation.MessageAnalysed):
            self._analysed(row, e, env.position)
        elif isinstance(e, Conversation.MessageReceived | Conversation.MessageSent):
            self._message(row, e, env.position)
            if isinstance(e, Conversation.MessageReceived):
                row["status"] = "open"  # the contact writing again reopens a closed conversation
        elif isinstance(e, Conversation.HandedOff):
            row.update(handled_by=e.to_user_id, assigned_to=e.to_user_id or row["lead_assignee_id"])
        elif isinstance(e, Conversation.Closed):
            row["status"] = "closed"
        elif isinstance(e, Conversation.ContactErased):
            row.update(contact=ERASED, status="closed")
        elif isinstance(e, Conversation.Resumed):
            self._resumed(row, e)
        self.conversations.touch(row, env.position)

    def _resumed(self, row: dict[str, Any], e: Conversation.Resumed) -> None:
        """A new lead owns the thread: its contact and assignee, as for a started one."""
        org, key = e.organization_id, self.conversations.key(row)
        self.by_lead[(org, row["lead_id"])].discard(key)
        self.by_lead[(org, e.lead_id)].add(key)
        assignee = self.assignees.get((org, e.lead_id))
        row.update(
            lead_id=e.lead_id,
            contact=e.contact,
            status="open",
            lead_assignee_id=assignee,
            assigned_to=row["handled_by"] or assignee,
        )

    def _erase_lead(self, org: UUID, lead_id: UUID, position: int) -> None:
        """The lead's values so far as a rebuild reads them once its key is gone."""
        mine = [
            m
            for m in self.messages.rows.values()
            if m["organization_id"] == org and m["lead_id"] == lead_id
        ]
        for m in mine:
            m.update(
                text=erased(m["text"]),
                contact_name=erased(m["contact_name"]),
                template_variables={k: erased(v) for k, v in m["template_variables"].items()},
                summary=erased(m["summary"]),
            )
            self.messages.touch(m, position)
        for key in self.by_lead.get((org, lead_id), ()):
            row = self.conversations.rows[key]
            row.update(contact=ERASED, last_message_preview=_erased_preview(row, mine))
            self.conversations.touch(row, position)

    def _started(self, e: Conversation.Started, position: int) -> None:
        assignee = self.assignees.get((e.organization_id, e.lead_id))
        row = {
            "organization_id": e.organization_id,
            "conversation_id": e.originator_id,
            "lead_id": e.lead_id,
            "channel": e.channel,
            "contact": e.contact,
            "provider_type": None,
            "status": "open",
            "handled_by": None,
            "lead_assignee_id": assignee,
            "assigned_to": assignee,
            "last_message_at": e.timestamp,
            "last_message_preview": None,
            "last_message_direction": None,
            "unread_count": 0,
            "waiting_since": None,
            "started_at": e.timestamp,
            "message_count": 0,
            "latest_sentiment": None,
            "latest_urgency": None,
            "sentiment_trend": None,  # until the first analysis, as on rows older than it
            "position": position,
        }
        self.conversations.add(row)
        self.by_lead[(e.organization_id, e.lead_id)].add(self.conversations.key(row))

    def _message(self, row: dict[str, Any], e: Any, position: int) -> None:
        inbound = isinstance(e, Conversation.MessageReceived)
        at = e.sent_at if inbound else e.timestamp
        template = None if inbound else e.template_name
        self.messages.add(
            {
                "organization_id": e.organization_id,
                "message_id": e.message_id,
                "conversation_id": e.originator_id,
                "lead_id": row["lead_id"],
                "direction": "inbound" if inbound else "outbound",
                "provider_type": e.provider_type,
                "provider_message_id": e.provider_message_id if inbound else None,
                "text": e.text,
                "template_name": template,
                "template_variables": {} if inbound else jsonable(e.template_variables),
                "status": "received" if inbound else "queued",
                "error": None,
                "contact_name": e.contact_name if inbound else None,
                "occurred_at": at,
                "status_changed_at": e.timestamp,
                "sentiment": None,
                "urgency": None,
                "intent": None,
                "summary": None,
                "position": position,
            }
        )
        row["message_count"] += 1
        if row["message_count"] == 1 or at >= row["last_message_at"]:
            row.update(
                last_message_at=at,
                last_message_preview=preview(e.text, template),
                last_message_direction="inbound" if inbound else "outbound",
                provider_type=e.provider_type,
            )
        if inbound:
            # unanswered since the earliest inbound message after our last reply
            row["unread_count"] += 1
            waiting = row["waiting_since"]
            row["waiting_since"] = at if waiting is None else min(waiting, at)
        else:
            row.update(unread_count=0, waiting_since=None)

    def _analysed(
        self, row: dict[str, Any], e: Conversation.MessageAnalysed, position: int
    ) -> None:
        """The message's analysis; the conversation's latest values follow the log's order of
        analyses (the order they were recorded in), and its trend keeps the last TREND."""
        message = self.messages.get(e.organization_id, e.message_id)
        if message is not None:
            message.update(
                sentiment=e.sentiment, urgency=e.urgency, intent=e.intent, summary=e.summary
            )
            self.messages.touch(message, position)
        trend = [*(row["sentiment_trend"] or []), round(e.sentiment, 4)][-TREND:]
        row.update(latest_sentiment=e.sentiment, latest_urgency=e.urgency, sentiment_trend=trend)

    def _status_changed(self, e: Conversation.MessageStatusChanged, position: int) -> None:
        message = self.messages.get(e.organization_id, e.message_id)
        if message is None:
            return
        message.update(status=e.status, error=e.error, status_changed_at=e.timestamp)
        if e.provider_message_id:
            message["provider_message_id"] = e.provider_message_id
        self.messages.touch(message, position)


def _erased_preview(row: dict[str, Any], messages: list[dict[str, Any]]) -> str | None:
    """The preview once the last message's text is erased: a template's stays as it was."""
    shown: str | None = row["last_message_preview"]
    if shown is None:
        return None
    if row["last_message_direction"] != "outbound":
        return ERASED
    templates = {
        preview(None, m["template_name"])
        for m in messages
        if m["conversation_id"] == row["conversation_id"]
        and m["template_name"] is not None
        and m["occurred_at"] == row["last_message_at"]
    }
    return shown if shown in templates else ERASED


def _lead_assignees(conn: Connection, leads: set[Key]) -> dict[Key, UUID | None]:
    """Assignees of the leads that start conversations in this batch, from the leads model."""
    found: dict[Key, UUID | None] = {}
    ordered = sorted(leads)
    c = rm_leads.c
    for i in range(0, len(ordered), 500):
        where = keys_filter(conn, c.organization_id, c.lead_id, ordered[i : i + 500])
        query = sa.select(c.organization_id, c.lead_id, c.assignee_id).where(*where)
        for org, lead, assignee in conn.execute(query):
            found[(org, lead)] = assignee
    return found
