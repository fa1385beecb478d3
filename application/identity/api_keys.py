"""API keys: created, re-scoped and revoked as events on the Organization; verified by hash.

A key reads `lcrm_<organization hex>_<key hex>_<secret>`: the guard finds the organization and
the key without a lookup table, and only the SHA-256 of the whole key is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from datetime import datetime
from uuid import UUID, uuid4

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from application.context import Ctx, Written
from application.permissions import parse_scopes
from application.store import CrmApplication
from domain.errors import NotFoundError
from domain.organization import ApiKey, Organization
from projections.directory import api_key_usage

KEY_PREFIX = "lcrm"


class CreateApiKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    scopes: list[str]


class ChangeScopes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scopes: list[str]


class ApiKeyView(msgspec.Struct, frozen=True):
    id: UUID
    name: str
    scopes: list[str]
    prefix: str
    created_by: UUID
    revoked: bool
    last_used_at: datetime | None = None


class CreatedApiKey(msgspec.Struct, frozen=True):
    """`key` is shown here once; only its hash is stored."""

    id: UUID
    name: str
    scopes: list[str]
    prefix: str
    key: str
    version: int
    position: int


class InvalidApiKeyError(Exception):
    """Malformed, unknown, revoked or wrong secret: all look the same to the caller."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX + "_")


def parse_key(key: str) -> tuple[UUID, UUID]:
    """(organization id, key id) encoded in a key."""
    parts = key.split("_", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX or not parts[3]:
        raise InvalidApiKeyError("malformed API key")
    try:
        return UUID(hex=parts[1]), UUID(hex=parts[2])
    except ValueError:
        raise InvalidApiKeyError("malformed API key") from None


def verify_key(app: CrmApplication, key: str) -> tuple[UUID, ApiKey]:
    """The organization and the active key a presented key stands for."""
    org_id, key_id = parse_key(key)
    try:
        org = app.view(Organization, org_id, org_id)
    except NotFoundError:
        raise InvalidApiKeyError("unknown API key") from None
    found = org.api_keys.get(key_id)
    if found is None or not hmac.compare_digest(found.secret_hash, digest(key)):
        raise InvalidApiKeyError("unknown API key")
    if found.revoked:
        raise InvalidApiKeyError("revoked API key")
    return org_id, found


def create_api_key(app: CrmApplication, cmd: CreateApiKey, ctx: Ctx) -> CreatedApiKey:
    scopes = parse_scopes(cmd.scopes)
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    key_id = uuid4()
    secret = secrets.token_urlsafe(32)
    key = f"{KEY_PREFIX}_{org.id.hex}_{key_id.hex}_{secret}"
    created = org.create_api_key(
        key_id=key_id,
        name=cmd.name,
        scopes=scopes,
        prefix=f"{KEY_PREFIX}_…{secret[:6]}",
        secret_hash=digest(key),
        created_by=ctx.user_id,
        actor=ctx.actor,
    )
    position = app.commit(org)
    return CreatedApiKey(
        key_id, created.name, list(created.scopes), created.prefix, key, org.version, position
    )


def change_api_key_scopes(
    app: CrmApplication, key_id: UUID, cmd: ChangeScopes, ctx: Ctx
) -> Written:
    scopes = parse_scopes(cmd.scopes)
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    org.change_api_key_scopes(key_id, scopes, actor=ctx.actor)
    return Written(id=key_id, version=org.version, position=app.commit(org))


def revoke_api_key(app: CrmApplication, key_id: UUID, ctx: Ctx) -> Written:
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    org.revoke_api_key(key_id, actor=ctx.actor)
    return Written(id=key_id, version=org.version, position=app.commit(org))


def list_api_keys(app: CrmApplication, engine: Engine, ctx: Ctx) -> list[ApiKeyView]:
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    t = api_key_usage
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.key_id, t.c.last_used_at).where(
                t.c.organization_id == ctx.organization_id
            )
        ).all()
    used = {row.key_id: row.last_used_at for row in rows}
    return [
        ApiKeyView(k.id, k.name, list(k.scopes), k.prefix, k.created_by, k.revoked, used.get(k.id))
        for k in org.api_keys.values()
    ]


class UsageRecorder:
    """Records a key's last use at most once per `interval` seconds per key (per process)."""

    def __init__(self, engine: Engine, interval: float = 60.0) -> None:
        self.engine = engine
        self.interval = interval
        self._last: dict[UUID, float] = {}
        self._lock = threading.Lock()

    def due(self, key_id: UUID) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key_id)
            if last is not None and now - last < self.interval:
                return False
            self._last[key_id] = now
            return True

    def record(self, organization_id: UUID, key_id: UUID, at: datetime) -> None:
        t = api_key_usage
        where = (t.c.organization_id == organization_id, t.c.key_id == key_id)
        with self.engine.begin() as conn:
            if conn.execute(t.update().where(*where).values(last_used_at=at)).rowcount:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.insert().values(
                        organization_id=organization_id, key_id=key_id, last_used_at=at
                    )
                )
        except sa.exc.IntegrityError:  # another worker recorded it first: just as good
            pass
