"""The embedded default's mailbox: each mail written whole as an `.eml` file in CRM_MAIL_DIR,
read back with the standard library's `email` package, its links usable."""

from __future__ import annotations

import email
import stat
from email import policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from interfaces.email import FileMailer, stored_mails
from interfaces.services import Services
from tests.support import mailbox
from tests.support.api import (
    PASSWORD,
    cheap_hashing,  # noqa: F401 - a fixture
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
SENDER = "Loved CRM <no-reply@loved-crm.example>"
LINK = "http://127.0.0.1:8000/reset-password?token=" + "T0k3n_-" * 8


def test_a_mail_is_written_whole_as_an_rfc_5322_file_only_its_owner_reads(
    tmp_path: Path,
) -> None:
    mailer = FileMailer(tmp_path / "mail", SENDER)
    text = f"Olá! To choose a new password, open this link:\n\n{LINK}\n"
    mailer.send("ana@example.com", "Reset your Loved CRM password", text)
    [path] = list((tmp_path / "mail").iterdir())
    data = path.read_bytes()
    assert path.suffix == ".eml" and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    message = email.message_from_bytes(data, policy=policy.default)
    assert (message["From"], message["To"]) == (SENDER, "ana@example.com")
    assert message["Subject"] == "Reset your Loved CRM password"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith(
        "@loved-crm.example>"
    )
    assert mailbox.body(message).replace("\r\n", "\n") == text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the link's token
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_mail_files_sort_in_the_order_they_were_written_and_half_written_ones_are_never_read(
    tmp_path: Path,
) -> None:
    mailer = FileMailer(tmp_path, SENDER)
    for number in range(5):
        mailer.send(f"p{number}@example.com", f"mail {number}", "text")
    (tmp_path / ".20991231T235959999999Z-abcdef.eml.tmp").write_bytes(b"To: cut@exam")
    names = sorted(p.name for p in tmp_path.glob("*.eml"))
    subjects = [mailbox.messages(tmp_path)[i]["Subject"] for i in range(5)]
    assert subjects == [f"mail {n}" for n in range(5)] and len(names) == 5
    listed = stored_mails(tmp_path)
    assert [m.subject for m in listed] == [f"mail {n}" for n in reversed(range(5))]
    assert [m.path.name for m in listed] == sorted(names, reverse=True)


def test_the_log_names_the_recipient_and_the_file_but_never_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="crm.mail"):
        FileMailer(tmp_path, SENDER).send("ana@example.com", "Reset", f"open {LINK}")
    [path] = list(tmp_path.glob("*.eml"))
    assert "ana@example.com" in caplog.text and path.name in caplog.text
    assert "T0k3n" not in caplog.text


def email_of(services: Services, user_id: str) -> str:
    user = services.users.by_id(UUID(user_id))
    assert user is not None
    return user.email


def test_a_password_reset_link_arrives_in_the_mail_directory_and_works(
    client: TestClient[Any], services: Services, mail_dir: Path
) -> None:
    acme = register(client)
    address = email_of(services, acme.user_id)
    assert client.post("/auth/reset-password", json={"email": address}).status_code == 202
    token = mailbox.link_token(mail_dir, address, "/reset-password")
    body = {"token": token, "new_password": "a brand new password"}
    assert client.post("/auth/reset-password", json=body).status_code == 200
    login = {"email": address, "password": "a brand new password"}
    assert client.post("/auth/login", json=login).status_code == 200
    assert client.post("/auth/login", json=login | {"password": PASSWORD}).status_code == 401


def test_an_email_verification_link_arrives_in_the_mail_directory_and_works(
    client: TestClient[Any], services: Services, mail_dir: Path
) -> None:
    acme = register(client)
    address = email_of(services, acme.user_id)
    [message] = mailbox.to(mail_dir, address)
    assert message["Subject"] == "Confirm your email address for Loved CRM"
    token = mailbox.link_token(mail_dir, address, "/verify-email")
    assert client.post("/auth/verify-email", json={"token": token}).status_code == 200
    assert acme.get("/users/me").json()["email_verified"] is True
