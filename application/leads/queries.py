"""Lead and pipeline queries over the read models: stages, leads, the board, a lead's timeline.

Every one takes the organization first and filters by it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.paging import (
    Page,
    decode_cursor,
    encode_cursor,
    limit_of,
    number_cursor,
)
from domain.errors import InvalidValueError, LeadNotFoundError
from projections.leads import rm_leads, rm_stages
from projections.timeline import rm_lead_timeline


class StageView(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    color: str
    stage_type: str
    win_probability: int | None  # null: derived from the stage's place
    position: int
    count: int
    total_value: Decimal


class LeadView(msgspec.Struct, frozen=True):
    id: UUID
    full_name: str
    email: str | None
    phone: str | None
    company: str | None
    source: str | None
    estimated_value: Decimal | None
    custom_fields: dict[str, Any]
    stage_id: UUID
    assigned_to: UUID | None
    score: int | None
    status: str
    archived: bool
    notes_count: int
    created_at: datetime
    updated_at: datetime
    stage_entered_at: datetime
    version: int


class BoardCard(msgspec.Struct, frozen=True):
    id: UUID
    full_name: str
    company: str | None
    estimated_value: Decimal | None
    score: int | None
    assigned_to: UUID | None
    status: str
    stage_entered_at: datetime
    version: int


class BoardColumn(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    color: str
    stage_type: str
    win_probability: int | None
    count: int
    total_value: Decimal
    leads: list[BoardCard]


class Board(msgspec.Struct, frozen=True):
    stages: list[BoardColumn]


class Activity(msgspec.Struct, frozen=True):
    """One timeline entry: a lead event (its `version`) or a message or call of the lead."""

    version: int | None
    position: int
    activity_type: str
    title: str
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    data: dict[str, Any]


CENT = Decimal("0.01")


def money(value_cents: int | None) -> Decimal | None:
    return None if value_cents is None else (Decimal(value_cents) / 100).quantize(CENT)


def list_stages(conn: Connection, org: UUID) -> list[StageView]:
    rows = conn.execute(
        sa.select(rm_stages)
        .where(rm_stages.c.organization_id == org)
        .order_by(rm_stages.c.sort_order)
    ).mappings()
    return [
        StageView(
            id=r["stage_id"],
            name=r["name"],
            color=r["color"],
            stage_type=r["stage_type"],
            win_probability=r["win_probability"],
            position=i,
            count=r["lead_count"],
            total_value=(Decimal(r["total_value_cents"]) / 100).quantize(CENT),
        )
        for i, r in enumerate(rows)
    ]


def _lead_view(r: Any) -> LeadView:
    return LeadView(
        id=r["lead_id"],
        full_name=r["full_name"],
        email=r["email"],
        phone=r["phone"],
        company=r["company"],
        source=r["source"],
        estimated_value=money(r["value_cents"]),
        custom_fields=r["custom_fields"],
        stage_id=r["stage_id"],
        assigned_to=r["assignee_id"],
        score=r["score"],
        status=r["status"],
        archived=r["archived"],
        notes_count=r["notes_count"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        stage_entered_at=r["stage_entered_at"],
        version=r["version"],
    )


def get_lead(conn: Connection, org: UUID, lead_id: UUID) -> LeadView:
    row = (
        conn.execute(
            sa.select(rm_leads).where(
                rm_leads.c.organization_id == org, rm_leads.c.lead_id == lead_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise LeadNotFoundError(lead_id)
    return _lead_view(row)


def list_leads(
    conn: Connection,
    org: UUID,
    *,
    stage_id: UUID | None = None,
    assigned_to: UUID | None = None,
    q: str | None = None,
    status: str | None = None,
    include_archived: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    c = rm_leads.c
    query = sa.select(rm_leads).where(c.organization_id == org)
    if stage_id is not None:
        query = query.where(c.stage_id == stage_id)
    if assigned_to is not None:
        query = query.where(c.assignee_id == assigned_to)
    if status is not None:
        if status not in ("open", "won", "lost"):
            raise InvalidValueError("status", "must be open, won or lost")
        query = query.where(c.status == status)
    if not include_archived:
        query = query.where(c.archived.is_(False))
    if q:
        pattern = "%" + q.strip().lower().replace("%", r"\%").replace("_", r"\_") + "%"
        query = query.where(
            sa.or_(
                sa.func.lower(c.full_name).like(pattern, escape="\\"),
                sa.func.lower(c.email).like(pattern, escape="\\"),
                sa.func.lower(c.company).like(pattern, escape="\\"),
            )
        )
    if cursor:
        created, lead_id = decode_cursor(cursor, 2)
        try:
            key = (datetime.fromisoformat(created), UUID(lead_id))
        except ValueError:
            raise InvalidValueError("cursor", "is not a cursor this list gave out") from None
        query = query.where(sa.tuple_(c.created_at, c.lead_id) < sa.tuple_(*key))
    size = limit_of(limit)
    rows = conn.execute(
        query.order_by(c.created_at.desc(), c.lead_id.desc()).limit(size + 1)
    ).mappings()
    items = [_lead_view(r) for r in rows]
    next_cursor = None
    if len(items) > size:
        items = items[:size]
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return Page(items=items, next_cursor=next_cursor)


def lead_ids_in_stage(conn: Connection, org: UUID, stage_id: UUID) -> list[UUID]:
    rows = conn.execute(
        sa.select(rm_leads.c.lead_id).where(
            rm_leads.c.organization_id == org,
            rm_leads.c.stage_id == stage_id,
            rm_leads.c.archived.is_(False),
        )
    )
    return [r[0] for r in rows]


def board(conn: Connection, org: UUID, *, cards_per_stage: int = 50) -> Board:
    """Stages with their counters and newest cards: two statements whatever the stage count."""
    size = limit_of(cards_per_stage)
    stages = list_stages(conn, org)
    c = rm_leads.c
    columns = (
        c.stage_id,
        c.lead_id,
        c.full_name,
        c.company,
        c.value_cents,
        c.score,
        c.assignee_id,
        c.status,
        c.stage_entered_at,
        c.version,
    )
    per_stage = [
        sa.select(*columns)
        .where(c.organization_id == org, c.stage_id == stage.id, c.archived.is_(False))
        .order_by(c.stage_entered_at.desc())
        .limit(size)
        .subquery()
        .select()
        for stage in stages
    ]
    cards: dict[UUID, list[BoardCard]] = {stage.id: [] for stage in stages}
    if per_stage:
        for r in conn.execute(sa.union_all(*per_stage)).mappings():
            cards[r["stage_id"]].append(
                BoardCard(
                    id=r["lead_id"],
                    full_name=r["full_name"],
                    company=r["company"],
                    estimated_value=money(r["value_cents"]),
                    score=r["score"],
                    assigned_to=r["assignee_id"],
                    status=r["status"],
                    stage_entered_at=r["stage_entered_at"],
                    version=r["version"],
                )
            )
    return Board(
        stages=[
            BoardColumn(
                id=stage.id,
                name=stage.name,
                color=stage.color,
                stage_type=stage.stage_type,
                win_probability=stage.win_probability,
                count=stage.count,
                total_value=stage.total_value,
                leads=sorted(cards[stage.id], key=lambda card: card.stage_entered_at, reverse=True),
            )
            for stage in stages
        ]
    )


def timeline(
    conn: Connection, org: UUID, lead_id: UUID, *, limit: int = 100, cursor: str | None = None
) -> Page:
    c = rm_lead_timeline.c
    query = sa.select(rm_lead_timeline).where(c.organization_id == org, c.lead_id == lead_id)
    if cursor:
        query = query.where(c.position < number_cursor(cursor))
    size = limit_of(limit)
    rows = conn.execute(query.order_by(c.position.desc()).limit(size + 1)).mappings()
    items = [
        Activity(
            version=r["version"],
            position=r["position"],
            activity_type=r["activity_type"],
            title=r["title"],
            occurred_at=r["occurred_at"],
            actor_kind=r["actor_kind"],
            actor_id=r["actor_id"],
            data=r["data"],
        )
        for r in rows
    ]
    next_cursor = None
    if len(items) > size:
        items = items[:size]
        next_cursor = encode_cursor(items[-1].position)
    return Page(items=items, next_cursor=next_cursor)
