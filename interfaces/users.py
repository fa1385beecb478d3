"""Users table and its repository (the application's UserRepository port)."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from application.ports import EmailTakenError, UserRecord
from projections.base import UtcDateTime, metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


class SqlUserRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, user: UserRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    users.insert().values(
                        id=user.id,
                        email=user.email,
                        full_name=user.full_name,
                        password_hash=user.password_hash,
                        created_at=user.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            raise EmailTakenError(user.email) from None

    def remove(self, user_id: UUID) -> None:
        with self.engine.begin() as conn:
            conn.execute(users.delete().where(users.c.id == user_id))

    def by_email(self, email: str) -> UserRecord | None:
        return self._one(users.c.email == email)

    def by_id(self, user_id: UUID) -> UserRecord | None:
        return self._one(users.c.id == user_id)

    def _one(self, where: sa.ColumnElement[bool]) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(where)).mappings().first()
        return None if row is None else UserRecord(**dict(row))
