"""The user's own account over HTTP: profile, email change, preferences, deactivation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import TestClient

from domain.organization import Organization
from domain.values import Role
from interfaces.services import Services
from tests.support.api import (
    PASSWORD,
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

USER_ROUTES = [
    ("GET", "/users/me", None),
    ("PUT", "/users/me", {"full_name": "X"}),
    ("DELETE", "/users/me", None),
    ("GET", "/users/preferences", None),
    ("PUT", "/users/preferences", {"language": "en"}),
    ("POST", "/auth/logout", None),
    ("POST", "/auth/verify-email/resend", None),
]


class Mails:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, text: str) -> None:
        self.sent.append((to, subject, text))


@pytest.fixture
def mails(services: Services) -> Mails:
    box = Mails()
    services.mailer = box
    return box


def me(tenant: Tenant) -> dict[str, Any]:
    response = tenant.get("/users/me")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_account_route_needs_a_valid_access_token(client: TestClient[Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic x"}):
        for method, path, body in USER_ROUTES:
            response = client.request(method, path, json=body, headers=headers)
            assert_problem(response, 401)


def test_the_profile_shows_and_renames_the_user(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    profile = me(acme)
    assert (profile["id"], profile["full_name"]) == (acme.user_id, "Owner Acme")
    renamed = acme.put("/users/me", json={"full_name": "  Ada Lovelace "})
    assert renamed.status_code == 200, renamed.text
    assert me(acme)["full_name"] == "Ada Lovelace"


def test_a_new_email_must_be_verified_again(
    client: TestClient[Any], services: Services, mails: Mails
) -> None:
    acme = register(client)
    services.users.update(UUID(acme.user_id), email_verified_at=datetime.now(UTC))
    assert me(acme)["email_verified"] is True
    new = f"new.{uuid4().hex[:8]}@example.com"
    changed = acme.put("/users/me", json={"email": new.upper()})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["email"], changed.json()["email_verified"]) == (new, False)
    assert len([to for (to, _, text) in mails.sent if to == new and "verify-email" in text]) == 1
    login = {"email": new, "password": PASSWORD}
    assert client.post("/auth/login", json=login).status_code == 200


def test_profile_changes_refuse_bad_input_and_taken_emails(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    rival = register(client, "Rival")
    before = me(acme)
    for body in (
        {"full_name": ""},
        {"full_name": "x" * 201},
        {"email": "not-an-email"},
        {"email": ""},
        {"full_name": 3},
        {"nickname": "x"},
        [],
    ):
        response = acme.put("/users/me", json=body)
        assert response.status_code in (400, 422), (body, response.text)
    assert_problem(acme.put("/users/me", json={"email": me(rival)["email"]}), 409)
    assert me(acme) == before


def test_preferences_are_replaced_as_a_whole(client: TestClient[Any]) -> None:
    acme = register(client)
    assert acme.get("/users/preferences").json() == {}
    prefs = {"language": "pt-BR", "timezone": "Europe/Paris", "notifications.email": False}
    saved = acme.put("/users/preferences", json=prefs)
    assert (saved.status_code, saved.json()) == (200, prefs)
    assert acme.get("/users/preferences").json() == prefs
    assert acme.put("/users/preferences", json={"language": "en"}).status_code == 200
    assert acme.get("/users/preferences").json() == {"language": "en"}


def test_preferences_refuse_bad_input_and_keep_the_old_ones(client: TestClient[Any]) -> None:
    acme = register(client)
    acme.put("/users/preferences", json={"language": "en"})
    for body in (
        [],
        "text",
        {"nested": {"a": 1}},
        {"list": [1]},
        {"timezone": "Mars/Olympus"},
        {"language": "english please"},
        {"Bad Key": 1},
        {f"k{i}": i for i in range(33)},
        {"long": "x" * 501},
        {
            "a": "x" * 450,
            "b": "x" * 450,
            "c": "x" * 450,
            "d": "x" * 450,
            "e": "x" * 450,
            "f": "x" * 450,
            "g": "x" * 450,
            "h": "x" * 450,
            "i": "x" * 450,
            "j": "x" * 450,
        },
    ):
        response = acme.put("/users/preferences", json=body)
        assert response.status_code in (400, 422), (body, response.text)
    assert acme.get("/users/preferences").json() == {"language": "en"}


def test_the_last_admin_of_an_organization_cannot_close_the_account(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    assert_problem(acme.delete("/users/me"), 409)
    assert me(acme)["id"] == acme.user_id
    assert acme.get("/crm/pipeline/board").status_code == 200


def test_a_closed_account_leaves_its_organizations_and_cannot_log_in(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    email = me(seller)["email"]
    session = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    assert seller.delete("/users/me").status_code == 204
    org_id = UUID(acme.organization_id)
    org = services.app.load(Organization, org_id, org_id)
    assert org.role_of(UUID(seller.user_id)) is None
    assert_problem(client.post("/auth/login", json={"email": email, "password": PASSWORD}), 401)
    assert_problem(
        client.post("/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401
    )
    assert_problem(seller.get("/users/me"), 401)
    other = {"Authorization": f"Bearer {session['access_token']}", "X-Org-Id": acme.organization_id}
    assert client.get("/crm/pipeline/board", headers=other).status_code in (401, 403)
    assert_problem(client.get("/users/me", headers=other), 401)


def test_an_admin_with_another_admin_may_close_the_account(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    deputy = add_member(services, acme, "admin")
    assert acme.delete("/users/me").status_code == 204
    org_id = UUID(acme.organization_id)
    org = services.app.load(Organization, org_id, org_id)
    assert org.members == {UUID(deputy.user_id): Role.ADMIN}
