"""Message template queries: the list, statistics per variant, suggestions for a lead."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.leads.queries import get_lead
from domain.errors import NotFoundError
from domain.template import variant_label
from projections.templates import rm_template_leads, rm_template_stats, rm_templates


class TemplateView(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    category: str | None
    stage_ids: list[UUID]
    body: str
    variants: list[str]
    whatsapp_template_name: str | None
    whatsapp_template_language: str | None
    tags: list[str]
    version: int
    created_at: str
    updated_at: str


class VariantStats(msgspec.Struct, frozen=True):
    variant: str
    uses: int
    replies: int
    reply_rate: float
    won: int


class TemplateStats(msgspec.Struct, frozen=True):
    """`replies`: uses answered within 24 h; `won`: leads won after a use (per variant: leads
    won after a use of that variant, so the variants' `won` may add up to more)."""

    template_id: UUID
    uses: int
    replies: int
    reply_rate: float
    won: int
    variants: list[VariantStats]


class Suggestion(msgspec.Struct, frozen=True):
    template: TemplateView
    uses: int
    replies: int
    reply_rate: float


def _rate(replies: int, uses: int) -> float:
    return round(replies / uses, 4) if uses else 0.0


def _view(row: Any) -> TemplateView:
    return TemplateView(
        id=row.template_id,
        name=row.name,
        category=row.category,
        stage_ids=[UUID(s) for s in row.stage_ids],
        body=row.body,
        variants=list(row.variants),
        whatsapp_template_name=row.whatsapp_template_name,
        whatsapp_template_language=row.whatsapp_template_language,
        tags=list(row.tags),
        version=row.version,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
    )


def list_templates(
    conn: Connection,
    organization_id: UUID,
    *,
    category: str | None = None,
    tag: str | None = None,
    stage_id: UUID | None = None,
) -> list[TemplateView]:
    """The organization's templates (deleted ones left out) by name; a template naming no
    stage suits every stage."""
    c = rm_templates.c
    query = sa.select(rm_templates).where(c.organization_id == organization_id, ~c.deleted)
    if category is not None:
        query = query.where(c.category == category)
    views = [_view(r) for r in conn.execute(query.order_by(c.name, c.template_id))]
    if tag is not None:
        views = [t for t in views if tag in t.tags]
    if stage_id is not None:
        views = [t for t in views if not t.stage_ids or stage_id in t.stage_ids]
    return views


def template_stats(conn: Connection, organization_id: UUID, template_id: UUID) -> TemplateStats:
    c = rm_templates.c
    found = conn.execute(
        sa.select(c.variants).where(
            c.organization_id == organization_id, c.template_id == template_id
        )
    ).first()
    if found is None:
        raise NotFoundError("template", template_id)
    s = rm_template_stats.c
    counted = {
        r.variant: r
        for r in conn.execute(
            sa.select(rm_template_stats).where(
                s.organization_id == organization_id, s.template_id == template_id
            )
        )
    }
    # every variant the template has now, and any it had when it was used
    labels = {variant_label(i) for i in range(len(found.variants) + 1)} | counted.keys()
    variants = []
    for label in sorted(labels):
        row = counted.get(label)
        uses, replies, won = (row.uses, row.replies, row.won) if row else (0, 0, 0)
        variants.append(VariantStats(label, uses, replies, _rate(replies, uses), won))
    uses = sum(v.uses for v in variants)
    replies = sum(v.replies for v in variants)
    won = _won_leads(conn, organization_id, template_id)
    return TemplateStats(template_id, uses, replies, _rate(replies, uses), won, variants)


def _won_leads(conn: Connection, organization_id: UUID, template_id: UUID) -> int:
    c = rm_template_leads.c
    query = sa.select(sa.func.count(sa.distinct(c.lead_id))).where(
        c.organization_id == organization_id, c.template_id == template_id, c.won
    )
    return int(conn.execute(query).scalar() or 0)


def suggestions(
    conn: Connection, organization_id: UUID, lead_id: UUID, *, tag: str | None = None
) -> list[Suggestion]:
    """Templates suited to the lead's current stage (with `tag`: only those tagged so, e.g.
    `nurture`), best reply rate first (then the most used, those naming the stage before those
    suiting every stage, then by name)."""
    stage_id = get_lead(conn, organization_id, lead_id).stage_id
    templates = list_templates(conn, organization_id, stage_id=stage_id, tag=tag)
    s = rm_template_stats.c
    totals = {
        r.template_id: (int(r.uses), int(r.replies))
        for r in conn.execute(
            sa.select(
                s.template_id,
                sa.func.sum(s.uses).label("uses"),
                sa.func.sum(s.replies).label("replies"),
            )
            .where(s.organization_id == organization_id)
            .group_by(s.template_id)
        )
    }
    found = []
    for t in templates:
        uses, replies = totals.get(t.id, (0, 0))
        found.append(Suggestion(t, uses, replies, _rate(replies, uses)))
    found.sort(key=lambda x: (-x.reply_rate, -x.uses, not x.template.stage_ids, x.template.name))
    return found
