"""Mail settings are read from the environment once and validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from interfaces.email import FileMailer, SmtpMailer, build_mailer, link_maker, load_email_settings
from interfaces.settings import SettingsError


@pytest.mark.parametrize(
    "env",
    [
        {"CRM_SMTP_URL": "http://mail.example.com"},
        {"CRM_SMTP_URL": "smtp://host:notaport"},
        {"CRM_MAIL_FROM": "nobody"},
        {"CRM_PUBLIC_URL": "ftp://example.com"},
    ],
)
def test_mail_settings_are_validated_at_start(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        load_email_settings(env)


def test_mail_settings_accept_smtp_urls_with_starttls() -> None:
    settings = load_email_settings(
        {"CRM_SMTP_URL": "smtp://u:p%40ss@mail.example.com:587?starttls=1"}
    )
    mailer = SmtpMailer(settings.smtp_url or "", settings.mail_from)
    assert (mailer.host, mailer.port, mailer.user, mailer.password, mailer.starttls) == (
        "mail.example.com",
        587,
        "u",
        "p@ss",
        True,
    )
    assert SmtpMailer("smtps://mail.example.com", "a@b.c").port == 465


def test_without_an_smtp_url_mails_are_written_beside_the_sqlite_database(
    tmp_path: Path,
) -> None:
    default = load_email_settings({})
    assert (default.smtp_url, default.mail_dir) == (None, "var/mail")  # beside var/crm.db
    beside = load_email_settings({"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/db/crm.db"})
    assert beside.mail_dir == str(tmp_path / "db" / "mail")
    given = {"CRM_DATABASE_URL": "postgresql://u@h/db", "CRM_MAIL_DIR": str(tmp_path / "box")}
    settings = load_email_settings(given | {"CRM_PUBLIC_URL": "https://crm.example.com/"})
    mailer = build_mailer(settings)
    assert isinstance(mailer, FileMailer) and mailer.directory == tmp_path / "box"
    assert load_email_settings({"CRM_DATABASE_URL": "postgresql://u@h/db"}).mail_dir == "var/mail"
    link = link_maker(settings)("reset_password", "abc")
    assert link == "https://crm.example.com/reset-password?token=abc"


def test_a_mail_directory_that_is_a_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "mail").write_text("not a directory")
    with pytest.raises(SettingsError, match="CRM_MAIL_DIR"):
        load_email_settings({"CRM_MAIL_DIR": str(tmp_path / "mail")})
