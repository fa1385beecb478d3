"""Directory read model: organizations and their members (login's list of orgs, member lists)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.organization import Organization
from projections.base import Envelope, Projector, UtcDateTime, metadata

rm_organizations = sa.Table(
    "rm_organizations",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

rm_members = sa.Table(
    "rm_members",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("joined_at", UtcDateTime, nullable=False),
    # the one lookup that starts from the user, not the tenant: "my organizations" at login
    sa.Index("ix_rm_members_user", "user_id", "organization_id"),
)


class DirectoryProjector(Projector):
    name = "directory"
    tables = (rm_organizations, rm_members)
    handles = frozenset(
        f"Organization.{n}"
        for n in ("Registered", "Renamed", "MemberAdded", "MemberRoleChanged", "MemberRemoved")
    )

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        for env in batch:
            e = env.event
            org = e.organization_id
            member = (
                rm_members.c.organization_id == org,
                rm_members.c.user_id == getattr(e, "user_id", None),
            )
            if isinstance(e, Organization.Registered):
                conn.execute(
                    rm_organizations.insert().values(
                        organization_id=org, name=e.name, created_at=e.timestamp
                    )
                )
                conn.execute(
                    rm_members.insert().values(
                        organization_id=org,
                        user_id=e.owner_user_id,
                        role="admin",
                        joined_at=e.timestamp,
                    )
                )
            elif isinstance(e, Organization.Renamed):
                conn.execute(
                    rm_organizations.update()
                    .where(rm_organizations.c.organization_id == org)
                    .values(name=e.name)
                )
            elif isinstance(e, Organization.MemberAdded):
                conn.execute(
                    rm_members.insert().values(
                        organization_id=org,
                        user_id=e.user_id,
                        role=e.role,
                        joined_at=e.timestamp,
                    )
                )
            elif isinstance(e, Organization.MemberRoleChanged):
                conn.execute(rm_members.update().where(*member).values(role=e.role))
            elif isinstance(e, Organization.MemberRemoved):
                conn.execute(rm_members.delete().where(*member))


# Not a projection: the guard writes each API key's last use here (throttled), off the event log,
# because a use is not a change anyone audits and would flood the log.
api_key_usage = sa.Table(
    "api_key_usage",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("key_id", sa.Uuid, primary_key=True),
    sa.Column("last_used_at", UtcDateTime, nullable=False),
)
