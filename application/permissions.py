"""The one role → permission matrix. Routes name a permission; the guard checks it here.

| permission          | admin | manager | sales | viewer |
|---------------------|:-----:|:-------:|:-----:|:------:|
| leads:read          |   ✓   |    ✓    |   ✓   |   ✓    |
| pipeline:read       |   ✓   |    ✓    |   ✓   |   ✓    |
| organization:read   |   ✓   |    ✓    |   ✓   |   ✓    |
| members:read        |   ✓   |    ✓    |   ✓   |   ✓    |
| leads:write         |   ✓   |    ✓    |  own  |        |
| pipeline:write      |   ✓   |    ✓    |       |        |
| audit:read          |   ✓   |    ✓    |       |        |
| audit:export        |   ✓   |         |       |        |
| privacy:manage      |   ✓   |         |       |        |
| analytics:read      |   ✓   |    ✓    |  own  |   ✓    |
| organization:write  |   ✓   |         |       |        |
| members:write       |   ✓   |         |       |        |
| api_keys:manage     |   ✓   |         |       |        |
| integrations:manage |   ✓   |         |       |        |
| tasks:read          |   ✓   |    ✓    |   ✓   |   ✓    |
| tasks:write         |   ✓   |    ✓    |  own  |        |
| templates:read      |   ✓   |    ✓    |   ✓   |   ✓    |
| templates:write     |   ✓   |    ✓    |       |        |
| work:configure      |   ✓   |    ✓    |       |        |

Tasks: "own" means sales change only tasks assigned to them (or that they created), and create
tasks only for themselves. `work:configure` covers assignment rules, business hours and the
response SLA. Notifications belong to one person: every member reads and marks their own
(routes name `organization:read`); an API key has none.

"own": sales change only leads assigned to them (and a lead's conversations), and capture
leads only for themselves — a lead they capture without an assignee is theirs. The lead use
cases enforce it through `check_lead_owner` and `capture_assignee` below (routes only name a
permission); in analytics they see the organization's totals and only their own per-member
rows (`own_leads_only`). API keys carry scopes instead
of a role: any permission in KEY_SCOPES; administration stays with people. Exporting the whole
history is for admins among people, and for keys with `audit:read` (an auditor's or a SIEM's
key): KEY_IMPLIED gives a key a permission through another of its scopes.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from uuid import UUID

from application.context import Ctx
from domain.errors import InvalidValueError
from domain.values import Role


class Permission(StrEnum):
    LEADS_READ = "leads:read"
    LEADS_WRITE = "leads:write"
    PIPELINE_READ = "pipeline:read"
    PIPELINE_WRITE = "pipeline:write"
    AUDIT_READ = "audit:read"
    AUDIT_EXPORT = "audit:export"
    PRIVACY_MANAGE = "privacy:manage"
    ANALYTICS_READ = "analytics:read"
    ORGANIZATION_READ = "organization:read"
    ORGANIZATION_WRITE = "organization:write"
    MEMBERS_READ = "members:read"
    MEMBERS_WRITE = "members:write"
    API_KEYS_MANAGE = "api_keys:manage"
    INTEGRATIONS_MANAGE = "integrations:manage"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    WORK_CONFIGURE = "work:configure"


_READ = frozenset(
    {
        Permission.LEADS_READ,
        Permission.PIPELINE_READ,
        Permission.ORGANIZATION_READ,
        Permission.MEMBERS_READ,
        Permission.TASKS_READ,
        Permission.TEMPLATES_READ,
    }
)
_ADMINISTRATION = frozenset(
    {
        Permission.ORGANIZATION_WRITE,
        Permission.MEMBERS_WRITE,
        Permission.API_KEYS_MANAGE,
        Permission.INTEGRATIONS_MANAGE,
    }
)

#: people's permissions only admins hold that keys reach through another scope
_ADMIN_ONLY = frozenset({Permission.AUDIT_EXPORT, Permission.PRIVACY_MANAGE})

MATRIX: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MANAGER: frozenset(Permission) - _ADMINISTRATION - _ADMIN_ONLY,
    Role.SALES: _READ | {Permission.LEADS_WRITE, Permission.ANALYTICS_READ, Permission.TASKS_WRITE},
    Role.VIEWER: _READ | {Permission.ANALYTICS_READ},
}

#: roles whose write permissions reach only their own leads
OWN_LEADS_ONLY = frozenset({Role.SALES})


class NotPermittedError(Exception):
    """The caller holds the permission, but not over this resource (answered 403, audited)."""

    def __init__(self, permission: Permission, reason: str) -> None:
        super().__init__(reason)
        self.permission = permission
        self.reason = reason


def own_leads_only(ctx: Ctx) -> bool:
    """Whether the caller reaches only the leads assigned to them: a person of a role in
    OWN_LEADS_ONLY. A key has scopes, not a role (its ctx.role only stands in)."""
    return ctx.actor.kind == "user" and ctx.role in OWN_LEADS_ONLY


def check_lead_owner(ctx: Ctx, assignee_id: UUID | None) -> None:
    """Refuse a change of a lead (or of its conversations) the caller may not touch."""
    if own_leads_only(ctx) and assignee_id != ctx.user_id:
        raise NotPermittedError(
            Permission.LEADS_WRITE, f"{ctx.role} members change only leads assigned to them"
        )


def capture_assignee(ctx: Ctx, assigned_to: UUID | None) -> UUID | None:
    """Who a new lead is assigned to: as asked, except that a member limited to their own
    leads captures for themselves only — and without an assignee, for themselves."""
    if not own_leads_only(ctx):
        return assigned_to
    if assigned_to not in (None, ctx.user_id):
        raise NotPermittedError(
            Permission.LEADS_WRITE, f"{ctx.role} members capture leads only for themselves"
        )
    return ctx.user_id


#: what an API key may be granted: everything but administration (and what keys hold implied)
KEY_SCOPES = frozenset(Permission) - _ADMINISTRATION - _ADMIN_ONLY

#: a permission a key holds through one of its scopes
KEY_IMPLIED = {Permission.AUDIT_EXPORT: Permission.AUDIT_READ}


def allows(role: Role, permission: Permission) -> bool:
    return permission in MATRIX[role]


def key_allows(scopes: Collection[str], permission: Permission) -> bool:
    """Whether an API key with these scopes may use a route naming `permission`."""
    return permission in scopes or KEY_IMPLIED.get(permission) in scopes


def parse_scopes(scopes: list[str]) -> list[str]:
    """Validated, sorted, de-duplicated API key scopes."""
    allowed = {str(p) for p in KEY_SCOPES}
    unknown = sorted(set(scopes) - allowed)
    if unknown:
        raise InvalidValueError(
            "scopes",
            f"unknown or not grantable: {', '.join(unknown)}; allowed: "
            + ", ".join(sorted(allowed)),
        )
    if not scopes:
        raise InvalidValueError("scopes", "at least one scope is required")
    return sorted(set(scopes))
