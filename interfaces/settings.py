"""One settings object, read from the environment once and validated at start."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import msgspec

DEFAULT_DATABASE_URL = "sqlite:///./var/crm.db"
MIN_SECRET = 32
MIN_OPS_TOKEN = 24
T = TypeVar("T", int, float)


class SettingsError(ValueError):
    """The environment does not describe a runnable configuration."""


class RateLimit(msgspec.Struct, frozen=True):
    """At most `requests` in any sliding window of `window_seconds`."""

    requests: int
    window_seconds: float


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: str
    token_ttl_seconds: int = 3600
    run_projections: bool = True
    read_wait_seconds: float = 3.0
    threads: int = 16
    #: a lead import's largest file (bytes) and most rows: beyond them 413
    import_max_bytes: int = 100 * 1024 * 1024
    import_max_rows: int = 1_000_000
    cors_origins: tuple[str, ...] = ()
    rate_limit_auth: RateLimit | None = RateLimit(60, 60.0)
    rate_limit_org: RateLimit | None = RateLimit(1200, 60.0)
    trust_proxy: bool = False
    log_level: str = "INFO"
    #: seals provider secrets (and, later, personal-data keys); see interfaces/crypto.py
    master_key: str = ""
    #: the public base URL providers call back (webhooks, call status callbacks)
    public_url: str = "http://127.0.0.1:8000"
    #: provider base URLs may point at loopback/private addresses (local bridges, tests)
    provider_private_urls: bool = False
    #: deliver recorded sends (messages, calls) from this process's projector host; turn off
    #: where `crm outbox run` does it instead
    outbox: bool = True
    #: the operators' credential for /database/info and /metrics (unset: those routes are 404)
    ops_token: str | None = None
    #: errors go to Sentry when set (see interfaces/observability.py)
    sentry_dsn: str | None = None
    sentry_environment: str | None = None
    sentry_traces_sample_rate: float = 0.0
    #: the model asked when a key is set (the organization's own model setting wins)
    ai_model: str = "gpt-4.1-mini"
    #: seconds a model call may take (each attempt) before the offline analyzer answers
    ai_timeout_seconds: float = 10.0

    def __repr__(self) -> str:
        """Secrets masked: a settings object that reaches a log or a traceback shows none."""
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in _SECRET_FIELDS and value:
                value = "[REDACTED]"
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def sqlite_path(self) -> str:
        return self.database_url.removeprefix("sqlite:///")


_SECRET_FIELDS = frozenset({"secret_key", "master_key", "ops_token", "sentry_dsn", "database_url"})


def _validate_database_url(url: str) -> str:
    unsupported = SettingsError(
        f"CRM_DATABASE_URL={url!r} is not supported: use sqlite:///path/to/file.db "
        "or postgresql://user:password@host:port/dbname"
    )
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path.strip() or path.endswith("/"):
            raise unsupported
        if path == ":memory:" or path.startswith("file:"):
            raise SettingsError(
                f"CRM_DATABASE_URL={url!r}: an in-memory SQLite database cannot be shared by the "
                "event store and the read models: use a file, sqlite:///path/to/file.db"
            )
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise unsupported
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(f"CRM_DATABASE_URL={url!r} has an invalid port") from None
    if not parts.path.strip("/"):
        raise SettingsError(f"CRM_DATABASE_URL={url!r} names no database: add /dbname")
    return "postgresql://" + url.split("://", 1)[1]


def _demo_secret(database_url: str, name: str = "secret_key") -> str:
    """The embedded demo keeps a random key beside its database, so logins survive restarts."""
    path = Path(database_url.removeprefix("sqlite:///")).parent / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # created readable by its owner only, never visible with looser permissions
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    else:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], T], default: T, low: T) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < low:
        raise SettingsError(f"{name}={raw!r} must be a number of at least {low}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be one of 1/0, true/false, yes/no, on/off")


def _rate_limit(env: Mapping[str, str], name: str, default: RateLimit) -> RateLimit | None:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("off", "0", "none"):
        return None
    count, slash, window = raw.partition("/")
    try:
        limit = RateLimit(int(count), float(window)) if slash else None
    except ValueError:
        limit = None
    if limit is None or limit.requests < 1 or not 0 < limit.window_seconds <= 86_400:
        raise SettingsError(
            f"{name}={raw!r} must be REQUESTS/SECONDS (e.g. 20/60: at most 20 requests in any "
            "60 seconds; 0 < SECONDS ≤ 86400) or off"
        )
    return limit


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in (env.get("CRM_CORS_ORIGINS") or "").split(","))
    origins = tuple(o for o in origins if o)
    for origin in origins:
        parts = urlsplit(origin)
        if origin == "*":
            continue
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise SettingsError(
                f"CRM_CORS_ORIGINS: {origin!r} is not an origin: write scheme://host[:port] "
                "(e.g. https://app.example.com), comma-separated, or *"
            )
    return origins


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("CRM_LOG_LEVEL") or "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"CRM_LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR")
    return level


def _ops_token(env: Mapping[str, str]) -> str | None:
    token = env.get("CRM_OPS_TOKEN") or None
    if token is not None and (len(token) < MIN_OPS_TOKEN or token != token.strip()):
        # the value itself is never repeated: error messages end up in logs
        raise SettingsError(
            f"CRM_OPS_TOKEN must have at least {MIN_OPS_TOKEN} characters and no surrounding "
            "spaces: e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


def _sentry_dsn(env: Mapping[str, str]) -> str | None:
    dsn = (env.get("SENTRY_DSN") or "").strip() or None
    if dsn is None:
        return None
    parts = urlsplit(dsn)
    if parts.scheme not in ("http", "https") or not parts.username or not parts.path.strip("/"):
        # a DSN's public key is not a secret, but say nothing more of it than its shape
        raise SettingsError(
            "SENTRY_DSN must look like https://PUBLIC_KEY@HOST/PROJECT_ID (the project's DSN)"
        )
    return dsn


def _sample_rate(env: Mapping[str, str]) -> float:
    rate = _number(env, "SENTRY_TRACES_SAMPLE_RATE", float, 0.0, 0.0)
    if rate > 1:
        raise SettingsError(f"SENTRY_TRACES_SAMPLE_RATE={rate!r} must be between 0 and 1")
    return rate


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    database_url = _validate_database_url(env.get("CRM_DATABASE_URL") or DEFAULT_DATABASE_URL)
    redis_url = env.get("CRM_REDIS_URL") or None
    if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"CRM_REDIS_URL={redis_url!r} must be a redis://, rediss:// or unix:// URL"
        )
    secret = env.get("CRM_SECRET_KEY")
    if not secret:
        if not database_url.startswith("sqlite"):
            raise SettingsError(
                "CRM_SECRET_KEY is required outside the embedded demo: "
                f"set it to a random string of at least {MIN_SECRET} characters"
            )
        secret = _demo_secret(database_url)
    if len(secret) < MIN_SECRET:
        raise SettingsError(f"CRM_SECRET_KEY must have at least {MIN_SECRET} characters")
    master = env.get("CRM_MASTER_KEY") or ""
    if master and len(master) < MIN_SECRET:
        raise SettingsError(f"CRM_MASTER_KEY must have at least {MIN_SECRET} characters")
    if not master and database_url.startswith("sqlite"):
        master = _demo_secret(database_url, "master_key")
    public_url = (env.get("CRM_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
    if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        raise SettingsError(f"CRM_PUBLIC_URL={public_url!r} must be an http(s):// URL")
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secret,
        token_ttl_seconds=_number(env, "CRM_TOKEN_TTL_SECONDS", int, 3600, 1),
        run_projections=_flag(env, "CRM_RUN_PROJECTIONS", True),
        read_wait_seconds=_number(env, "CRM_READ_WAIT_SECONDS", float, 3.0, 0.0),
        threads=max(2, _number(env, "CRM_THREADS", int, 16, 1)),
        import_max_bytes=_number(env, "CRM_IMPORT_MAX_BYTES", int, 100 * 1024 * 1024, 1),
        import_max_rows=_number(env, "CRM_IMPORT_MAX_ROWS", int, 1_000_000, 1),
        cors_origins=_origins(env),
        rate_limit_auth=_rate_limit(env, "CRM_RATE_LIMIT_AUTH", RateLimit(60, 60.0)),
        rate_limit_org=_rate_limit(env, "CRM_RATE_LIMIT_ORG", RateLimit(1200, 60.0)),
        trust_proxy=_flag(env, "CRM_TRUST_PROXY", False),
        log_level=_log_level(env),
        master_key=master,
        public_url=public_url,
        provider_private_urls=_flag(env, "CRM_PROVIDER_PRIVATE_URLS", False),
        outbox=_flag(env, "CRM_OUTBOX", True),
        ops_token=_ops_token(env),
        sentry_dsn=_sentry_dsn(env),
        sentry_environment=(env.get("SENTRY_ENVIRONMENT") or "").strip() or None,
        sentry_traces_sample_rate=_sample_rate(env),
        ai_model=(env.get("CRM_AI_MODEL") or "").strip() or "gpt-4.1-mini",
        ai_timeout_seconds=_number(env, "CRM_AI_TIMEOUT_SECONDS", float, 10.0, 0.1),
    )
