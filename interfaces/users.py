"""Users, refresh-token families and single-use account tokens: the SQL adapters of the
application's UserRepository and AccountTokenStore ports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from application.ports import EmailTakenError, OneTimeRecord, RefreshRecord, UserRecord
from projections.base import JSONType, UtcDateTime, metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("email_verified_at", UtcDateTime, nullable=True),
    sa.Column("deactivated_at", UtcDateTime, nullable=True),
    sa.Column("preferences", JSONType, nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family_id", sa.Uuid, nullable=False, index=True),
    sa.Column("user_id", sa.Uuid, nullable=False, index=True),
    sa.Column("organization_id", sa.Uuid, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("purpose", sa.String(20), nullable=False),
    sa.Column("user_id", sa.Uuid, nullable=False, index=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
)

_USER_COLUMNS = [c for c in users.c if c.name != "preferences"]


class SqlUserRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, user: UserRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(users.insert().values(**msgspec_fields(user)))
        except sa.exc.IntegrityError:
            raise EmailTakenError(user.email) from None

    def remove(self, user_id: UUID) -> None:
        with self.engine.begin() as conn:
            conn.execute(users.delete().where(users.c.id == user_id))

    def update(self, user_id: UUID, **values: Any) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(users.update().where(users.c.id == user_id).values(**values))
        except sa.exc.IntegrityError:
            raise EmailTakenError(str(values.get("email"))) from None

    def preferences(self, user_id: UUID) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(users.c.preferences).where(users.c.id == user_id)
            ).scalar()
        return dict(found or {})

    def by_email(self, email: str) -> UserRecord | None:
        return self._one(users.c.email == email)

    def by_id(self, user_id: UUID) -> UserRecord | None:
        return self._one(users.c.id == user_id)

    def _one(self, where: sa.ColumnElement[bool]) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_USER_COLUMNS).where(where)).mappings().first()
        return None if row is None else UserRecord(**dict(row))


def msgspec_fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__struct_fields__}


class SqlAccountTokens:
    """Only SHA-256 digests of the tokens are stored: a leaked table opens no session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_refresh(self, record: RefreshRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                refresh_tokens.insert().values(
                    **msgspec_fields(record), created_at=datetime.now(UTC)
                )
            )

    def refresh(self, token_hash: str) -> RefreshRecord | None:
        t = refresh_tokens.c
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(
                        t.token_hash,
                        t.family_id,
                        t.user_id,
                        t.organization_id,
                        t.expires_at,
                        t.used_at,
                        t.revoked_at,
                    ).where(t.token_hash == token_hash)
                )
                .mappings()
                .first()
            )
        return None if row is None else RefreshRecord(**dict(row))

    def use_refresh(self, token_hash: str, at: datetime) -> bool:
        t = refresh_tokens.c
        return self._claim(
            refresh_tokens.update()
            .where(t.token_hash == token_hash, t.used_at.is_(None), t.revoked_at.is_(None))
            .values(used_at=at)
        )

    def revoke_family(self, family_id: UUID, at: datetime) -> None:
        self._revoke(refresh_tokens.c.family_id == family_id, at)

    def revoke_families_of(self, user_id: UUID, at: datetime) -> list[UUID]:
        return self._revoke(refresh_tokens.c.user_id == user_id, at)

    def _revoke(self, which: sa.ColumnElement[bool], at: datetime) -> list[UUID]:
        """Revoke every still-valid refresh token matching `which`; answers their families."""
        t = refresh_tokens.c
        live = sa.and_(which, t.revoked_at.is_(None))
        with self.engine.begin() as conn:
            families = conn.execute(sa.select(t.family_id).where(live).distinct()).scalars()
            found = sorted(set(families), key=str)
            conn.execute(refresh_tokens.update().where(live).values(revoked_at=at))
        return found

    def add_one_time(self, record: OneTimeRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                account_tokens.insert().values(
                    **msgspec_fields(record), created_at=datetime.now(UTC)
                )
            )

    def one_time(self, token_hash: str, purpose: str) -> OneTimeRecord | None:
        t = account_tokens.c
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(
                        t.token_hash, t.purpose, t.user_id, t.email, t.expires_at, t.used_at
                    ).where(t.token_hash == token_hash, t.purpose == purpose)
                )
                .mappings()
                .first()
            )
        return None if row is None else OneTimeRecord(**dict(row))

    def use_one_time(self, token_hash: str, at: datetime) -> bool:
        t = account_tokens.c
        return self._claim(
            account_tokens.update()
            .where(t.token_hash == token_hash, t.used_at.is_(None))
            .values(used_at=at)
        )

    def _claim(self, statement: sa.Update) -> bool:
        """A compare-and-set: exactly one of two racing callers sees True."""
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1
