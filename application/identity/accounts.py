"""Accounts: registration, login, refresh-token families, password reset, email verification,
profile, preferences and deactivation."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import available_timezones

import msgspec

from application.identity.incidents import record_incident
from application.ports import (
    AccountTokenStore,
    EmailTakenError,
    Mailer,
    OneTimeRecord,
    PasswordHasher,
    RefreshRecord,
    UserRecord,
    UserRepository,
)
from application.store import CrmApplication
from application.work.assignment import member_left
from domain import values as v
from domain.base import TenantAggregate
from domain.errors import DomainError, InvalidValueError
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor

MIN_PASSWORD = 8
MAX_PASSWORD = 256
REFRESH_TTL = timedelta(days=30)
RESET_TTL = timedelta(hours=1)
VERIFY_TTL = timedelta(days=3)
RESET, VERIFY = "reset_password", "verify_email"

#: builds the link a mail carries: (purpose, token) -> URL
LinkMaker = Callable[[str, str], str]


class Register(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: str
    password: str
    full_name: str
    organization_name: str


class Registered(msgspec.Struct, frozen=True):
    user_id: UUID
    organization_id: UUID
    position: int


class InvalidCredentialsError(DomainError):
    """Unknown email or wrong password (never says which)."""

    def __init__(self, message: str, user_id: UUID | None = None) -> None:
        super().__init__(message)
        self.user_id = user_id


class InvalidRefreshTokenError(InvalidCredentialsError):
    """Unknown, expired, revoked or reused refresh token."""


class InvalidAccountTokenError(DomainError):
    """A reset or verification token that is unknown, expired or already used."""


class EmailAlreadyRegisteredError(DomainError):
    """The email belongs to an existing account."""


def now() -> datetime:
    return datetime.now(UTC)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password(value: str, field: str = "password") -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise InvalidValueError(field, f"must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return value


def register(
    app: CrmApplication,
    users: UserRepository,
    hasher: PasswordHasher,
    cmd: Register,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Registered:
    email = v.email(cmd.email)
    if email is None:
        raise InvalidValueError("email", "is required")
    password(cmd.password)
    full_name = v.text("full_name", cmd.full_name, max_length=200)
    user_id = uuid4()
    actor = Actor(kind="user", id=str(user_id), ip=ip, user_agent=user_agent)
    org = Organization.register(name=cmd.organization_name, owner_user_id=user_id, actor=actor)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=actor)
    user = UserRecord(user_id, email, full_name, hasher.hash(cmd.password), now())
    # the unique email is claimed first; if the events cannot be saved the claim is undone
    try:
        users.add(user)
    except EmailTakenError:
        raise EmailAlreadyRegisteredError(f"{email} is already registered") from None
    try:
        position = app.commit(org, pipeline)
    except BaseException:
        users.remove(user_id)
        raise
    return Registered(user_id=user_id, organization_id=org.id, position=position)


def authenticate(
    users: UserRepository, hasher: PasswordHasher, email: str, password: str
) -> UserRecord:
    """The active user with these credentials; the error carries the user id when known."""
    user = users.by_email(email.strip().lower())
    if user is None:
        hasher.hash(password)  # same cost as a real check: no timing oracle for emails
        raise InvalidCredentialsError("invalid email or password")
    if not hasher.verify(user.password_hash, password) or user.deactivated_at is not None:
        raise InvalidCredentialsError("invalid email or password", user.id)
    return user


# --- refresh-token families -------------------------------------------------------------


def start_session(
    store: AccountTokenStore, user_id: UUID, organization_id: UUID, family_id: UUID | None = None
) -> tuple[str, UUID]:
    """A new opaque refresh token (in a new family unless one is given) and its family."""
    token = secrets.token_urlsafe(32)
    family = family_id or uuid4()
    store.add_refresh(
        RefreshRecord(digest(token), family, user_id, organization_id, now() + REFRESH_TTL)
    )
    return token, family


def rotate(
    app: CrmApplication,
    store: AccountTokenStore,
    users: UserRepository,
    token: str,
    actor: Actor,
) -> tuple[RefreshRecord, str]:
    """Use a refresh token once: its successor in the same family.

    A token used a second time means it was stolen (or its successor was): the whole family is
    revoked and the reuse recorded in the organization's audit trail.
    """
    record = store.refresh(digest(token))
    at = now()
    if record is None or record.revoked_at is not None or record.expires_at <= at:
        raise InvalidRefreshTokenError("invalid or expired refresh token")
    if record.used_at is not None or not store.use_refresh(record.token_hash, at):
        store.revoke_family(record.family_id, at)
        # A racing rotation may have inserted its successor just after the revocation's
        # snapshot and checked its own token just before the revocation committed: revoking
        # again, in a later snapshot, catches that successor (its check then came too early).
        store.revoke_family(record.family_id, at)
        record_incident(
            app,
            [record.organization_id],
            "token_reuse_detected",
            actor,
            user_id=str(record.user_id),
            family_id=str(record.family_id),
        )
        raise InvalidRefreshTokenError("refresh token already used: the session is revoked")
    user = users.by_id(record.user_id)
    if user is None or user.deactivated_at is not None:
        store.revoke_family(record.family_id, at)
        raise InvalidRefreshTokenError("invalid or expired refresh token")
    successor, _ = start_session(store, record.user_id, record.organization_id, record.family_id)
    now_used = store.refresh(record.token_hash)
    if now_used is None or now_used.revoked_at is not None:
        # a racing reuse revoked the family before the successor existed: revoke it too
        store.revoke_family(record.family_id, now())
        raise InvalidRefreshTokenError("refresh token already used: the session is revoked")
    return record, successor


def end_session(store: AccountTokenStore, user_id: UUID, refresh_token: str | None) -> None:
    """Revoke the family of a refresh token, if it is the user's."""
    if not refresh_token:
        return
    record = store.refresh(digest(refresh_token))
    if record is not None and record.user_id == user_id:
        store.revoke_family(record.family_id, now())


