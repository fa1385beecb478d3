"""Organization use cases: settings, invitations, members' roles and removal.

Every change is an event on the Organization aggregate, so it shows in the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec

from application.context import Ctx, Written
from application.identity.accounts import (
    EmailAlreadyRegisteredError,
    InvalidCredentialsError,
    LinkMaker,
)
from application.ports import EmailTakenError, Mailer, PasswordHasher, UserRecord, UserRepository
from application.store import CrmApplication
from application.work.assignment import member_left, retried
from domain import values as v
from domain.errors import InvalidValueError, NotFoundError, VersionConflictError
from domain.organization import Organization, parse_role
from domain.values import Actor, Role

log = logging.getLogger(__name__)
INVITATION_PREFIX = "linv"
MIN_PASSWORD = 8


class OrganizationView(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    timezone: str
    version: int


class ChangeOrganization(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str | None = None
    timezone: str | None = None
    expected_version: int | None = None


class InviteMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: str
    role: str


class Invited(msgspec.Struct, frozen=True):
    """Where the invitation went. Its token went only to the invitee's mailbox (accepting it
    proves that mailbox), so the answer never holds it; only its SHA-256 hash is stored."""

    invitation_id: UUID
    email: str
    role: str
    expires_at: datetime
    #: the mailbox the link to accept was sent to
    sent_to: str
    #: false when the mail could not leave: the invitation stands, unusable; invite again
    mail_sent: bool
    version: int
    position: int


class AcceptInvitation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: str
    full_name: str | None = None
    password: str | None = None


class Accepted(msgspec.Struct, frozen=True):
    organization_id: UUID
    user_id: UUID
    role: str
    position: int


class NotAuthenticatedError(InvalidCredentialsError):
    """An existing account accepts an invitation only with its own token or password."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def get_organization(app: CrmApplication, ctx: Ctx) -> OrganizationView:
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    return OrganizationView(org.id, org.name, org.timezone, org.version)


def change_organization(app: CrmApplication, cmd: ChangeOrganization, ctx: Ctx) -> Written:
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    if cmd.expected_version is not None and org.version != cmd.expected_version:
        raise VersionConflictError(org.id, org.version, cmd.expected_version)
    if cmd.name is not None:
        org.rename(cmd.name, actor=ctx.actor)
    if cmd.timezone is not None:
        org.change_timezone(cmd.timezone, actor=ctx.actor)
    return Written(id=org.id, version=org.version, position=app.commit(org))


def invite_member(
    app: CrmApplication,
    mailer: Mailer,
    link: LinkMaker,
    cmd: InviteMember,
    ctx: Ctx,
    *,
    now: datetime | None = None,
) -> Invited:
    """Record the invitation, then mail its token to the invitee, and to no one else."""
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    invitation_id = uuid4()
    token = f"{INVITATION_PREFIX}_{org.id.hex}_{invitation_id.hex}_{secrets.token_urlsafe(32)}"
    invitation = org.invite(
        invitation_id=invitation_id,
        email=cmd.email,
        role=parse_role(cmd.role),
        token_hash=sha256(token),
        now=now or datetime.now(UTC),
        actor=ctx.actor,
    )
    position = app.commit(org)
    name = " ".join(org.name.split())  # a header holds one line
    text = (
        f"You are invited to join {name} on Loved CRM as {invitation.role}.\n\n"
        f"To accept, open this link (valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n"
        f"{link('accept_invitation', token)}\n\nIf you did not expect this, ignore this message."
    )
    try:
        mailer.send(invitation.email, f"Invitation to {name} on Loved CRM", text)
        mail_sent = True
    except Exception:  # the invitation is recorded whatever happens to its mail
        log.exception("could not mail invitation %s", invitation_id)
        mail_sent = False
    return Invited(
        invitation_id,
        invitation.email,
        str(invitation.role),
        invitation.expires_at,
        invitation.email,
        mail_sent,
        org.version,
        position,
    )


def _parse_invitation_token(token: str) -> tuple[UUID, UUID]:
    parts = token.strip().split("_", 3)
    if len(parts) != 4 or parts[0] != INVITATION_PREFIX:
        raise InvalidValueError("token", "is not an invitation token")
    try:
        return UUID(hex=parts[1]), UUID(hex=parts[2])
    except ValueError:
        raise InvalidValueError("token", "is not an invitation token") from None


