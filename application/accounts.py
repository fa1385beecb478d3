"""Registration and login: a user row plus the Organization and its default Pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec

from application.ports import (
    EmailTakenError,
    PasswordHasher,
    UserRecord,
    UserRepository,
)
from application.store import CrmApplication
from domain import values as v
from domain.errors import DomainError, InvalidValueError
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor

MIN_PASSWORD = 8


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


class EmailAlreadyRegisteredError(DomainError):
    """The email belongs to an existing account."""


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
    if not MIN_PASSWORD <= len(cmd.password) <= 256:
        raise InvalidValueError("password", f"must have {MIN_PASSWORD} to 256 characters")
    full_name = v.text("full_name", cmd.full_name, max_length=200)
    user_id = uuid4()
    actor = Actor(kind="user", id=str(user_id), ip=ip, user_agent=user_agent)
    org = Organization.register(name=cmd.organization_name, owner_user_id=user_id, actor=actor)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=actor)
    user = UserRecord(user_id, email, full_name, hasher.hash(cmd.password), datetime.now(UTC))
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
    user = users.by_email(email.strip().lower())
    if user is None:
        hasher.hash(password)  # same cost as a real check: no timing oracle for emails
        raise InvalidCredentialsError("invalid email or password")
    if not hasher.verify(user.password_hash, password):
        raise InvalidCredentialsError("invalid email or password")
    return user
