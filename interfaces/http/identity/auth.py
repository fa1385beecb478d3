"""Registration, login, refresh, logout, password reset and email verification."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody

from application.identity import accounts, memberships
from application.identity.incidents import record_incident
from application.ports import Mailer, UserRecord
from domain.security import PLATFORM
from domain.values import Actor
from interfaces.email import link_maker
from interfaces.http.guard import ServicesDep, bearer_token, client_ip, provide_services
from interfaces.security import InvalidTokenError, MemoryRevocations, TokenClaims
from interfaces.services import Services

log = logging.getLogger("crm.accounts")
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Password = Annotated[str, msgspec.Meta(max_length=256)]
Email = Annotated[str, msgspec.Meta(max_length=254)]


class RegisterOut(msgspec.Struct, frozen=True):
    user_id: UUID
    organization_id: UUID
    access_token: str
    position: int
    refresh_token: str = ""


class LoginIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # the bounds of registration: longer values cannot match, so refuse them before argon2
    email: Email
    password: Password
    organization_id: UUID | None = None


class LoginOut(msgspec.Struct, frozen=True):
    access_token: str
    organization_id: UUID
    organizations: list[memberships.Membership]
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


class RefreshIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Token


class RefreshOut(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    organization_id: UUID
    expires_in: int
    token_type: str = "bearer"


class LogoutIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Token | None = None


class ResetIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Either `{email}` (request a link) or `{token, new_password}` (confirm)."""

    email: Email | None = None
    token: Token | None = None
    new_password: Password | None = None


class VerifyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: Token


class Accepted(msgspec.Struct, frozen=True):
    status: str


class Verified(msgspec.Struct, frozen=True):
    email_verified_at: str


def actor_of(request: ASGIConnection[Any, Any, Any, Any], user_id: UUID | None) -> Actor:
    return Actor(
        kind="user",
        id=str(user_id) if user_id else "anonymous",
        ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:500] or None,
    )


def organizations_of(services: Services, user_id: UUID) -> list[memberships.Membership]:
    services.wait_for(["directory"], services.app.recorder.max_notification_id() or 0)
    with services.engine.connect() as conn:
        return memberships.organizations_of(conn, user_id)


def record(
    services: Services, user_id: UUID | None, kind: str, actor: Actor, /, **details: Any
) -> None:
    """An incident in each of the user's organizations (the platform's for no user)."""
    orgs = [m.id for m in organizations_of(services, user_id)] if user_id else []
    record_incident(services.app, orgs or [PLATFORM], kind, actor, **details)


def mail_quietly(job: Any, *args: Any) -> None:
    """Mail leaves after the answer: a slow or failing server neither delays nor fails it."""
    try:
        job(*args)
    except Exception:
        log.exception("could not send an account mail")


class Outbox:
    """A Mailer that keeps a request's mails until its answer has left."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self.messages: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, text: str) -> None:
        self.messages.append((to, subject, text))

    def deliver(self) -> None:
        for message in self.messages:
            mail_quietly(self.mailer.send, *message)

    def task(self) -> BackgroundTask | None:
        return BackgroundTask(self.deliver) if self.messages else None


async def require_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A valid, unrevoked access token (any organization): its claims in `state.claims`."""
    services: Services = connection.app.state.services
    token = bearer_token(connection)
    try:
        if isinstance(services.tokens.revocations, MemoryRevocations):
            connection.state.claims = services.tokens.decode(token)
        else:  # the revocation check is a network call: off the event loop
            loop = asyncio.get_running_loop()
            connection.state.claims = await loop.run_in_executor(
                None, services.tokens.decode, token
            )
    except InvalidTokenError:
        raise NotAuthorizedException(
            "invalid or expired token",
            headers={"WWW-Authenticate": 'Bearer realm="crm", error="invalid_token"'},
        ) from None


