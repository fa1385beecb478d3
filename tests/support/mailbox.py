"""The file mailbox of the embedded default (CRM_MAIL_DIR), read as a mail client reads it:
each `.eml` file parsed by the standard library's `email` package, links taken from the body."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def messages(directory: Path | str) -> list[EmailMessage]:
    """Every mail written to the directory, oldest first (file names sort by time)."""
    paths = sorted(Path(directory).glob("*.eml"))
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, message
    return str(part.get_content())


def to(directory: Path | str, address: str) -> list[EmailMessage]:
    return [m for m in messages(directory) if m["To"] == address]


def link_token(directory: Path | str, address: str, path: str) -> str:
    """The token of the link to `path` (e.g. /accept-invitation) in the newest mail to `address`."""
    found = [m for m in to(directory, address) if path in body(m)]
    assert found, [(m["To"], m["Subject"]) for m in messages(directory)]
    link = re.search(r"https?://\S+" + re.escape(path) + r"\?\S+", body(found[-1]))
    assert link, body(found[-1])
    [token] = parse_qs(urlsplit(link.group(0)).query)["token"]
    return token
