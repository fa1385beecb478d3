"""Organization routes: settings, members, invitations, and choosing an organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody

from application.context import Written
from application.identity import organizations as cmds
from application.permissions import Permission
from interfaces.email import link_maker
from interfaces.http.common import answer, read_after
from interfaces.http.guard import (
    CtxDep,
    ServicesDep,
    client_ip,
    optional_user,
    provide_ctx,
    provide_services,
    tenant_guard,
    user_guard,
)
from interfaces.users import users
from projections.directory import rm_members


class MemberView(msgspec.Struct, frozen=True):
    user_id: UUID
    full_name: str
    email: str
    role: str
    joined_at: datetime


class RoleBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str


class SwitchBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    organization_id: UUID


class TokenOut(msgspec.Struct, frozen=True):
    access_token: str
    organization_id: UUID
    user_id: UUID
    role: str
    token_type: str = "bearer"


class AcceptedOut(msgspec.Struct, frozen=True):
    access_token: str
    organization_id: UUID
    user_id: UUID
    role: str
    position: int
    token_type: str = "bearer"


def members_of(conn: sa.Connection, org: UUID) -> list[MemberView]:
    rows = conn.execute(
        sa.select(
            rm_members.c.user_id,
            users.c.full_name,
            users.c.email,
            rm_members.c.role,
            rm_members.c.joined_at,
        )
        .join(users, users.c.id == rm_members.c.user_id)
        .where(rm_members.c.organization_id == org)
        .order_by(rm_members.c.joined_at, rm_members.c.user_id)
    ).all()
    return [MemberView(*row) for row in rows]


def _opt(permission: Permission) -> dict[str, Any]:
    return {"permission": permission}


class OrganizationController(Controller):
    path = "/organizations"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["organizations"]  # noqa: RUF012

    @get(
        "/current",
        opt=_opt(Permission.ORGANIZATION_READ),
        sync_to_thread=True,
        operation_id="getOrganization",
    )
    def current(self, ctx: CtxDep, services: ServicesDep) -> cmds.OrganizationView:
        """The caller's organization: name and settings."""
        return cmds.get_organization(services.app, ctx)

    @put(
        "/current",
        opt=_opt(Permission.ORGANIZATION_WRITE),
        sync_to_thread=True,
        operation_id="changeOrganization",
    )
    def change(
        self, data: JSONBody[cmds.ChangeOrganization], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Rename the organization or change its time zone (an IANA name)."""
        return cmds.change_organization(services.app, data, ctx)

    @get(
        "/current/members",
        opt=_opt(Permission.MEMBERS_READ),
        sync_to_thread=True,
        operation_id="listMembers",
    )
    def members(
        self, request: Request[Any, Any, Any], ctx: CtxDep, services: ServicesDep
    ) -> Response[list[MemberView]]:
        """Members with their names, emails and roles, in the order they joined."""
        headers = read_after(services, request, "directory")
        with services.reading(ctx.organization_id) as conn:
            return answer(members_of(conn, ctx.organization_id), headers)

    @post(
        "/invite-member",
        opt=_opt(Permission.MEMBERS_WRITE),
        sync_to_thread=True,
        operation_id="inviteMember",
    )
    def invite(
        self, data: JSONBody[cmds.InviteMember], ctx: CtxDep, services: ServicesDep
    ) -> cmds.Invited:
        """Invite someone by email with a role. The link to accept (7 days, single use) is
        mailed to them only: the answer says where it went (`sent_to`, `mail_sent`) and holds
        no token, so accepting proves the invitee's mailbox."""
        link = link_maker(services.email)
        return cmds.invite_member(services.app, services.mailer, link, data, ctx)

    @put(
        "/members/{user_id:uuid}/role",
        opt=_opt(Permission.MEMBERS_WRITE),
        sync_to_thread=True,
        operation_id="changeMemberRole",
    )
    def change_role(
        self, user_id: FromPath[UUID], data: JSONBody[RoleBody], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Give a member another role; the last admin cannot be demoted (409)."""
        return cmds.change_member_role(services.app, user_id, data.role, ctx)

    @delete(
        "/members/{user_id:uuid}",
        opt=_opt(Permission.MEMBERS_WRITE),
        sync_to_thread=True,
        status_code=200,
        operation_id="removeMember",
    )
    def remove(self, user_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Remove a member; the last admin cannot be removed (409)."""
        return cmds.remove_member(services.app, user_id, ctx)


class OrganizationAccessController(Controller):
    """Routes of a person rather than of one organization: joining one, choosing one."""

    path = "/organizations"
    dependencies = {"services": Provide(provide_services)}  # noqa: RUF012
    tags = ["organizations"]  # noqa: RUF012

    @post(
        "/invitations/accept",
        sync_to_thread=True,
        status_code=200,
        operation_id="acceptInvitation",
        dependencies={"signed_in": Provide(optional_user)},
    )
    def accept(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[cmds.AcceptInvitation],
        services: ServicesDep,
        signed_in: NamedDependency[UUID | None],
    ) -> AcceptedOut:
        """Join with an invitation: a new person gives full_name and password; someone who
        has an account signs in (bearer token of any organization) or gives their password."""
        done = cmds.accept_invitation(
            services.app,
            services.users,
            services.hasher,
            data,
            authenticated_user_id=signed_in,
            ip=client_ip(request),
            user_agent=(request.headers.get("user-agent") or "")[:500] or None,
        )
        token = services.tokens.issue(done.user_id, done.organization_id)
        return AcceptedOut(token, done.organization_id, done.user_id, done.role, done.position)

    @post(
        "/switch",
        guards=[user_guard],
        sync_to_thread=True,
        status_code=200,
        operation_id="switchOrganization",
    )
    def switch(
        self, request: Request[Any, Any, Any], data: JSONBody[SwitchBody], services: ServicesDep
    ) -> TokenOut:
        """A new access token for another organization the signed-in user is a member of."""
        claims = request.state.claims
        role = cmds.role_in(services.app, data.organization_id, claims.user_id)
        if role is None:
            raise PermissionDeniedException("not a member of that organization")
        token = services.tokens.issue(claims.user_id, data.organization_id)
        return TokenOut(token, data.organization_id, claims.user_id, str(role))
