"""Ports: what the application needs from the outside world, as Protocols."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec


class UserRecord(msgspec.Struct, frozen=True):
    id: UUID
    email: str
    full_name: str
    password_hash: str
    created_at: datetime


class EmailTakenError(Exception):
    """A user with this email already exists."""


class UserRepository(Protocol):
    def add(self, user: UserRecord) -> None:
        """Insert a user; raise EmailTakenError if the email is taken."""

    def remove(self, user_id: UUID) -> None:
        """Delete a user that was just added (undo of a failed registration)."""

    def by_email(self, email: str) -> UserRecord | None: ...

    def by_id(self, user_id: UUID) -> UserRecord | None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...
