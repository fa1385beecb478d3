"""One settings object, read from the environment once and validated at start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

DEFAULT_DATABASE_URL = "sqlite:///./var/crm.db"


class SettingsError(ValueError):
    """The environment does not describe a runnable configuration."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: str
    token_ttl_seconds: int = 3600
    run_projections: bool = True
    read_wait_seconds: float = 3.0
    threads: int = 16

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def sqlite_path(self) -> str:
        return self.database_url.removeprefix("sqlite:///")


def _validate_database_url(url: str) -> str:
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg") and parts.path.strip("/"):
        return "postgresql://" + url.split("://", 1)[1]
    raise SettingsError(
        f"CRM_DATABASE_URL={url!r} is not supported: use sqlite:///path/to/file.db "
        "or postgresql://user:password@host:port/dbname"
    )


def _demo_secret(database_url: str) -> str:
    """The embedded demo keeps a random key beside its database, so logins survive restarts."""
    path = Path(database_url.removeprefix("sqlite:///")).parent / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    database_url = _validate_database_url(env.get("CRM_DATABASE_URL") or DEFAULT_DATABASE_URL)
    redis_url = env.get("CRM_REDIS_URL") or None
    if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"CRM_REDIS_URL={redis_url!r} must be a redis:// or rediss:// URL")
    secret = env.get("CRM_SECRET_KEY")
    if not secret:
        if not database_url.startswith("sqlite"):
            raise SettingsError(
                "CRM_SECRET_KEY is required outside the embedded demo: "
                "set it to a random string of at least 32 characters"
            )
        secret = _demo_secret(database_url)
    if len(secret) < 32:
        raise SettingsError("CRM_SECRET_KEY must have at least 32 characters")
    try:
        ttl = int(env.get("CRM_TOKEN_TTL_SECONDS", "3600"))
        wait = float(env.get("CRM_READ_WAIT_SECONDS", "3"))
        threads = int(env.get("CRM_THREADS", "16"))
    except ValueError as error:
        raise SettingsError(f"a numeric CRM_ setting is not a number: {error}") from None
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secret,
        token_ttl_seconds=ttl,
        run_projections=env.get("CRM_RUN_PROJECTIONS", "1") not in ("0", "false", "no"),
        read_wait_seconds=wait,
        threads=max(2, threads),
    )
