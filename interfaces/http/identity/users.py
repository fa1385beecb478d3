"""The logged-in user's own account: profile, preferences, deactivation."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.di import Provide
from litestar.params import JSONBody
from litestar.response import Response

from application.identity import accounts
from application.ports import UserRecord
from interfaces.email import link_maker
from interfaces.http.guard import ServicesDep, provide_services
from interfaces.http.identity.auth import (
    Outbox,
    active_user,
    actor_of,
    organizations_of,
    require_user,
)
from interfaces.security import TokenClaims


class Me(msgspec.Struct, frozen=True):
    id: UUID
    email: str
    full_name: str
    email_verified: bool
    email_verified_at: datetime | None
    created_at: datetime


def me(user: UserRecord) -> Me:
    verified = user.email_verified_at
    return Me(user.id, user.email, user.full_name, verified is not None, verified, user.created_at)


class UserController(Controller):
    path = "/users"
    dependencies = {"services": Provide(provide_services)}  # noqa: RUF012
    guards = [require_user]  # noqa: RUF012
    tags = ["users"]  # noqa: RUF012

    @get("/me", sync_to_thread=True, operation_id="get_me")
    def get_me(self, request: Request[Any, Any, Any], services: ServicesDep) -> Me:
        """The logged-in user's profile."""
        return me(active_user(services, request))

    @put("/me", sync_to_thread=True, operation_id="change_me")
    def change_me(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[accounts.ProfileChange],
        services: ServicesDep,
    ) -> Response[Me]:
        """Change the full name or the email; a new email must be verified again."""
        user = active_user(services, request)
        outbox = Outbox(services.mailer)
        link = link_maker(services.email)
        changed = accounts.change_profile(
            services.account_tokens, services.users, outbox, user, data, link
        )
        return Response(me(changed), background=outbox.task())

    @delete("/me", sync_to_thread=True, operation_id="deactivate_me")
    def deactivate_me(self, request: Request[Any, Any, Any], services: ServicesDep) -> None:
        """Close the account: it leaves every organization and can no longer log in. Refused
        (409) while it is the last admin of an organization."""
        user = active_user(services, request)
        claims: TokenClaims = request.state.claims
        orgs = [m.id for m in organizations_of(services, user.id)]
        accounts.deactivate(
            services.app,
            services.users,
            services.account_tokens,
            user.id,
            orgs,
            actor_of(request, user.id),
        )
        services.tokens.revoke(claims)

    @get("/preferences", sync_to_thread=True, operation_id="get_preferences")
    def get_preferences(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> dict[str, Any]:
        """The user's preferences: a flat object (language, timezone, notifications…)."""
        return services.users.preferences(active_user(services, request).id)

    @put("/preferences", sync_to_thread=True, operation_id="put_preferences")
    def put_preferences(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[dict[str, Any]],
        services: ServicesDep,
    ) -> dict[str, Any]:
        """Replace the preferences (at most 32 keys and 4 KB; simple values only)."""
        user = active_user(services, request)
        cleaned = accounts.preferences(data)
        services.users.update(user.id, preferences=cleaned)
        return cleaned
