"""Leads read model: one row per lead (list, detail, board cards) and per stage (board columns).

Batches are applied in memory first — rows touched by the batch are loaded once, changed by each
event in log order, and written back with one statement per kind — so catch-up is fast.
A person's erasure leaves their row as a rebuild reads it once their key is gone: personal
values `[erased]`, no E.164 number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from domain.lead import Lead
from domain.pipeline import Pipeline
from domain.privacy import ERASED, erased
from projections.base import (
    Envelope,
    JSONType,
    Projector,
    UtcDateTime,
    bulk_insert,
    cents,
    jsonable,
    metadata,
)
from projections.phones import e164

rm_stages = sa.Table(
    "rm_stages",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("stage_id", sa.Uuid, primary_key=True),
    sa.Column("pipeline_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("color", sa.String(7), nullable=False),
    sa.Column("stage_type", sa.String(10), nullable=False),
    sa.Column("sort_order", sa.Integer, nullable=False),
    sa.Column("win_probability", sa.Integer),  # NULL: derived from the stage's place
    sa.Column("lead_count", sa.Integer, nullable=False, default=0),
    sa.Column("total_value_cents", sa.BigInteger, nullable=False, default=0),
)

rm_leads = sa.Table(
    "rm_leads",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("pipeline_id", sa.Uuid, nullable=False),
    sa.Column("stage_id", sa.Uuid, nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(254)),
    sa.Column("phone", sa.String(32)),
    sa.Column("phone_e164", sa.String(20)),  # how inbound messages and calls find their lead
    sa.Column("company", sa.String(200)),
    sa.Column("source", sa.String(100)),
    sa.Column("value_cents", sa.BigInteger),
    sa.Column("custom_fields", JSONType, nullable=False),
    sa.Column("assignee_id", sa.Uuid),
    sa.Column("score", sa.Integer),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False),
    sa.Column("notes_count", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("stage_entered_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("last_position", sa.BigInteger, nullable=False),
    sa.Index(
        "ix_rm_leads_board",
        "organization_id",
        "stage_id",
        "archived",
        "stage_entered_at",
    ),
    sa.Index("ix_rm_leads_created", "organization_id", "created_at", "lead_id"),
    sa.Index("ix_rm_leads_assignee", "organization_id", "assignee_id", "created_at"),
    sa.Index("ix_rm_leads_phone", "organization_id", "phone_e164"),
)

LEAD_EVENTS = {f"Lead.{n}" for n in ("Captured", "DetailsChanged", "MovedToStage", "Assigned")}
LEAD_EVENTS |= {f"Lead.{n}" for n in ("NoteAdded", "Won", "Lost", "Reopened", "Archived")}
LEAD_EVENTS |= {"Lead.PersonalDataErased"}
PIPELINE_EVENTS = {f"Pipeline.{n}" for n in ("Created", "StageAdded", "StageRenamed")}
PIPELINE_EVENTS |= {f"Pipeline.{n}" for n in ("StageRecoloured", "StagesReordered", "StageRemoved")}
PIPELINE_EVENTS |= {"Pipeline.StageWinProbabilitySet"}


class _Board:
    """Per-stage count and value deltas collected during a batch."""

    def __init__(self) -> None:
        self.delta: dict[tuple[UUID, UUID], list[int]] = defaultdict(lambda: [0, 0])

    def add(self, row: dict[str, Any], sign: int) -> None:
        if row["archived"]:
            return
        d = self.delta[(row["organization_id"], row["stage_id"])]
        d[0] += sign
        d[1] += sign * (row["value_cents"] or 0)


class LeadsProjector(Projector):
    name = "leads"
    tables = (rm_leads, rm_stages)
    handles = frozenset(LEAD_EVENTS | PIPELINE_EVENTS)

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        rows = self._load(conn, batch)
        new: set[tuple[UUID, UUID]] = set()
        dirty: set[tuple[UUID, UUID]] = set()
        board = _Board()
        for env in batch:
            e = env.event
            if env.type_name in PIPELINE_EVENTS:
                self._flush(conn, rows, new, dirty, board)
                self._stage_event(conn, e)
                continue
            key = (e.organization_id, e.originator_id)
            if isinstance(e, Lead.Captured):
                rows[key] = self._captured(e, env.position)
                new.add(key)
                board.add(rows[key], +1)
                continue
            row = rows.get(key)
            if row is None:  # defensive: a lead whose creation this model never saw
                continue
            board.add(row, -1)
            self._apply(row, e)
            row.update(version=e.originator_version, updated_at=e.timestamp)
            row["last_position"] = env.position
            board.add(row, +1)
            dirty.add(key)
        self._flush(conn, rows, new, dirty, board)

    def _load(self, conn: Connection, batch: Sequence[Envelope]) -> dict[tuple[UUID, UUID], Any]:
        keys = {
            (env.event.organization_id, env.event.originator_id)
            for env in batch
            if env.type_name in LEAD_EVENTS and env.type_name != "Lead.Captured"
        }
        rows: dict[tuple[UUID, UUID], Any] = {}
        ordered = sorted(keys)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i : i + 500]
            # the primary key's range (organization first) filtered by lead ids: one index scan
            # per organization, and a statement shape the database can cache
            query = sa.select(rm_leads).where(*_keys_filter(conn, chunk))
            for r in conn.execute(query).mappings().all():
                rows[(r["organization_id"], r["lead_id"])] = dict(r)
        return rows

    @staticmethod
    def _captured(e: Lead.Captured, position: int) -> dict[str, Any]:
        return {
            "organization_id": e.organization_id,
            "lead_id": e.originator_id,
            "pipeline_id": e.pipeline_id,
            "stage_id": e.stage_id,
            "full_name": e.full_name,
            "email": e.email,
            "phone": e.phone,
            "phone_e164": e164(e.phone),
            "company": e.company,
            "source": e.source,
            "value_cents": None if e.estimated_value is None else cents(e.estimated_value),
            "custom_fields": jsonable(e.custom_fields),
            "assignee_id": e.assignee_id,
            "score": None,
            "status": "open",
            "archived": False,
            "notes_count": 0,
            "created_at": e.timestamp,
            "updated_at": e.timestamp,
            "stage_entered_at": e.timestamp,
            "version": e.originator_version,
            "last_position": position,
        }

    @staticmethod
    def _apply(row: dict[str, Any], e: Any) -> None:
        if isinstance(e, Lead.DetailsChanged):
            for field, value in e.changes.items():
                if field == "estimated_value":
                    row["value_cents"] = None if value is None else cents(value)
                elif field == "custom_fields":
                    row["custom_fields"] = jsonable(value)
                elif field == "phone":
                    row.update(phone=value, phone_e164=e164(value))
                else:
                    row[field] = value
        elif isinstance(e, Lead.MovedToStage):
            row.update(stage_id=e.to_stage_id, stage_entered_at=e.timestamp)
        elif isinstance(e, Lead.Assigned):
            row["assignee_id"] = e.to_user_id
        elif isinstance(e, Lead.NoteAdded):
            row["notes_count"] += 1
        elif isinstance(e, Lead.Won):
            row["status"] = "won"
        elif isinstance(e, Lead.Lost):
            row["status"] = "lost"
        elif isinstance(e, Lead.Reopened):
            row["status"] = "open"
        elif isinstance(e, Lead.Archived):
            row["archived"] = True
        elif isinstance(e, Lead.PersonalDataErased):
            # as a rebuild reads the person's values once their key is gone
            row.update(
                full_name=ERASED,
                email=erased(row["email"]),
                phone=erased(row["phone"]),
                phone_e164=None,
                custom_fields={k: erased(v) for k, v in row["custom_fields"].items()},
            )

    @staticmethod
    def _flush(
        conn: Connection,
        rows: dict[tuple[UUID, UUID], Any],
        new: set[tuple[UUID, UUID]],
        dirty: set[tuple[UUID, UUID]],
        board: _Board,
    ) -> None:
        changed = [rows[k] for k in dirty - new]
        if conn.dialect.name == "postgresql" and (new or changed):
            # replace changed rows wholesale: one DELETE and one COPY for the whole batch
            if changed:
                conn.execute(rm_leads.delete().where(*_keys_filter(conn, changed)))
            bulk_insert(conn, rm_leads, [rows[k] for k in new] + changed)
            changed = []
        elif new:
            conn.execute(rm_leads.insert(), [rows[k] for k in new])
        if changed:
            cols = [c.name for c in rm_leads.c if c.name not in ("organization_id", "lead_id")]
            stmt = (
                rm_leads.update()
                .where(rm_leads.c.organization_id == sa.bindparam("k_org"))
                .where(rm_leads.c.lead_id == sa.bindparam("k_id"))
                .values({c: sa.bindparam(f"v_{c}") for c in cols})
            )
            params = [
                {"k_org": r["organization_id"], "k_id": r["lead_id"]}
                | {f"v_{c}": r[c] for c in cols}
                for r in changed
            ]
            conn.execute(stmt, params)
        deltas = [
            {"k_org": org, "k_stage": stage, "d_count": d[0], "d_value": d[1]}
            for (org, stage), d in board.delta.items()
            if d != [0, 0]
        ]
        if deltas:
            conn.execute(
                rm_stages.update()
                .where(rm_stages.c.organization_id == sa.bindparam("k_org"))
                .where(rm_stages.c.stage_id == sa.bindparam("k_stage"))
                .values(
                    lead_count=rm_stages.c.lead_count + sa.bindparam("d_count"),
                    total_value_cents=rm_stages.c.total_value_cents + sa.bindparam("d_value"),
                ),
                deltas,
            )
        new.clear()
        dirty.clear()
        board.delta.clear()

    @staticmethod
    def _stage_event(conn: Connection, e: Any) -> None:
        org = e.organization_id
        where = (
            rm_stages.c.organization_id == org,
            rm_stages.c.pipeline_id == e.originator_id,
        )
        if isinstance(e, Pipeline.Created):
            for i, s in enumerate(e.stages):
                conn.execute(rm_stages.insert().values(_stage_row(org, e.originator_id, s, i)))
        elif isinstance(e, Pipeline.StageAdded):
            conn.execute(
                rm_stages.update()
                .where(*where, rm_stages.c.sort_order >= e.position)
                .values(sort_order=rm_stages.c.sort_order + 1)
            )
            stage = {
                "id": e.stage_id,
                "name": e.name,
                "color": e.color,
                "stage_type": e.stage_type,
                "win_probability": e.win_probability,
            }
            conn.execute(
                rm_stages.insert().values(_stage_row(org, e.originator_id, stage, e.position))
            )
        elif isinstance(
            e, Pipeline.StageRenamed | Pipeline.StageRecoloured | Pipeline.StageWinProbabilitySet
        ):
            change = _stage_change(e)
            conn.execute(
                rm_stages.update().where(*where, rm_stages.c.stage_id == e.stage_id).values(change)
            )
        elif isinstance(e, Pipeline.StagesReordered):
            for i, stage_id in enumerate(e.stage_ids):
                conn.execute(
                    rm_stages.update()
                    .where(*where, rm_stages.c.stage_id == stage_id)
                    .values(sort_order=i)
                )
        elif isinstance(e, Pipeline.StageRemoved):
            conn.execute(rm_stages.delete().where(*where, rm_stages.c.stage_id == e.stage_id))


def _keys_filter(conn: Connection, keys: Sequence[Any]) -> list[sa.ColumnElement[bool]]:
    """Rows of these (organization, lead) keys, or rows given as dicts with those columns.

    Lead ids are globally unique, so "organization in (...) and lead in (...)" selects exactly
    these rows, through the primary key whose first column is the organization. PostgreSQL gets
    two array parameters (one statement shape whatever the count); SQLite gets IN lists.
    """
    pairs = [(k["organization_id"], k["lead_id"]) if isinstance(k, dict) else k for k in keys]
    orgs = sorted({org for org, _ in pairs})
    leads = [lead for _, lead in pairs]
    c = rm_leads.c
    if conn.dialect.name == "postgresql":
        uuids = postgresql.ARRAY(sa.Uuid)
        return [
            c.organization_id == sa.any_(sa.bindparam("orgs", orgs, type_=uuids)),
            c.lead_id == sa.any_(sa.bindparam("leads", leads, type_=uuids)),
        ]
    return [c.organization_id.in_(orgs), c.lead_id.in_(leads)]


def _stage_change(e: Any) -> dict[str, Any]:
    if isinstance(e, Pipeline.StageRenamed):
        return {"name": e.name}
    if isinstance(e, Pipeline.StageRecoloured):
        return {"color": e.color}
    return {"win_probability": e.win_probability}


def _stage_row(org: UUID, pipeline_id: UUID, stage: dict[str, Any], order: int) -> dict[str, Any]:
    return {
        "organization_id": org,
        "stage_id": stage["id"],
        "pipeline_id": pipeline_id,
        "name": stage["name"],
        "color": stage["color"],
        "stage_type": stage["stage_type"],
        "sort_order": order,
        # Created events stored before win probabilities existed lack the key
        "win_probability": stage.get("win_probability"),
        "lead_count": 0,
        "total_value_cents": 0,
    }
