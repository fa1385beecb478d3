"""Organizations over HTTP: settings, members, invitations, roles, removal, switching."""

from __future__ import annotations

import socket
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from interfaces.email import SmtpMailer
from projections.directory import rm_organizations
from tests.support import mailbox
from tests.support.api import (
    PASSWORD,
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def events_of(tenant: Tenant, event_type: str) -> list[dict[str, Any]]:
    rows = tenant.get("/audit/events", params={"event_type": event_type})
    assert rows.status_code == 200, rows.text
    items: list[dict[str, Any]] = rows.json()["items"]
    return items


def version(tenant: Tenant) -> int:
    found: int = tenant.get("/organizations/current").json()["version"]
    return found


def test_the_organization_is_read_and_changed_by_its_admin(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    got = acme.get("/organizations/current")
    assert got.status_code == 200, got.text
    assert got.json() | {"version": 0} == {
        "id": acme.organization_id,
        "name": "Acme",
        "timezone": "UTC",
        "version": 0,
    }
    changed = acme.put(
        "/organizations/current", json={"name": " Acme Two ", "timezone": "Europe/Lisbon"}
    )
    assert changed.status_code == 200, changed.text
    assert acme.get("/organizations/current").json()["timezone"] == "Europe/Lisbon"
    [renamed] = events_of(acme, "Organization.Renamed")
    assert renamed["changes"]["name"] == {"before": "Acme", "after": "Acme Two"}
    assert renamed["actor_id"] == acme.user_id and renamed["ip"] == "testclient"
    [zone] = events_of(acme, "Organization.TimezoneChanged")
    assert zone["changes"]["timezone"] == {"before": "UTC", "after": "Europe/Lisbon"}
    # the directory (the organizations listed at login) follows the new name
    services = client.app.state.services
    assert services.wait_for(["directory"], acme.position)
    with services.engine.connect() as conn:
        names = conn.execute(
            sa.select(rm_organizations.c.name).where(
                rm_organizations.c.organization_id == UUID(acme.organization_id)
            )
        ).scalars()
        assert list(names) == ["Acme Two"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"timezone": "Mars/Olympus"}, 422),
        ({"name": "  "}, 422),
        ({"name": "x" * 201}, 422),
        ({"name": 5}, 400),
        ({"colour": "red"}, 400),
        ({"name": "New", "timezone": "Nowhere/Here"}, 422),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(
    client: TestClient[Any], body: dict[str, Any], status: int
) -> None:
    acme = register(client, "Acme")
    before = version(acme)
    assert_problem(acme.put("/organizations/current", json=body), status)
    assert version(acme) == before
    assert acme.get("/organizations/current").json()["name"] == "Acme"


def test_a_stale_expected_version_is_a_conflict(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    body = assert_problem(
        acme.put("/organizations/current", json={"name": "B", "expected_version": 7}), 409
    )
    assert body["current_version"] == 1


def test_members_are_listed_with_name_email_and_role(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client, "Acme")
    sales = add_member(services, acme, "sales", name="Sally Sales")
    acme.position = max(acme.position, sales.position)
    got = acme.get("/organizations/current/members")
    assert got.status_code == 200, got.text
    members = got.json()
    assert [(m["user_id"], m["full_name"], m["role"]) for m in members] == [
        (acme.user_id, "Owner Acme", "admin"),
        (sales.user_id, "Sally Sales", "sales"),
    ]
    assert all("@example.com" in m["email"] for m in members)
    rival = register(client, "Rival")
    assert [m["user_id"] for m in rival.get("/organizations/current/members").json()] == [
        rival.user_id
    ]


def invite(tenant: Tenant, email: str, role: str = "sales") -> dict[str, Any]:
    response = tenant.post("/organizations/invite-member", json={"email": email, "role": role})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def mail_dir(client: TestClient[Any]) -> str:
    directory: str = client.app.state.services.email.mail_dir
    return directory


def invite_token(tenant: Tenant, email: str, role: str = "sales") -> str:
    """Invite, then take the token from the link mailed to the invitee (never from the answer)."""
    invite(tenant, email, role)
    return mailbox.link_token(mail_dir(tenant.client), email.lower(), "/accept-invitation")


def accept(client: TestClient[Any], token: str, **body: Any) -> Any:
    return client.post("/organizations/invitations/accept", json={"token": token} | body)


def test_an_invited_newcomer_gets_an_account_and_the_role(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    invited = invite(acme, "Newcomer@Example.com", "manager")
    assert invited["email"] == invited["sent_to"] == "newcomer@example.com"
    assert invited["mail_sent"] is True and "token" not in invited
    token = mailbox.link_token(mail_dir(client), "newcomer@example.com", "/accept-invitation")
    assert token.startswith("linv_")
    [sent] = events_of(acme, "Organization.InvitationSent")
    assert token not in str(sent) and len(sent["changes"]["token_hash"]["after"]) == 64
    accepted = accept(client, token, full_name="New Comer", password=PASSWORD)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["organization_id"], body["role"]) == (acme.organization_id, "manager")
    newcomer = Tenant(client, acme.organization_id, body["user_id"], body["access_token"])
    newcomer.position = body["position"]
    assert newcomer.get("/crm/pipeline/board").status_code == 200
    me = newcomer.get("/users/me").json()
    assert me["email_verified"] is True and me["email_verified_at"] is not None
    login = client.post("/auth/login", json={"email": "newcomer@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert_problem(accept(client, token, full_name="Other", password=PASSWORD), 422)


def test_the_inviters_answer_holds_no_usable_token(client: TestClient[Any], services: Any) -> None:
    """An admin who could accept their own invitation could own an account under someone
    else's address: nothing in the answer, alone or shaped as a token, opens it."""
    acme = register(client, "Acme")
    answer = invite(acme, "victim@example.com", "admin")
    values = [str(value) for value in answer.values()]
    org, invitation = UUID(acme.organization_id).hex, UUID(answer["invitation_id"]).hex
    candidates = [*values, str(answer), *(f"linv_{org}_{invitation}_{v}" for v in values)]
    for candidate in candidates:
        tried = accept(client, candidate, full_name="Not Victim", password=PASSWORD)
        assert tried.status_code in (400, 404, 422), (candidate, tried.text)
    assert services.users.by_email("victim@example.com") is None
    assert len(acme.get("/organizations/current/members").json()) == 1
    # the invitee's own mail still opens it
    token = mailbox.link_token(mail_dir(client), "victim@example.com", "/accept-invitation")
    assert accept(client, token, full_name="Victim", password=PASSWORD).status_code == 200


def test_the_invitation_is_mailed_to_the_invitee_as_a_whole_message_with_the_link(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme\nBcc: eve@example.com")
    invited = invite(acme, "guest@example.com", "viewer")
    [message] = mailbox.to(mail_dir(client), "guest@example.com")
    assert message["Subject"] == "Invitation to Acme Bcc: eve@example.com on Loved CRM"
    assert message["Bcc"] is None and message["From"] and message["Date"]
    assert message["Message-ID"].endswith("@loved-crm.example>")
    text = mailbox.body(message)
    assert "as viewer" in text and invited["expires_at"][:10] in text
    token = mailbox.link_token(mail_dir(client), "guest@example.com", "/accept-invitation")
    assert text.count(token) == 1 and "http://127.0.0.1:8000/accept-invitation?token=" in text
    joined = accept(client, token, full_name="Guest", password=PASSWORD)
    assert joined.status_code == 200, joined.text
    assert joined.json()["role"] == "viewer"


def test_an_invitation_whose_mail_cannot_leave_says_so_and_shows_no_token(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client, "Acme")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services.mailer = SmtpMailer(f"smtp://127.0.0.1:{port}", "crm@example.com", timeout=2)
    answer = invite(acme, "unlucky@example.com")
    assert (answer["mail_sent"], answer["sent_to"]) == (False, "unlucky@example.com")
    assert "token" not in answer and not any("linv_" in str(v) for v in answer.values())
    assert len(events_of(acme, "Organization.InvitationSent")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"token": "nonsense"},
        {"token": 5},
        {"token": "linv_zz_zz_zz"},
        {},
        {"token": "x", "extra": 1},
    ],
)
def test_malformed_invitation_tokens_are_refused(
    client: TestClient[Any], body: dict[str, Any]
) -> None:
    response = client.post("/organizations/invitations/accept", json=body)
    assert response.status_code in (400, 422), response.text


def test_an_unknown_or_forged_invitation_is_not_found(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    real = invite_token(acme, "someone@example.com")
    forged = real[: real.rindex("_") + 1] + "A" * 43
    unknown = f"linv_{uuid4().hex}_{uuid4().hex}_secret"
    for token in (forged, unknown):
        response = client.post(
            "/organizations/invitations/accept",
            json={"token": token, "full_name": "X", "password": PASSWORD},
        )
        assert_problem(response, 404)


def test_a_newcomer_must_give_a_name_and_a_good_password(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    token = invite_token(acme, "fresh@example.com")
    for body in ({"password": PASSWORD}, {"full_name": "F", "password": "short"}):
        assert_problem(
            client.post("/organizations/invitations/accept", json={"token": token} | body), 422
        )
    assert len(acme.get("/organizations/current/members").json()) == 1


def test_someone_with_an_account_joins_signed_in_or_with_their_password(
    client: TestClient[Any], services: Any
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    email = services.users.by_id(UUID(rival.user_id)).email
    token = invite_token(acme, email, "viewer")
    anonymous = client.post("/organizations/invitations/accept", json={"token": token})
    assert_problem(anonymous, 401)
    stranger = register(client, "Stranger")
    as_other = client.post(
        "/organizations/invitations/accept",
        json={"token": token},
        headers={"Authorization": f"Bearer {stranger.token}"},
    )
    assert_problem(as_other, 401)
    wrong = client.post(
        "/organizations/invitations/accept", json={"token": token, "password": "wrong password"}
    )
    assert_problem(wrong, 401)
    signed_in = client.post(
        "/organizations/invitations/accept",
        json={"token": token},
        headers={"Authorization": f"Bearer {rival.token}"},
    )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user_id"] == rival.user_id
    # the token came from the invited mailbox: the account's address is proved
    assert services.users.by_id(UUID(rival.user_id)).email_verified_at is not None
    second = invite_token(rival, services.users.by_id(UUID(acme.user_id)).email)
    by_password = client.post(
        "/organizations/invitations/accept",
        json={"token": second, "password": PASSWORD},
    )
    assert by_password.status_code == 200, by_password.text


def test_a_user_in_two_organizations_switches_between_them(client: TestClient[Any]) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    token = invite_token(acme, "x@example.com")
    joined = client.post(
        "/organizations/invitations/accept",
        json={"token": token, "full_name": "X", "password": PASSWORD},
    ).json()
    # the rival's owner is a member of Rival only
    refused = rival.post("/organizations/switch", json={"organization_id": acme.organization_id})
    assert_problem(refused, 403)
    nowhere = rival.post("/organizations/switch", json={"organization_id": str(uuid4())})
    assert_problem(nowhere, 403)
    invite_back = invite_token(rival, "x@example.com", "manager")
    client.post(
        "/organizations/invitations/accept",
        json={"token": invite_back, "password": PASSWORD},
    )
    switched = client.post(
        "/organizations/switch",
        json={"organization_id": rival.organization_id},
        headers={"Authorization": f"Bearer {joined['access_token']}"},
    )
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert (body["organization_id"], body["role"]) == (rival.organization_id, "manager")
    as_rival = Tenant(client, rival.organization_id, joined["user_id"], body["access_token"])
    assert as_rival.get("/crm/pipeline/stages").status_code == 200
    assert_problem(client.post("/organizations/switch", json={"organization_id": "x"}), 401)
    bad = rival.post("/organizations/switch", json={"organization_id": "not-a-uuid"})
    assert_problem(bad, 400)


def test_roles_change_and_members_leave_but_an_admin_remains(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client, "Acme")
    sales = add_member(services, acme, "sales")
    changed = acme.put(f"/organizations/members/{sales.user_id}/role", json={"role": "manager"})
    assert changed.status_code == 200, changed.text
    [event] = events_of(acme, "Organization.MemberRoleChanged")
    assert event["changes"]["role"] == {"before": "sales", "after": "manager"}
    demote_self = acme.put(f"/organizations/members/{acme.user_id}/role", json={"role": "viewer"})
    assert_problem(demote_self, 409)
    assert_problem(acme.delete(f"/organizations/members/{acme.user_id}"), 409)
    assert_problem(
        acme.put(f"/organizations/members/{sales.user_id}/role", json={"role": "owner"}), 422
    )
    assert_problem(acme.put(f"/organizations/members/{sales.user_id}/role", json={}), 400)
    removed = acme.delete(f"/organizations/members/{sales.user_id}")
    assert removed.status_code == 200, removed.text
    assert_problem(sales.get("/crm/leads"), 403)
    ids = [m["user_id"] for m in acme.get("/organizations/current/members").json()]
    assert ids == [acme.user_id]


def test_members_of_another_organization_are_not_found(client: TestClient[Any]) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    before = version(rival)
    assert_problem(
        acme.put(f"/organizations/members/{rival.user_id}/role", json={"role": "viewer"}), 404
    )
    assert_problem(acme.delete(f"/organizations/members/{rival.user_id}"), 404)
    assert version(rival) == before


NOBODY = "00000000-0000-4000-8000-00000000beef"
ROUTES = [
    ("GET", "/organizations/current", None),
    ("PUT", "/organizations/current", {"name": "N"}),
    ("GET", "/organizations/current/members", None),
    ("POST", "/organizations/invite-member", {"email": "a@example.com", "role": "sales"}),
    ("PUT", f"/organizations/members/{NOBODY}/role", {"role": "sales"}),
    ("DELETE", f"/organizations/members/{NOBODY}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_organization_route_needs_credentials(
    client: TestClient[Any], method: str, path: str, body: Any
) -> None:
    acme = register(client, "Acme")
    for headers in ({"X-Org-Id": acme.organization_id}, {"Authorization": "Bearer nope"}):
        response = client.request(method, path, json=body, headers=headers)
        assert_problem(response, 401)
