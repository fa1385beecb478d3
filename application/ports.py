"""Ports: what the application needs from the outside world, as Protocols."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
from sqlalchemy import Connection


class UserRecord(msgspec.Struct, frozen=True):
    id: UUID
    email: str
    full_name: str
    password_hash: str
    created_at: datetime
    email_verified_at: datetime | None = None
    deactivated_at: datetime | None = None


class EmailTakenError(Exception):
    """A user with this email already exists."""


class UserRepository(Protocol):
    def add(self, user: UserRecord) -> None:
        """Insert a user; raise EmailTakenError if the email is taken."""

    def remove(self, user_id: UUID) -> None:
        """Delete a user that was just added (undo of a failed registration)."""

    def by_email(self, email: str) -> UserRecord | None: ...

    def by_id(self, user_id: UUID) -> UserRecord | None: ...

    def update(self, user_id: UUID, **values: Any) -> None:
        """Change columns of a user; raise EmailTakenError if a new email is taken."""

    def preferences(self, user_id: UUID) -> dict[str, Any]: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class RefreshRecord(msgspec.Struct, frozen=True):
    token_hash: str
    family_id: UUID
    user_id: UUID
    organization_id: UUID
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class OneTimeRecord(msgspec.Struct, frozen=True):
    """A password-reset or email-verification token, stored hashed."""

    token_hash: str
    purpose: str
    user_id: UUID
    email: str
    expires_at: datetime
    used_at: datetime | None = None


class AccountTokenStore(Protocol):
    """Refresh-token families and single-use account tokens (only their hashes are kept)."""

    def add_refresh(self, record: RefreshRecord) -> None: ...

    def refresh(self, token_hash: str) -> RefreshRecord | None: ...

    def use_refresh(self, token_hash: str, at: datetime) -> bool:
        """Mark an unused refresh token used; False if it already was (a reuse)."""

    def revoke_family(self, family_id: UUID, at: datetime) -> None: ...

    def revoke_families_of(self, user_id: UUID, at: datetime) -> list[UUID]:
        """Revoke every live refresh family of the user; answers those it revoked."""
        ...

    def add_one_time(self, record: OneTimeRecord) -> None: ...

    def one_time(self, token_hash: str, purpose: str) -> OneTimeRecord | None: ...

    def use_one_time(self, token_hash: str, at: datetime) -> bool:
        """Consume a single-use token; False if it already was."""


class Mailer(Protocol):
    def send(self, to: str, subject: str, text: str) -> None: ...


class PersonalDataCipher(Protocol):
    """Seals a person's values with that person's own data key (see `domain.privacy`).

    Keys are made on first use and kept wrapped by a master key (a KMS can do the wrapping);
    `erase` destroys one for good, after which `open` answers None for everything it sealed.
    """

    def seal(self, organization_id: UUID, subject_id: UUID, plaintext: bytes) -> str:
        """Encrypt; raises `domain.privacy.PersonalDataErasedError` for an erased subject."""
        ...

    def open(self, organization_id: UUID, subject_id: UUID, sealed: str) -> bytes | None:
        """Decrypt, or None when the subject's key was destroyed."""
        ...

    def erase(self, organization_id: UUID, subject_id: UUID) -> bool:
        """Destroy the subject's key; False if there was none left to destroy."""
        ...

    def is_erased(self, organization_id: UUID, subject_id: UUID) -> bool: ...

    def prefetch(self, subjects: Iterable[tuple[UUID, UUID]]) -> None:
        """Make the keys of many (organization, subject) pairs ready in one round trip."""
        ...

    def prepare(
        self,
        subjects: Collection[tuple[UUID, UUID]],
        *,
        fresh: Collection[tuple[UUID, UUID]] = (),
    ) -> list[tuple[UUID, UUID, bytes]]:
        """Like `prefetch`, and make the keys that do not exist yet: returned wrapped, as
        (organization, subject, wrapped key), for the event store to write with the events."""
        ...

    def settle(self, subjects: Iterable[tuple[UUID, UUID]], *, stored: bool) -> None:
        """Whether the commit that wrote `prepare`'s new keys succeeded."""
        ...


class ReadModels(Protocol):
    """The projections' tables, for the use cases that read them (implemented in interfaces).

    Read models lag the log: a use case that must see its organization's latest writes waits
    for the projectors first (`wait_for`, read-your-writes).
    """

    def reading(self, organization_id: UUID) -> AbstractContextManager[Connection]:
        """A read-only transaction that sees only this organization's rows (row-level security
        on PostgreSQL); queries still filter by the organization themselves."""
        ...

    def internal(self, organization_id: UUID) -> AbstractContextManager[Connection]:
        """A read-only transaction outside row-level security, for the operational tables no
        tenant role reads (the outbox) and the platform's own lookups across organizations
        (who holds an id asked for by another); tenant queries on it filter by the organization."""
        ...

    def wait_for(self, names: Iterable[str], position: int, timeout: float | None = None) -> bool:
        """Block until the named projectors processed `position`; False on time-out."""
        ...
