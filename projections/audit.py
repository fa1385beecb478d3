"""Audit trail: one row per stored event — who, when, from where, what, and before/after.

A person's erasure leaves earlier rows as a rebuild reads them once the person's key is gone:
each personal value `domain.privacy.ERASED` (None stays None). `Lead.PersonalDataErased` does
so for the lead's own rows and its calls' starts, `Conversation.ContactErased` for the
conversation's rows. A call's lead comes from the calls model (`rm_calls`, before this one in
the registry; a call never changes lead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.conversation import Conversation
from domain.lead import Lead
from domain.privacy import ERASED, PERSONAL_DATA, Path
from projections.base import (
    Envelope,
    JSONType,
    Projector,
    UtcDateTime,
    bulk_insert,
    event_data,
    jsonable,
    metadata,
)
from projections.calls import rm_calls

rm_audit_events = sa.Table(
    "rm_audit_events",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("aggregate_type", sa.String(50), nullable=False),
    sa.Column("resource_id", sa.Uuid, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(100), nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(500)),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("changes", JSONType, nullable=False),
    sa.Index("ix_rm_audit_resource", "organization_id", "resource_id", "position"),
    sa.Index("ix_rm_audit_type", "organization_id", "event_type", "position"),
    sa.Index("ix_rm_audit_time", "organization_id", "occurred_at", "position"),
)

# pairs of event fields that are one attribute's value after and before the change
_RENAMED = {"to_stage_id": "stage_id", "to_user_id": "assignee_id"}
_BEFORE = {"to_stage_id": "from_stage_id", "to_user_id": "from_user_id"}


def changes_of(type_name: str, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Before/after of every attribute an event changed."""
    if type_name.endswith(".DetailsChanged"):
        return {
            k: {"before": jsonable(data["previous"].get(k)), "after": jsonable(v)}
            for k, v in data["changes"].items()
        }
    befores = set(_BEFORE.values()) | {f"previous_{k}" for k in data} | {"previous_status"}
    out: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in befores:
            continue
        before_key = _BEFORE.get(key, f"previous_{key}")
        before = data.get(before_key)
        if key == "value" and type_name.endswith(".Won"):
            before = None
        out[_RENAMED.get(key, key)] = {
            "before": jsonable(before),
            "after": jsonable(value),
        }
    if "previous_status" in data:
        status = type_name.rsplit(".", 1)[-1].lower().replace("reopened", "open")
        out["status"] = {"before": data["previous_status"], "after": status}
    return out


def erase_at(data: Any, path: Path) -> Any:
    """`data` with the value at `path` as it reads once its subject is erased: `ERASED`, or
    None if it was None (never sealed). `"*"` stands for every key of a dictionary."""
    if not path:
        return None if data is None else ERASED
    if not isinstance(data, dict):
        return data
    head, rest = path[0], path[1:]
    out = dict(data)
    for key in list(out) if head == "*" else [head]:
        if key in out:
            out[key] = erase_at(out[key], rest)
    return out


def erase_paths(data: Any, paths: Sequence[Path]) -> Any:
    for path in paths:
        data = erase_at(data, path)
    return data


def _paths_in_changes(type_name: str, paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """Where an event's personal values land in `changes_of` (its after, or its before)."""
    if type_name.endswith(".DetailsChanged"):
        side = {"changes": "after", "previous": "before"}
        return tuple((p[1], side[p[0]], *p[2:]) for p in paths)
    return tuple((p[0], when, *p[1:]) for p in paths for when in ("before", "after"))


#: event type -> paths of its personal values in an audit row's `changes`
PERSONAL_CHANGES = {t: _paths_in_changes(t, rule.paths) for t, rule in PERSONAL_DATA.items()}
LEAD_TYPES = sorted(t for t in PERSONAL_CHANGES if t.startswith("Lead."))
CONVERSATION_TYPES = sorted(t for t in PERSONAL_CHANGES if t.startswith("Conversation."))


class AuditProjector(Projector):
    name = "audit"
    tables = (rm_audit_events,)

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        rows: list[dict[str, Any]] = []
        for env in batch:
            e = env.event
            if not hasattr(e, "organization_id"):
                continue
            if isinstance(e, Lead.PersonalDataErased | Conversation.ContactErased):
                erasure = _Erasure(conn, e, env.position)
                for row in rows:
                    if erasure.covers(row):
                        row["changes"] = _erased(row)
                erasure.erase_stored()  # rows of earlier batches
            rows.append(self._row(env))
        bulk_insert(conn, rm_audit_events, rows)

    @staticmethod
    def _row(env: Envelope) -> dict[str, Any]:
        e = env.event
        actor = getattr(e, "actor", None)
        return {
            "organization_id": e.organization_id,
            "position": env.position,
            "aggregate_type": env.type_name.split(".", 1)[0],
            "resource_id": e.originator_id,
            "version": e.originator_version,
            "event_type": env.type_name,
            "actor_kind": actor.kind if actor else "system",
            "actor_id": actor.id if actor else "system",
            "ip": actor.ip if actor else None,
            "user_agent": actor.user_agent[:500] if actor and actor.user_agent else None,
            "occurred_at": e.timestamp,
            "changes": changes_of(env.type_name, event_data(e)),
        }


def _erased(row: Any) -> dict[str, Any]:
    changes: dict[str, Any] = erase_paths(row["changes"], PERSONAL_CHANGES[row["event_type"]])
    return changes


class _Erasure:
    """The rows an erasure event reaches: before it, of its organization, about its subject
    (a conversation; a lead and its calls, whose starts name the lead's numbers)."""

    def __init__(self, conn: Connection, e: Any, position: int) -> None:
        self.conn = conn
        self.organization_id: UUID = e.organization_id
        self.position = position
        self.resources: set[UUID] = {e.originator_id}
        self.types = CONVERSATION_TYPES
        if isinstance(e, Lead.PersonalDataErased):
            # the calls model has this batch's calls already: it runs first
            c = rm_calls.c
            calls = sa.select(c.call_id).where(
                c.organization_id == e.organization_id, c.lead_id == e.originator_id
            )
            self.resources |= set(conn.execute(calls).scalars())
            self.types = [*LEAD_TYPES, "Call.Started"]

    def covers(self, row: dict[str, Any]) -> bool:
        return (
            row["organization_id"] == self.organization_id
            and row["position"] < self.position
            and row["resource_id"] in self.resources
            and row["event_type"] in self.types
        )

    def erase_stored(self) -> None:
        t = rm_audit_events.c
        query = sa.select(t.organization_id, t.position, t.event_type, t.changes).where(
            t.organization_id == self.organization_id,
            t.resource_id.in_(sorted(self.resources, key=str)),
            t.position < self.position,
            t.event_type.in_(self.types),
        )
        params = []
        for row in self.conn.execute(query).mappings():
            changes = _erased(row)
            if changes != row["changes"]:
                params.append({"k_org": row["organization_id"], "k_pos": row["position"]})
                params[-1]["v_changes"] = changes
        if params:
            self.conn.execute(
                rm_audit_events.update()
                .where(t.organization_id == sa.bindparam("k_org"))
                .where(t.position == sa.bindparam("k_pos"))
                .values(changes=sa.bindparam("v_changes")),
                params,
            )
