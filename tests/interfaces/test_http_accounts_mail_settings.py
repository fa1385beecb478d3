"""Mail settings are read from the environment once and validated at start."""

from __future__ import annotations

import pytest

from interfaces.email import LogMailer, SmtpMailer, build_mailer, link_maker, load_email_settings
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


def test_without_an_smtp_url_mails_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_email_settings({"CRM_PUBLIC_URL": "https://crm.example.com/"})
    mailer = build_mailer(settings)
    assert isinstance(mailer, LogMailer)
    link = link_maker(settings)("reset_password", "abc")
    assert link == "https://crm.example.com/reset-password?token=abc"
    with caplog.at_level("WARNING", logger="crm.mail"):
        mailer.send("someone@example.com", "Subject", "open " + link)
    assert link in caplog.text
