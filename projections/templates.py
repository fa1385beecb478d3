"""Message templates read model: the templates themselves, and how well each variant works.

Statistics per template and variant, from the log alone (a rebuild gives the same numbers):
- uses: `Template.Used` events;
- replies: uses answered — the lead's conversation received a message later in the log and at
  most 24 hours after the use (each use counts once, however many messages follow);
- won: distinct leads won (`Lead.Won`) after a use of that variant.
Reply rate = replies ÷ uses. One row per use (`rm_template_uses`) keeps what the replies need;
one row per (template, variant, lead) what the wins need.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from domain.conversation import Conversation
from domain.lead import Lead
from domain.template import Template
from projections.base import Envelope, JSONType, Projector, UtcDateTime, metadata
from projections.conversations import BatchRows

REPLY_WINDOW = timedelta(hours=24)

rm_templates = sa.Table(
    "rm_templates",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("template_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(100)),
    sa.Column("stage_ids", JSONType, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("variants", JSONType, nullable=False),
    sa.Column("whatsapp_template_name", sa.String(200)),
    sa.Column("whatsapp_template_language", sa.String(20)),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_rm_templates_name", "organization_id", "deleted", "name"),
)

rm_template_uses = sa.Table(
    "rm_template_uses",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("template_id", sa.Uuid, primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("variant", sa.String(1), nullable=False),
    sa.Column("lead_id", sa.Uuid, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=False),
    sa.Column("replied", sa.Boolean, nullable=False),
    sa.Index("ix_rm_template_uses_lead", "organization_id", "lead_id", "replied", "used_at"),
)

rm_template_leads = sa.Table(
    "rm_template_leads",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("template_id", sa.Uuid, primary_key=True),
    sa.Column("variant", sa.String(1), primary_key=True),
    sa.Column("won", sa.Boolean, nullable=False),
)

rm_template_stats = sa.Table(
    "rm_template_stats",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("template_id", sa.Uuid, primary_key=True),
    sa.Column("variant", sa.String(1), primary_key=True),
    sa.Column("uses", sa.Integer, nullable=False),
    sa.Column("replies", sa.Integer, nullable=False),
    sa.Column("won", sa.Integer, nullable=False),
)

TEMPLATE_EVENTS = frozenset(
    f"Template.{n}" for n in ("Created", "DetailsChanged", "Deleted", "Used")
)
RECEIVED = "Conversation.MessageReceived"
WON = "Lead.Won"
StatKey = tuple[UUID, UUID, str]


class TemplatesProjector(Projector):
    name = "templates"
    tables = (rm_templates, rm_template_uses, rm_template_leads, rm_template_stats)
    handles = TEMPLATE_EVENTS | {RECEIVED, WON}

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        templates = BatchRows(rm_templates, "template_id")
        templates.load(
            conn,
            {
                (env.event.organization_id, env.event.originator_id)
                for env in batch
                if env.type_name in TEMPLATE_EVENTS and env.type_name != "Template.Created"
            },
        )
        # only leads a template was ever used for need a look at their uses
        used = _used_leads(conn, batch)
        counts: dict[StatKey, list[int]] = defaultdict(lambda: [0, 0, 0])
        for env in batch:
            e = env.event
            if isinstance(e, Template.Used):
                used.add((e.organization_id, e.lead_id))
                _use(conn, env, e, counts)
                row = templates.get(e.organization_id, e.originator_id)
                if row is not None:
                    row["version"] = e.originator_version
                    templates.touch(row, env.position)
            elif isinstance(e, Conversation.MessageReceived):
                if e.lead_id is not None and (e.organization_id, e.lead_id) in used:
                    _reply(conn, e.organization_id, e.lead_id, e.timestamp, counts)
            elif isinstance(e, Lead.Won):
                if (e.organization_id, e.originator_id) in used:
                    _win(conn, e.organization_id, e.originator_id, counts)
            elif isinstance(e, Template.Created):
                templates.add(_created(e, env.position))
            else:
                row = templates.get(e.organization_id, e.originator_id)
                if row is not None:
                    _change(row, e)
                    templates.touch(row, env.position)
        templates.flush(conn)
        _add_counts(conn, counts)


def _used_leads(conn: Connection, batch: Sequence[Envelope]) -> set[tuple[UUID, UUID]]:
    asked: set[tuple[UUID, UUID]] = set()
    for env in batch:
        e = env.event
        if isinstance(e, Conversation.MessageReceived) and e.lead_id is not None:
            asked.add((e.organization_id, e.lead_id))
        elif isinstance(e, Lead.Won):
            asked.add((e.organization_id, e.originator_id))
    found: set[tuple[UUID, UUID]] = set()
    ordered = sorted(asked)
    c = rm_template_leads.c
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        orgs = sorted({o for o, _ in chunk})
        leads = sorted({lead for _, lead in chunk})
        query = (
            sa.select(c.organization_id, c.lead_id)
            .distinct()
            .where(c.organization_id.in_(orgs), c.lead_id.in_(leads))
        )
        found |= {(o, lead) for o, lead in conn.execute(query)}
    return found & asked


def _use(
    conn: Connection, env: Envelope, e: Template.Used, counts: dict[StatKey, list[int]]
) -> None:
    org, template = e.organization_id, e.originator_id
    conn.execute(
        _upsert(conn, rm_template_uses).on_conflict_do_nothing(),
        {
            "organization_id": org,
            "template_id": template,
            "position": env.position,
            "variant": e.variant,
            "lead_id": e.lead_id,
            "used_at": e.timestamp,
            "replied": False,
        },
    )
    conn.execute(
        _upsert(conn, rm_template_leads).on_conflict_do_nothing(),
        {
            "organization_id": org,
            "lead_id": e.lead_id,
            "template_id": template,
            "variant": e.variant,
            "won": False,
        },
    )
    counts[(org, template, e.variant)][0] += 1


def _reply(
    conn: Connection, org: UUID, lead: UUID, at: datetime, counts: dict[StatKey, list[int]]
) -> None:
    """Every unanswered use of the lead from the last 24 hours is answered by this message."""
    c = rm_template_uses.c
    where = (
        c.organization_id == org,
        c.lead_id == lead,
        c.replied.is_(False),
        c.used_at >= at - REPLY_WINDOW,
    )
    answered = conn.execute(sa.select(c.template_id, c.variant).where(*where)).all()
    if not answered:
        return
    conn.execute(rm_template_uses.update().where(*where).values(replied=True))
    for template, variant in answered:
        counts[(org, template, variant)][1] += 1


def _win(conn: Connection, org: UUID, lead: UUID, counts: dict[StatKey, list[int]]) -> None:
    c = rm_template_leads.c
    where = (c.organization_id == org, c.lead_id == lead, c.won.is_(False))
    first_wins = conn.execute(sa.select(c.template_id, c.variant).where(*where)).all()
    if not first_wins:
        return
    conn.execute(rm_template_leads.update().where(*where).values(won=True))
    for template, variant in first_wins:
        counts[(org, template, variant)][2] += 1


def _add_counts(conn: Connection, counts: dict[StatKey, list[int]]) -> None:
    if not counts:
        return
    stmt = _upsert(conn, rm_template_stats)
    excluded = stmt.excluded
    c = rm_template_stats.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["organization_id", "template_id", "variant"],
        set_={
            "uses": c.uses + excluded.uses,
            "replies": c.replies + excluded.replies,
            "won": c.won + excluded.won,
        },
    )
    rows = [
        {
            "organization_id": org,
            "template_id": template,
            "variant": variant,
            "uses": uses,
            "replies": replies,
            "won": won,
        }
        for (org, template, variant), (uses, replies, won) in sorted(counts.items())
    ]
    conn.execute(stmt, rows)


def _upsert(conn: Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _created(e: Template.Created, position: int) -> dict[str, Any]:
    return {
        "organization_id": e.organization_id,
        "template_id": e.originator_id,
        "name": e.name,
        "category": e.category,
        "stage_ids": [str(s) for s in e.stage_ids],
        "body": e.body,
        "variants": list(e.variants),
        "whatsapp_template_name": e.whatsapp_template_name,
        "whatsapp_template_language": e.whatsapp_template_language,
        "tags": list(e.tags),
        "deleted": False,
        "version": e.originator_version,
        "created_at": e.timestamp,
        "updated_at": e.timestamp,
        "position": position,
    }


def _change(row: dict[str, Any], e: Any) -> None:
    if isinstance(e, Template.DetailsChanged):
        for field, value in e.changes.items():
            row[field] = [str(s) for s in value] if field == "stage_ids" else value
    elif isinstance(e, Template.Deleted):
        row["deleted"] = True
    row["version"] = e.originator_version
    row["updated_at"] = e.timestamp
