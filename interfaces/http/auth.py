"""Registration and login."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, post
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from litestar.params import JSONBody

from application import accounts, queries
from interfaces.http.guard import ServicesDep, client_ip, provide_services


class RegisterOut(msgspec.Struct, frozen=True):
    user_id: UUID
    organization_id: UUID
    access_token: str
    position: int


class LoginIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # the bounds of registration: longer values cannot match, so refuse them before argon2
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]
    organization_id: UUID | None = None


class LoginOut(msgspec.Struct, frozen=True):
    access_token: str
    organization_id: UUID
    organizations: list[queries.Membership]
    token_type: str = "bearer"


class AuthController(Controller):
    path = "/auth"
    dependencies = {"services": Provide(provide_services)}  # noqa: RUF012
    tags = ["auth"]  # noqa: RUF012

    @post("/register", sync_to_thread=True, operation_id="register")
    def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[accounts.Register],
        services: ServicesDep,
    ) -> RegisterOut:
        """Create a user, their organization (as admin) and its default pipeline."""
        done = accounts.register(
            services.app,
            services.users,
            services.hasher,
            data,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        token = services.tokens.issue(done.user_id, done.organization_id)
        return RegisterOut(done.user_id, done.organization_id, token, done.position)

    @post("/login", sync_to_thread=True, status_code=200, operation_id="login")
    def login(self, data: JSONBody[LoginIn], services: ServicesDep) -> LoginOut:
        """Exchange email and password for an access token for one of the user's organizations."""
        user = accounts.authenticate(services.users, services.hasher, data.email, data.password)
        services.wait_for(["directory"], services.app.recorder.max_notification_id() or 0)
        with services.engine.connect() as conn:
            orgs = queries.organizations_of(conn, user.id)
        if not orgs:
            raise NotAuthorizedException("this account belongs to no organization")
        chosen = orgs[0].id
        if data.organization_id is not None:
            if all(o.id != data.organization_id for o in orgs):
                raise NotAuthorizedException("not a member of that organization")
            chosen = data.organization_id
        return LoginOut(services.tokens.issue(user.id, chosen), chosen, orgs)