# --- single-use tokens: password reset and email verification ----------------------------


def _send_token(
    store: AccountTokenStore,
    mailer: Mailer,
    user: UserRecord,
    purpose: str,
    link: LinkMaker,
) -> None:
    token = secrets.token_urlsafe(32)
    ttl = RESET_TTL if purpose == RESET else VERIFY_TTL
    store.add_one_time(OneTimeRecord(digest(token), purpose, user.id, user.email, now() + ttl))
    if purpose == RESET:
        subject = "Reset your Loved CRM password"
        text = "To choose a new password, open this link within an hour:\n\n"
    else:
        subject = "Confirm your email address for Loved CRM"
        text = "To confirm this email address, open this link:\n\n"
    ignore = "\n\nIf you did not ask for this, ignore this message."
    mailer.send(user.email, subject, text + link(purpose, token) + ignore)


def request_password_reset(
    store: AccountTokenStore, users: UserRepository, mailer: Mailer, email: str, link: LinkMaker
) -> UserRecord | None:
    """Mail a reset link to an active account; the caller never learns whether one exists."""
    user = users.by_email(email.strip().lower())
    if user is None or user.deactivated_at is not None:
        return None
    _send_token(store, mailer, user, RESET, link)
    return user


def send_verification(
    store: AccountTokenStore, mailer: Mailer, user: UserRecord, link: LinkMaker
) -> None:
    _send_token(store, mailer, user, VERIFY, link)


def _consume(store: AccountTokenStore, token: str, purpose: str) -> OneTimeRecord:
    record = store.one_time(digest(token), purpose)
    at = now()
    if record is None or record.used_at is not None or record.expires_at <= at:
        raise InvalidAccountTokenError("token: invalid, expired or already used")
    if not store.use_one_time(record.token_hash, at):
        raise InvalidAccountTokenError("token: invalid, expired or already used")
    return record


class PasswordReset(msgspec.Struct, frozen=True):
    user_id: UUID
    #: the sessions (refresh families) ended: their access tokens must be refused too
    ended_sessions: list[UUID]