def active_user(services: Services, request: Request[Any, Any, Any]) -> UserRecord:
    claims: TokenClaims = request.state.claims
    user = services.users.by_id(claims.user_id)
    if user is None or user.deactivated_at is not None:
        raise NotAuthorizedException("this account is closed")
    return user


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
    ) -> Response[RegisterOut]:
        """Create a user, their organization (as admin) and its default pipeline; mail a link
        that verifies the email address."""
        done = accounts.register(
            services.app,
            services.users,
            services.hasher,
            data,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        refresh, family = accounts.start_session(
            services.account_tokens, done.user_id, done.organization_id
        )
        token = services.tokens.issue(done.user_id, done.organization_id, family)
        user = services.users.by_id(done.user_id)
        body = RegisterOut(done.user_id, done.organization_id, token, done.position, refresh)
        outbox = Outbox(services.mailer)
        if user is not None:
            link = link_maker(services.email)
            accounts.send_verification(services.account_tokens, outbox, user, link)
        return Response(body, status_code=201, background=outbox.task())

    @post("/login", sync_to_thread=True, status_code=200, operation_id="login")
    def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginIn], services: ServicesDep
    ) -> LoginOut:
        """Exchange email and password for an access token for one of the user's organizations
        and a refresh token. Failures are recorded as `login_failed` incidents."""
        try:
            user = accounts.authenticate(services.users, services.hasher, data.email, data.password)
        except accounts.InvalidCredentialsError as failed:
            record(
                services,
                failed.user_id,
                "login_failed",
                actor_of(request, failed.user_id),
                email=data.email.strip().lower()[:254],
            )
            raise
        orgs = organizations_of(services, user.id)
        if not orgs:
            raise NotAuthorizedException("this account belongs to no organization")
        chosen = orgs[0].id
        if data.organization_id is not None:
            if all(o.id != data.organization_id for o in orgs):
                raise NotAuthorizedException("not a member of that organization")
            chosen = data.organization_id
        refresh, family = accounts.start_session(services.account_tokens, user.id, chosen)
        access = services.tokens.issue(user.id, chosen, family)
        return LoginOut(access, chosen, orgs, refresh, services.tokens.ttl_seconds)

    @post("/refresh", sync_to_thread=True, status_code=200, operation_id="refresh")
    def refresh(
        self, request: Request[Any, Any, Any], data: JSONBody[RefreshIn], services: ServicesDep
    ) -> RefreshOut:
        """Use a refresh token once for a new access token and a new refresh token. Reusing
        a used one revokes its whole family and is recorded as `token_reuse_detected`."""
        used, successor = accounts.rotate(
            services.app,
            services.account_tokens,
            services.users,
            data.refresh_token,
            actor_of(request, None),
        )
        access = services.tokens.issue(used.user_id, used.organization_id, used.family_id)
        return RefreshOut(access, successor, used.organization_id, services.tokens.ttl_seconds)

    @post(
        "/logout",
        sync_to_thread=True,
        status_code=204,
        guards=[require_user],
        operation_id="logout",
    )
    def logout(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[LogoutIn | None] = None,
    ) -> None:
        """Revoke this access token until it expires, and its session: the refresh-token
        family and every access token issued in it (or the family of the refresh token in the
        body)."""
        claims: TokenClaims = request.state.claims
        services.tokens.revoke(claims)
        if claims.family_id is not None:
            services.account_tokens.revoke_family(claims.family_id, accounts.now())
            services.tokens.revoke_session(claims.family_id)
        if data is not None:
            accounts.end_session(services.account_tokens, claims.user_id, data.refresh_token)

    @post("/reset-password", sync_to_thread=True, status_code=202, operation_id="reset_password")
    def reset_password(
        self, request: Request[Any, Any, Any], data: JSONBody[ResetIn], services: ServicesDep
    ) -> Response[Accepted]:
        """`{email}`: 202 whether or not an account has it; a single-use link is mailed if
        one does. `{token, new_password}`: the password is changed, every session revoked."""
        if data.email is not None and data.token is None and data.new_password is None:
            job = BackgroundTask(mail_quietly, self._request_reset, services, request, data.email)
            return Response(
                Accepted("reset_link_sent_if_account_exists"), status_code=202, background=job
            )
        if data.email is not None or data.token is None or data.new_password is None:
            raise ValidationException("send either {email} or {token, new_password}")
        reset = accounts.reset_password(
            services.account_tokens, services.users, services.hasher, data.token, data.new_password
        )
        user_id = reset.user_id
        for session in reset.ended_sessions:  # a stolen access token dies with its session
            services.tokens.revoke_session(session)
        actor = actor_of(request, user_id)
        record(services, user_id, "password_reset_completed", actor, user_id=str(user_id))
        return Response(Accepted("password_changed"), status_code=200)

    @staticmethod
    def _request_reset(services: Services, request: Request[Any, Any, Any], email: str) -> None:
        user = accounts.request_password_reset(
            services.account_tokens,
            services.users,
            services.mailer,
            email,
            link_maker(services.email),
        )
        if user is not None:
            actor = actor_of(request, user.id)
            record(services, user.id, "password_reset_requested", actor, user_id=str(user.id))

    @post("/verify-email", sync_to_thread=True, status_code=200, operation_id="verify_email")
    def verify_email(self, data: JSONBody[VerifyIn], services: ServicesDep) -> Verified:
        """Confirm the email address with the token mailed at registration or email change."""
        at = accounts.verify_email(services.account_tokens, services.users, data.token)
        return Verified(at.isoformat())

    @post(
        "/verify-email/resend",
        sync_to_thread=True,
        status_code=202,
        guards=[require_user],
        operation_id="resend_verification",
    )
    def resend_verification(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> Response[Accepted]:
        """Mail a new verification link to the logged-in user's address."""
        user = active_user(services, request)
        if user.email_verified_at is not None:
            return Response(Accepted("already_verified"), status_code=202)
        outbox = Outbox(services.mailer)
        link = link_maker(services.email)
        accounts.send_verification(services.account_tokens, outbox, user, link)
        return Response(Accepted("verification_sent"), status_code=202, background=outbox.task())
