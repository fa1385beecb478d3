"""Configuration from the environment: defaults, accepted URLs, and clear refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from interfaces.cli import main
from interfaces.settings import DEFAULT_DATABASE_URL, SettingsError, load_settings

KEY = "k" * 32
PG = "postgresql://postgres@127.0.0.1:5432/crm"


def sqlite_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "CRM_SECRET_KEY": KEY, **extra}


def test_the_default_database_is_the_sqlite_file_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./var/crm.db"
    assert not settings.is_postgres
    assert settings.redis_url is None
    assert settings.run_projections
    assert (tmp_path / "var" / "secret_key").exists()


@pytest.mark.parametrize(
    "url",
    [PG, "postgres://postgres@127.0.0.1:5432/crm", "postgresql+psycopg://postgres@127.0.0.1/crm"],
)
def test_postgresql_urls_are_accepted_and_normalised(url: str) -> None:
    settings = load_settings({"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": KEY})
    assert settings.is_postgres
    assert settings.database_url.startswith("postgresql://postgres@127.0.0.1")
    assert settings.database_url.endswith("/crm")


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/crm",
        "garbage",
        "sqlite:///",
        "sqlite://relative.db",
        "sqlite:///:memory:",
        "postgresql://postgres@127.0.0.1:5432/",
        "postgresql://postgres@127.0.0.1:notaport/crm",
        "http://example.com/crm",
    ],
)
def test_unsupported_database_urls_are_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match="CRM_DATABASE_URL"):
        load_settings({"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": KEY})


def test_postgresql_requires_a_secret_key() -> None:
    with pytest.raises(SettingsError, match=r"CRM_SECRET_KEY is required.*32 characters"):
        load_settings({"CRM_DATABASE_URL": PG})


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_secret_key_shorter_than_32_characters_is_refused(backend: str, tmp_path: Path) -> None:
    url = PG if backend == "postgres" else f"sqlite:///{tmp_path}/crm.db"
    with pytest.raises(SettingsError, match="CRM_SECRET_KEY must have at least 32"):
        load_settings({"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": "k" * 31})
    assert load_settings({"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": KEY}).secret_key == KEY


def test_sqlite_without_a_key_creates_a_private_one_beside_the_database_and_reuses_it(
    tmp_path: Path,
) -> None:
    env = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/data/crm.db"}
    first = load_settings(env)
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.read_text().strip() == first.secret_key
    assert len(first.secret_key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_settings(env).secret_key == first.secret_key
    other = load_settings({"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/elsewhere/crm.db"})
    assert other.secret_key != first.secret_key


def test_a_loose_demo_key_file_is_made_private_again(tmp_path: Path) -> None:
    env = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db"}
    key = load_settings(env).secret_key
    (tmp_path / "secret_key").chmod(0o644)
    assert load_settings(env).secret_key == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380", "unix:///run/redis.sock"]
)
def test_redis_urls_are_accepted(url: str, tmp_path: Path) -> None:
    assert load_settings(sqlite_env(tmp_path, CRM_REDIS_URL=url)).redis_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "memcached://x"])
def test_other_redis_urls_are_refused_naming_the_variable(url: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CRM_REDIS_URL"):
        load_settings(sqlite_env(tmp_path, CRM_REDIS_URL=url))


def test_numeric_settings_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        sqlite_env(
            tmp_path,
            CRM_TOKEN_TTL_SECONDS="60",
            CRM_READ_WAIT_SECONDS="0.5",
            CRM_THREADS="4",
            CRM_RUN_PROJECTIONS="false",
        )
    )
    assert (settings.token_ttl_seconds, settings.read_wait_seconds, settings.threads) == (
        60,
        0.5,
        4,
    )
    assert settings.run_projections is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRM_TOKEN_TTL_SECONDS", "soon"),
        ("CRM_TOKEN_TTL_SECONDS", "0"),
        ("CRM_TOKEN_TTL_SECONDS", "1.5"),
        ("CRM_READ_WAIT_SECONDS", "-1"),
        ("CRM_READ_WAIT_SECONDS", "nan"),
        ("CRM_READ_WAIT_SECONDS", "inf"),
        ("CRM_THREADS", "many"),
        ("CRM_THREADS", "0"),
        ("CRM_RUN_PROJECTIONS", "maybe"),
    ],
)
def test_invalid_numeric_and_flag_settings_are_refused_naming_the_variable(
    name: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(sqlite_env(tmp_path, **{name: value}))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRM_DATABASE_URL": "mysql://root@localhost/crm"}, "CRM_DATABASE_URL='mysql://"),
        ({"CRM_DATABASE_URL": PG, "CRM_SECRET_KEY": ""}, "CRM_SECRET_KEY is required"),
        ({"CRM_DATABASE_URL": PG, "CRM_SECRET_KEY": "short"}, "at least 32 characters"),
        ({"CRM_THREADS": "lots"}, "CRM_THREADS='lots' is not a number"),
    ],
)
def test_serve_with_a_bad_configuration_exits_2_with_the_message_on_stderr(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    base = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "CRM_SECRET_KEY": KEY}
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env=base | env)
    assert result.exit_code == 2, result.output
    assert "configuration error" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
