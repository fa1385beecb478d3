"""Which organizations a user belongs to, and as what (the directory read model)."""

from __future__ import annotations

from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.directory import rm_members, rm_organizations


class Membership(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    role: str


def organizations_of(conn: Connection, user_id: UUID) -> list[Membership]:
    rows = conn.execute(
        sa.select(rm_members.c.organization_id, rm_organizations.c.name, rm_members.c.role)
        .join(rm_organizations, rm_organizations.c.organization_id == rm_members.c.organization_id)
        .where(rm_members.c.user_id == user_id)
        .order_by(rm_members.c.joined_at)
    )
    return [Membership(id=r[0], name=r[1], role=r[2]) for r in rows]
