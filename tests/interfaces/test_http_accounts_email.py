"""Password reset and email verification over HTTP, and mail through a real SMTP server."""

from __future__ import annotations

import email as email_parser
import re
import socket
from email import policy as email_policy
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from litestar.testing import TestClient

from interfaces.email import SmtpMailer
from interfaces.services import Services
from interfaces.users import account_tokens
from tests.support.api import (
    PASSWORD,
    Tenant,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
NEW_PASSWORD = "a brand new password"


class Mails:
    """The fake at the outgoing port: what would have been mailed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, text: str) -> None:
        self.sent.append((to, subject, text))

    def token_for(self, to: str, kind: str) -> str:
        texts = [t for (address, _, t) in self.sent if address == to and kind in t]
        assert texts, self.sent
        found = re.search(r"token=([A-Za-z0-9_-]+)", texts[-1])
        assert found, texts[-1]
        return found.group(1)


@pytest.fixture
def mails(services: Services) -> Mails:
    box = Mails()
    services.mailer = box
    return box


def email_of(services: Services, tenant: Tenant) -> str:
    user = services.users.by_id(UUID(tenant.user_id))
    assert user is not None
    return user.email


def login(client: TestClient[Any], email: str, password: str) -> int:
    return int(client.post("/auth/login", json={"email": email, "password": password}).status_code)


def incident_kinds(client: TestClient[Any], tenant: Tenant) -> list[tuple[str, str, str]]:
    tenant.position = client.app.state.services.app.recorder.max_notification_id()
    rows = tenant.get("/audit/events", params={"event_type": "SecurityIncident.Recorded"})
    assert rows.status_code == 200, rows.text
    return [(r["changes"]["kind"]["after"], r["ip"], r["user_agent"]) for r in rows.json()["items"]]


def test_a_password_reset_mails_a_single_use_token_and_ends_every_session(
    client: TestClient[Any], services: Services, mails: Mails
) -> None:
    acme = register(client)
    email = email_of(services, acme)
    old_session = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    old_refresh, old_access = old_session["refresh_token"], old_session["access_token"]
    registered_with = acme.token
    agent = {"User-Agent": "reset-agent"}
    asked = client.post("/auth/reset-password", json={"email": email.upper()}, headers=agent)
    assert asked.status_code == 202, asked.text
    token = mails.token_for(email, "reset-password")
    body = {"token": token, "new_password": NEW_PASSWORD}
    done = client.post("/auth/reset-password", json=body, headers=agent)
    assert done.status_code == 200, done.text
    assert login(client, email, PASSWORD) == 401
    assert login(client, email, NEW_PASSWORD) == 200
    again = client.post("/auth/reset-password", json=body | {"new_password": "another one!"})
    assert_problem(again, 422)
    assert login(client, email, NEW_PASSWORD) == 200
    assert_problem(client.post("/auth/refresh", json={"refresh_token": old_refresh}), 401)
    # access tokens taken before the reset end with their sessions (a thief's too)
    for stolen in (old_access, registered_with):
        assert_problem(client.get("/users/me", headers={"Authorization": f"Bearer {stolen}"}), 401)
    acme.token = client.post("/auth/login", json={"email": email, "password": NEW_PASSWORD}).json()[
        "access_token"
    ]
    assert client.get("/users/me", headers={"Authorization": f"Bearer {acme.token}"}).is_success
    kinds = incident_kinds(client, acme)
    assert ("password_reset_requested", "testclient", "reset-agent") in kinds
    assert ("password_reset_completed", "testclient", "reset-agent") in kinds


def test_a_reset_for_an_unknown_email_answers_the_same_and_mails_nothing(
    client: TestClient[Any], mails: Mails
) -> None:
    response = client.post("/auth/reset-password", json={"email": "nobody@example.com"})
    assert response.status_code == 202
    assert response.json() == {"status": "reset_link_sent_if_account_exists"}
    assert mails.sent == []


def test_an_expired_or_unknown_reset_token_changes_nothing(
    client: TestClient[Any], services: Services, mails: Mails
) -> None:
    acme = register(client)
    email = email_of(services, acme)
    client.post("/auth/reset-password", json={"email": email})
    token = mails.token_for(email, "reset-password")
    with services.engine.begin() as conn:
        conn.execute(account_tokens.update().values(expires_at=sa.func.current_timestamp()))
    for candidate in (token, "made-up-token"):
        body = {"token": candidate, "new_password": NEW_PASSWORD}
        assert_problem(client.post("/auth/reset-password", json=body), 422)
    assert login(client, email, PASSWORD) == 200


def test_reset_password_refuses_bad_input_and_keeps_the_token_usable(
    client: TestClient[Any], services: Services, mails: Mails
) -> None:
    acme = register(client)
    email = email_of(services, acme)
    client.post("/auth/reset-password", json={"email": email})
    token = mails.token_for(email, "reset-password")
    for body in (
        {},
        {"token": token},
        {"email": email, "token": token, "new_password": NEW_PASSWORD},
        {"token": token, "new_password": "short"},
        {"token": token, "new_password": NEW_PASSWORD, "extra": True},
        {"email": 42},
        {"email": "x" * 300},
        [],
    ):
        response = client.post("/auth/reset-password", json=body)
        assert response.status_code in (400, 422), (body, response.text)
    assert len(mails.sent) == 2  # the registration's verification and one reset link
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert client.post("/auth/reset-password", json=body).status_code == 200


def test_the_registration_mail_verifies_the_email_once(
    client: TestClient[Any], services: Services, mails: Mails
) -> None:
    acme = register(client)
    email = email_of(services, acme)
    me = acme.get("/users/me").json()
    assert (me["email_verified"], me["email_verified_at"]) == (False, None)
    token = mails.token_for(email, "verify-email")
    verified = client.post("/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert acme.get("/users/me").json()["email_verified"] is True
    assert_problem(client.post("/auth/verify-email", json={"token": token}), 422)
    resent = acme.post("/auth/verify-email/resend")
    assert (resent.status_code, resent.json()["status"]) == (202, "already_verified")


def test_a_verification_link_can_be_resent_to_the_logged_in_user(
    client: TestClient[Any], services: Services, mails: Mails
) -> None:
    acme = register(client)
    email = email_of(services, acme)
    first = mails.token_for(email, "verify-email")
    assert acme.post("/auth/verify-email/resend").status_code == 202
    second = mails.token_for(email, "verify-email")
    assert second != first
    assert client.post("/auth/verify-email", json={"token": second}).status_code == 200


def test_verify_email_refuses_bad_input_and_anonymous_resends(client: TestClient[Any]) -> None:
    for body in ({}, {"token": ""}, {"token": 1}, {"token": "t", "x": 1}, {"token": "t" * 500}):
        response = client.post("/auth/verify-email", json=body)
        assert response.status_code in (400, 422), (body, response.text)
    assert_problem(client.post("/auth/verify-email", json={"token": "unknown"}), 422)
    assert_problem(client.post("/auth/verify-email/resend"), 401)
    bad = {"Authorization": "Bearer nonsense"}
    assert_problem(client.post("/auth/verify-email/resend", headers=bad), 401)


# --- a real SMTP server --------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        content = envelope.content
        text = content.decode() if isinstance(content, bytes) else str(content)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), text))
        return "250 Message accepted for delivery"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"crm", b"s3cret")
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server() -> Any:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller cannot report port 0's)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=check_login,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reset_links_leave_through_a_real_smtp_server(
    client: TestClient[Any], services: Services, smtp_server: Any
) -> None:
    inbox, port = smtp_server
    services.mailer = SmtpMailer(f"smtp://crm:s3cret@127.0.0.1:{port}", "CRM <crm@example.com>")
    acme = register(client)
    email = email_of(services, acme)
    assert client.post("/auth/reset-password", json={"email": email}).status_code == 202
    resets = [m for m in inbox.messages if "reset-password" in m[2]]
    assert len(resets) == 1
    sender, recipients, text = resets[0]
    assert (sender, recipients) == ("crm@example.com", [email])
    message = email_parser.message_from_string(text, policy=email_policy.default)
    assert message["Subject"] == "Reset your Loved CRM password"
    assert message["To"] == email
    token = re.search(r"token=([A-Za-z0-9_-]+)", message.get_body().get_content())
    assert token is not None
    body = {"token": token.group(1), "new_password": NEW_PASSWORD}
    assert client.post("/auth/reset-password", json=body).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_invitation_leaves_through_a_real_smtp_server_to_the_invitee_only(
    client: TestClient[Any], services: Services, smtp_server: Any
) -> None:
    inbox, port = smtp_server
    services.mailer = SmtpMailer(f"smtp://crm:s3cret@127.0.0.1:{port}", "CRM <crm@example.com>")
    acme = register(client)
    answer = acme.post(
        "/organizations/invite-member", json={"email": "ines@example.com", "role": "viewer"}
    ).json()
    assert (answer["sent_to"], answer["mail_sent"]) == ("ines@example.com", True)
    [(sender, recipients, text)] = [m for m in inbox.messages if "accept-invitation" in m[2]]
    assert (sender, recipients) == ("crm@example.com", ["ines@example.com"])
    message = email_parser.message_from_string(text, policy=email_policy.default)
    assert message["Date"] and message["Message-ID"].endswith("@example.com>")
    token = re.search(r"token=([A-Za-z0-9_-]+)", message.get_body().get_content())
    assert token is not None and token.group(1) not in str(answer)
    body = {"token": token.group(1), "full_name": "Inês", "password": PASSWORD}
    joined = client.post("/organizations/invitations/accept", json=body)
    assert joined.status_code == 200, joined.text