def accept_invitation(
    app: CrmApplication,
    users: UserRepository,
    hasher: PasswordHasher,
    cmd: AcceptInvitation,
    *,
    authenticated_user_id: UUID | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> Accepted:
    """A new person gets an account; an existing one proves who they are (token or password).

    The token was mailed to the invited address only: holding it proves that mailbox, so the
    account's email is verified.
    """
    org_id, invitation_id = _parse_invitation_token(cmd.token)
    try:
        org = app.load(Organization, org_id, org_id)
        invitation = org.invitation(invitation_id)
    except NotFoundError:
        raise NotFoundError("invitation", invitation_id) from None
    if not hmac.compare_digest(invitation.token_hash, sha256(cmd.token.strip())):
        raise NotFoundError("invitation", invitation_id)
    at = now or datetime.now(UTC)
    user = users.by_email(invitation.email)
    created: UserRecord | None = None
    if user is None:
        created = _new_user(hasher, invitation.email, cmd, verified_at=at)
        user_id = created.id
    else:
        _check_identity(hasher, user, cmd, authenticated_user_id)
        user_id = user.id
    actor = Actor(kind="user", id=str(user_id), ip=ip, user_agent=user_agent)
    org.accept_invitation(invitation_id, user_id, now=at, actor=actor)
    if created is not None:
        try:
            users.add(created)
        except EmailTakenError:
            raise EmailAlreadyRegisteredError(
                f"{invitation.email} was registered meanwhile"
            ) from None
    try:
        position = app.commit(org)
    except BaseException:
        if created is not None:
            users.remove(created.id)
        raise
    if user is not None and user.email_verified_at is None:
        users.update(user.id, email_verified_at=at)
    return Accepted(org.id, user_id, str(invitation.role), position)


def _new_user(
    hasher: PasswordHasher, email: str, cmd: AcceptInvitation, *, verified_at: datetime
) -> UserRecord:
    if cmd.full_name is None:
        raise InvalidValueError("full_name", "is required for a new account")
    if cmd.password is None or not MIN_PASSWORD <= len(cmd.password) <= 256:
        raise InvalidValueError("password", f"must have {MIN_PASSWORD} to 256 characters")
    full_name = v.text("full_name", cmd.full_name, max_length=200)
    return UserRecord(
        uuid4(),
        email,
        full_name,
        hasher.hash(cmd.password),
        verified_at,
        email_verified_at=verified_at,
    )


def _check_identity(
    hasher: PasswordHasher,
    user: UserRecord,
    cmd: AcceptInvitation,
    authenticated_user_id: UUID | None,
) -> None:
    if user.deactivated_at is not None:
        raise NotAuthenticatedError("this account is deactivated")
    if authenticated_user_id is not None and authenticated_user_id == user.id:
        return
    if cmd.password is not None and hasher.verify(user.password_hash, cmd.password[:256]):
        return
    raise NotAuthenticatedError(
        "the invited email has an account: sign in as it, or give its password"
    )


def change_member_role(app: CrmApplication, user_id: UUID, role: str, ctx: Ctx) -> Written:
    wanted = parse_role(role)
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    org.change_role(user_id, wanted, actor=ctx.actor)
    return Written(id=org.id, version=org.version, position=app.commit(org))


def remove_member(app: CrmApplication, user_id: UUID, ctx: Ctx) -> Written:
    def attempt() -> Written:
        org = app.load(Organization, ctx.organization_id, ctx.organization_id)
        org.remove_member(user_id, actor=ctx.actor)
        # they leave every assignment rule in the same commit: no lead is routed to them after
        rules = member_left(app, ctx.organization_id, user_id, actor=ctx.actor)
        return Written(id=org.id, version=org.version, position=app.commit(org, *rules))

    return retried(ctx.organization_id, attempt)


def role_in(app: CrmApplication, organization_id: UUID, user_id: UUID) -> Role | None:
    """The user's role in an organization; None if not a member or no such organization."""
    try:
        org = app.view(Organization, organization_id, organization_id)
    except NotFoundError:
        return None
    return org.role_of(user_id)


def organization_exists(app: CrmApplication, organization_id: UUID) -> bool:
    try:
        app.view(Organization, organization_id, organization_id)
    except NotFoundError:
        return False
    return True
