"""Outgoing email: SMTP in production, `.eml` files in a mail directory on the embedded default.

Read from the environment once and validated at start:
CRM_SMTP_URL (smtp://user:pass@host:port; smtps:// for implicit TLS, ?starttls=1 for STARTTLS),
CRM_MAIL_FROM (the sender address), CRM_PUBLIC_URL (the web address links in mails point to),
CRM_MAIL_DIR (where mails are written when there is no SMTP server; default: `mail/` beside the
SQLite database, `var/mail` for the default one).
"""

from __future__ import annotations

import email
import logging
import os
import secrets
import smtplib
import ssl
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr, parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import msgspec

from application.ports import Mailer
from interfaces.settings import DEFAULT_DATABASE_URL, SettingsError

log = logging.getLogger("crm.mail")
PATHS = {
    "reset_password": "/reset-password",
    "verify_email": "/verify-email",
    "accept_invitation": "/accept-invitation",
}


DEFAULT_FROM = "Loved CRM <no-reply@loved-crm.example>"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
DEFAULT_MAIL_DIR = "var/mail"


class EmailSettings(msgspec.Struct, frozen=True, kw_only=True):
    smtp_url: str | None = None
    mail_from: str = DEFAULT_FROM
    public_url: str = DEFAULT_PUBLIC_URL
    mail_dir: str = DEFAULT_MAIL_DIR


def default_mail_dir(database_url: str) -> str:
    """`mail/` beside an SQLite database (so `./var/mail` for the default one), else var/mail."""
    if database_url.startswith("sqlite:///"):
        return str(Path(database_url.removeprefix("sqlite:///")).parent / "mail")
    return DEFAULT_MAIL_DIR


def load_email_settings(
    environ: Mapping[str, str] | None = None, *, database_url: str | None = None
) -> EmailSettings:
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
    database_url = database_url or env.get("CRM_DATABASE_URL") or DEFAULT_DATABASE_URL
    mail_dir = env.get("CRM_MAIL_DIR") or default_mail_dir(database_url)
    if Path(mail_dir).exists() and not Path(mail_dir).is_dir():
        raise SettingsError(f"CRM_MAIL_DIR={mail_dir!r} is not a directory")
    return EmailSettings(
        smtp_url=smtp_url, mail_from=mail_from, public_url=public_url, mail_dir=mail_dir
    )


def link_maker(settings: EmailSettings) -> Callable[[str, str], str]:
    def link(purpose: str, token: str) -> str:
        return f"{settings.public_url}{PATHS[purpose]}?{urlencode({'token': token})}"

    return link


def compose(sender: str, to: str, subject: str, text: str, at: datetime) -> EmailMessage:
    """An RFC 5322 message with the headers every mailbox expects."""
    message = EmailMessage()
    message["Date"] = format_datetime(at)
    # the sender's domain, not the host name: make_msgid's default asks DNS for our FQDN
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    return message


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
        message = compose(self.sender, to, subject, text, datetime.now(UTC))
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


class FileMailer:
    """No SMTP server: each message is written whole as an `.eml` file (`crm mail` reads them).

    A message is written under a temporary name and renamed, so no reader sees half of one;
    names start with the UTC time, so they sort in the order mails were written. The files
    hold the links' tokens: readable by their owner only, and the log names the file, not them.
    """

    def __init__(self, directory: str | Path, sender: str) -> None:
        self.directory = Path(directory)
        self.sender = sender

    def send(self, to: str, subject: str, text: str) -> None:
        at = datetime.now(UTC)
        data = compose(self.sender, to, subject, text, at).as_bytes(policy=policy.SMTP)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{at:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}.eml"
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        log.info("mail to %s written to %s (no CRM_SMTP_URL): %s", to, path, subject)


class StoredMail(msgspec.Struct, frozen=True):
    """A mail the FileMailer wrote: its id is the file name without `.eml`."""

    id: str
    path: Path
    at: datetime | None
    to: str
    subject: str


def mail_files(directory: str | Path) -> list[Path]:
    """The `.eml` files of a mail directory, newest first (half-written ones have no such name)."""
    folder = Path(directory)
    return sorted(folder.glob("[!.]*.eml"), reverse=True) if folder.is_dir() else []


def stored_mail(path: Path) -> StoredMail:
    message = read_mail(path)
    try:
        at: datetime | None = parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        at = None
    to, subject = str(message["To"] or ""), str(message["Subject"] or "")
    return StoredMail(path.stem, path, at, to, subject)


def stored_mails(directory: str | Path) -> list[StoredMail]:
    """The mails in a mail directory, newest first."""
    return [stored_mail(path) for path in mail_files(directory)]


def read_mail(path: Path) -> EmailMessage:
    with path.open("rb") as file:
        return email.message_from_binary_file(file, policy=policy.default)


def build_mailer(settings: EmailSettings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from)
    return FileMailer(settings.mail_dir, settings.mail_from)
