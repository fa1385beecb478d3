"""The edge's settings: CORS origins, rate limits, proxy trust and log level, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from interfaces.settings import RateLimit, SettingsError, load_settings


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", **values}


def test_by_default_limits_are_on_cors_is_off_and_proxies_are_not_trusted(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path))
    assert settings.rate_limit_auth == RateLimit(60, 60.0)
    assert settings.rate_limit_org == RateLimit(1200, 60.0)
    assert settings.cors_origins == ()
    assert settings.trust_proxy is False
    assert settings.log_level == "INFO"


def test_edge_settings_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        env(
            tmp_path,
            CRM_CORS_ORIGINS=" https://app.example.com/, http://localhost:5173 ,",
            CRM_RATE_LIMIT_AUTH="5/30",
            CRM_RATE_LIMIT_ORG="off",
            CRM_TRUST_PROXY="yes",
            CRM_LOG_LEVEL="warning",
        )
    )
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert settings.rate_limit_auth == RateLimit(5, 30.0)
    assert settings.rate_limit_org is None
    assert settings.trust_proxy is True
    assert settings.log_level == "WARNING"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CRM_CORS_ORIGINS", "app.example.com"),
        ("CRM_CORS_ORIGINS", "ftp://app.example.com"),
        ("CRM_CORS_ORIGINS", "https://app.example.com/path"),
        ("CRM_CORS_ORIGINS", "https://app.example.com:port"),
        ("CRM_RATE_LIMIT_AUTH", "20"),
        ("CRM_RATE_LIMIT_AUTH", "0/60"),
        ("CRM_RATE_LIMIT_AUTH", "20/0"),
        ("CRM_RATE_LIMIT_ORG", "many/60"),
        ("CRM_RATE_LIMIT_ORG", "10/nan"),
        ("CRM_TRUST_PROXY", "perhaps"),
        ("CRM_LOG_LEVEL", "chatty"),
    ],
)
def test_invalid_edge_settings_are_refused_naming_the_variable(
    name: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env(tmp_path, **{name: value}))
