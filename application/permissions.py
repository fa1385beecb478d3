"""The one role → permission matrix. Routes name a permission; the guard checks it here."""

from __future__ import annotations

from enum import StrEnum

from domain.values import Role


class Permission(StrEnum):
    LEADS_READ = "leads:read"
    LEADS_WRITE = "leads:write"
    PIPELINE_READ = "pipeline:read"
    PIPELINE_WRITE = "pipeline:write"
    AUDIT_READ = "audit:read"


_READ = {Permission.LEADS_READ, Permission.PIPELINE_READ}

MATRIX: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MANAGER: frozenset(Permission),
    Role.SALES: frozenset(_READ | {Permission.LEADS_WRITE}),
    Role.VIEWER: frozenset(_READ),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in MATRIX[role]
