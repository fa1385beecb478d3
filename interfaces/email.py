"""Outgoing email: SMTP in production, the log on the embedded default.

Read from the environment once and validated at start:
CRM_SMTP_URL (smtp://user:pass@host:port; smtps:// for implicit TLS, ?starttls=1 for STARTTLS),
CRM_MAIL_FROM (the sender address), CRM_PUBLIC_URL (the web address links in mails point to).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import msgspec

from application.ports import Mailer
from interfaces.settings import SettingsError

log = logging.getLogger("crm.mail")
PATHS = {
    "reset_password": "/reset-password",
    "verify_email": "/verify-email",
    "accept_invitation": "/accept-invitation",
}


DEFAULT_FROM = "Loved CRM <no-reply@loved-crm.example>"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class EmailSettings(msgspec.Struct, frozen=True, kw_only=True):
    smtp_url: str | None = None
    mail_from: str = DEFAULT_FROM
    public_url: str = DEFAULT_PUBLIC_URL


def load_email_settings(environ: Mapping[str, str] | None = None) -> EmailSettings:
    env = os.environ if environ is None else environ
    smtp_url = env.get("CRM_SMTP_URL") or None
    if smtp_url is not None:
        parts = urlsplit(smtp_url)
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise SettingsError("CRM_SMTP_URL has an invalid port") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise SettingsError(
                "CRM_SMTP_URL must look like smtp://user:password@host:port "
                "(smtps:// for TLS, ?starttls=1 for STARTTLS)"
            )
    mail_from = env.get("CRM_MAIL_FROM") or DEFAULT_FROM
    if "@" not in mail_from or "\n" in mail_from or "\r" in mail_from:
        raise SettingsError(f"CRM_MAIL_FROM={mail_from!r} is not an email address")
    public_url = (env.get("CRM_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
    if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        raise SettingsError(f"CRM_PUBLIC_URL={public_url!r} must be an http(s):// URL")
    return EmailSettings(smtp_url=smtp_url, mail_from=mail_from, public_url=public_url)


def link_maker(settings: EmailSettings) -> Callable[[str, str], str]:
    def link(purpose: str, token: str) -> str:
        return f"{settings.public_url}{PATHS[purpose]}?{urlencode({'token': token})}"

    return link


class SmtpMailer:
    """One connection per message: mails are rare (resets, verifications)."""

    def __init__(self, url: str, sender: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query)
        self.starttls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
        self.sender = sender
        self.timeout = timeout

    def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.user is not None:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


class LogMailer:
    """The embedded demo has no mail server: the message, link included, goes to the log."""

    def send(self, to: str, subject: str, text: str) -> None:
        log.warning("mail to %s (no CRM_SMTP_URL, not sent): %s\n%s", to, subject, text)


def build_mailer(settings: EmailSettings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from)
    return LogMailer()
