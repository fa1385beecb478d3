"""Audit trail: one row per stored event — who, when, from where, what, and before/after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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


class AuditProjector(Projector):
    name = "audit"
    tables = (rm_audit_events,)

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        rows = [self._row(env) for env in batch if hasattr(env.event, "organization_id")]
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
