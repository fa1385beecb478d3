"""`crm mail list` and `crm mail show`: the embedded default's mailbox read from the shell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.email import FileMailer
from tests.interfaces.test_cli import crm, ok
from tests.support.api import (
    PASSWORD,
    cheap_hashing,  # noqa: F401 - a fixture
    register,
)

SENDER = "Loved CRM <no-reply@loved-crm.example>"


def write(directory: Path, count: int) -> None:
    mailer = FileMailer(directory, SENDER)
    for n in range(count):
        link = f"http://127.0.0.1:8000/verify-email?token=secret-{n}-" + "x" * 60
        mailer.send(f"p{n}@example.com", f"Subject {n}", f"Open this link:\n\n{link}\n")


def test_crm_mail_list_shows_the_newest_first_where_the_server_writes_them(
    tmp_path: Path,
) -> None:
    write(tmp_path / "mail", 3)  # beside the database: where `crm serve` writes them
    listed = ok({"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db"}, "mail", "list")
    rows = listed.splitlines()[1:]
    assert [row.split()[2] for row in rows] == [
        "p2@example.com",
        "p1@example.com",
        "p0@example.com",
    ]
    names = sorted(p.name for p in (tmp_path / "mail").glob("*.eml"))
    assert [row.split()[-1] for row in rows] == names[::-1]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", row) for row in rows)
    assert "Subject 1" in rows[1] and "secret" not in listed
    limited = ok({"CRM_MAIL_DIR": str(tmp_path / "mail")}, "mail", "list", "--limit", "1")
    assert "p2@example.com" in limited and "2 older" in limited


def test_crm_mail_show_prints_the_whole_message_with_a_usable_link(tmp_path: Path) -> None:
    write(tmp_path, 3)
    env = {"CRM_MAIL_DIR": str(tmp_path)}
    latest = ok(env, "mail", "show")
    assert "To: p2@example.com" in latest and "Subject: Subject 2" in latest
    assert "Message-ID: <" in latest and "Date: " in latest
    assert f"?token=secret-2-{'x' * 60}\n" in latest  # whole, not wrapped or encoded
    assert ok(env, "mail", "show", "latest") == latest
    oldest = sorted(tmp_path.glob("*.eml"))[0]
    for which in (oldest.stem, oldest.name, str(oldest), oldest.stem[-6:]):
        assert "To: p0@example.com" in ok(env, "mail", "show", which), which
    assert ok(env, "mail", "show", "--raw", oldest.stem).replace("\r\n", "\n") == (
        oldest.read_bytes().decode().replace("\r\n", "\n")
    )
    unknown = crm(env, "mail", "show", "no-such-mail")
    assert unknown.exit_code == 1 and "crm mail list" in unknown.output
    ambiguous = crm(env, "mail", "show", oldest.stem[:4])
    assert ambiguous.exit_code == 1 and "3 mails" in ambiguous.output


def test_crm_mail_says_when_there_is_no_mail(tmp_path: Path) -> None:
    env = {"CRM_MAIL_DIR": str(tmp_path / "nothing")}
    assert ok(env, "mail", "list").startswith("no mail in")
    assert crm(env, "mail", "show").exit_code == 1


@pytest.mark.usefixtures("cheap_hashing")
def test_an_invitation_is_accepted_through_crm_mail_show_latest(
    client: TestClient[Any], mail_dir: Path
) -> None:
    """The README's demo flow: invite, read the mail from the shell, open its link."""
    acme = register(client, "Acme")
    invited = acme.post(
        "/organizations/invite-member", json={"email": "new@example.com", "role": "sales"}
    )
    assert invited.status_code == 201, invited.text
    shown = ok({"CRM_MAIL_DIR": str(mail_dir)}, "mail", "show", "latest")
    assert "To: new@example.com" in shown
    link = re.search(r"/accept-invitation\?token=(\S+)", shown)
    assert link is not None, shown
    joined = client.post(
        "/organizations/invitations/accept",
        json={"token": link.group(1), "full_name": "New", "password": PASSWORD},
    )
    assert joined.status_code == 200, joined.text
