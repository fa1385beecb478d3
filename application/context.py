"""Who is asking, for which organization: passed to every handler by the guard."""

from __future__ import annotations

from uuid import UUID

import msgspec

from domain.values import Actor, Role


class Ctx(msgspec.Struct, frozen=True):
    organization_id: UUID
    user_id: UUID
    role: Role
    actor: Actor


class Written(msgspec.Struct, frozen=True):
    """The answer to every command: the aggregate's new version and the log position."""

    id: UUID
    version: int
    position: int