def reset_password(
    store: AccountTokenStore,
    users: UserRepository,
    hasher: PasswordHasher,
    token: str,
    new_password: str,
) -> PasswordReset:
    """Change the password with a reset token, consumed; every session of the user ends."""
    password(new_password, "new_password")
    record = _consume(store, token, RESET)
    users.update(record.user_id, password_hash=hasher.hash(new_password))
    ended = store.revoke_families_of(record.user_id, now())
    return PasswordReset(record.user_id, ended)


def verify_email(store: AccountTokenStore, users: UserRepository, token: str) -> datetime:
    record = _consume(store, token, VERIFY)
    user = users.by_id(record.user_id)
    if user is None or user.email != record.email or user.deactivated_at is not None:
        raise InvalidAccountTokenError("token: this address is no longer the account's")
    at = now()
    users.update(user.id, email_verified_at=at)
    return at


# --- profile, preferences, deactivation -------------------------------------------------


class ProfileChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    full_name: str | None = None
    email: str | None = None


def change_profile(
    store: AccountTokenStore,
    users: UserRepository,
    mailer: Mailer,
    user: UserRecord,
    change: ProfileChange,
    link: LinkMaker,
) -> UserRecord:
    """Rename, or change the email (which must then be verified again)."""
    values: dict[str, Any] = {}
    if change.full_name is not None:
        values["full_name"] = v.text("full_name", change.full_name, max_length=200)
    email = v.email(change.email) if change.email is not None else None
    if change.email is not None and email is None:
        raise InvalidValueError("email", "must not be empty")
    if email is not None and email != user.email:
        values |= {"email": email, "email_verified_at": None}
    if values:
        try:
            users.update(user.id, **values)
        except EmailTakenError:
            raise EmailAlreadyRegisteredError(f"{email} is already registered") from None
    changed = users.by_id(user.id) or user
    if "email" in values:
        send_verification(store, mailer, changed, link)
    return changed


PREFERENCES_MAX_KEYS = 32
PREFERENCES_MAX_BYTES = 4096
_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def preferences(value: dict[str, Any]) -> dict[str, Any]:
    """A flat object of simple values: known keys are checked, the size is bounded."""
    if len(value) > PREFERENCES_MAX_KEYS:
        raise InvalidValueError("preferences", f"at most {PREFERENCES_MAX_KEYS} keys")
    if len(msgspec.json.encode(value)) > PREFERENCES_MAX_BYTES:
        raise InvalidValueError("preferences", f"at most {PREFERENCES_MAX_BYTES} bytes")
    for key, item in value.items():
        if not _KEY.fullmatch(key):
            raise InvalidValueError("preferences", f"{key[:70]!r} is not a valid key")
        if not isinstance(item, str | int | float | bool | None) or (
            isinstance(item, float) and item != item
        ):
            raise InvalidValueError(key, "must be a string, number, boolean or null")
        if isinstance(item, str) and ("\x00" in item or len(item) > 500):
            raise InvalidValueError(key, "must be at most 500 characters, without NUL")
    if "language" in value and not (
        isinstance(value["language"], str) and _LANGUAGE.fullmatch(value["language"])
    ):
        raise InvalidValueError("language", "must be a language tag such as en or pt-BR")
    if "timezone" in value and value["timezone"] not in _timezones():
        raise InvalidValueError("timezone", "must be an IANA time zone such as Europe/Paris")
    return dict(value)


def deactivate(
    app: CrmApplication,
    users: UserRepository,
    store: AccountTokenStore,
    user_id: UUID,
    organization_ids: Iterable[UUID],
    actor: Actor,
) -> int:
    """Leave every organization (refused as a whole if one would lose its last admin), then
    close the account: no login, no refresh."""
    orgs = [app.load(Organization, org_id, org_id) for org_id in organization_ids]
    rules: list[TenantAggregate] = []
    for org in orgs:
        if org.role_of(user_id) is not None:
            org.remove_member(user_id, actor=actor)
            rules += member_left(app, org.id, user_id, actor=actor)
    position = app.commit(*orgs, *rules)
    at = now()
    users.update(user_id, deactivated_at=at)
    store.revoke_families_of(user_id, at)
    return position
