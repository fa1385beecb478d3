"""Identity over HTTP: registration, login, and the tenant guard in front of /crm and /audit."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from domain.organization import Organization
from domain.values import Actor, Role
from interfaces.services import Services
from interfaces.users import users
from tests.conftest import SECRET
from tests.support.api import (
    GUARDED_ROUTES,
    PASSWORD,
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by @cheap
    register,
)

# the guard tests do not test hashing: they may register with cheap argon2 parameters
cheap = pytest.mark.usefixtures("cheap_hashing")


def new_email() -> str:
    return f"{uuid4().hex[:10]}@example.com"


def registration(email: str, **changes: Any) -> dict[str, Any]:
    return {
        "email": email,
        "password": PASSWORD,
        "full_name": "Ana Souza",
        "organization_name": "Padaria",
    } | changes


def auth(token: str, org: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Org-Id": org}


def some_ids(tenant: Tenant) -> tuple[str, str]:
    lead = tenant.capture()["id"]
    return lead, tenant.stages()[1]["id"]


def test_registering_creates_a_user_an_organization_and_a_working_token(
    client: TestClient[Any],
) -> None:
    email = new_email()
    response = client.post("/auth/register", json=registration(email))

    assert response.status_code == 201, response.text
    body = response.json()
    assert {"user_id", "organization_id", "access_token"} <= body.keys()
    assert UUID(body["user_id"]) != UUID(body["organization_id"])
    headers = auth(body["access_token"], body["organization_id"])
    headers["X-Min-Position"] = str(body["position"])
    stages = client.get("/crm/pipeline/stages", headers=headers)
    assert stages.status_code == 200, stages.text
    assert len(stages.json()) == 6


def test_an_email_registers_once_whatever_its_case(client: TestClient[Any]) -> None:
    email = new_email()
    assert client.post("/auth/register", json=registration(email)).status_code == 201

    again = client.post("/auth/register", json=registration(email))
    shouted = client.post("/auth/register", json=registration(f"  {email.upper()} "))

    assert_problem(again, 409)
    assert_problem(shouted, 409)


BAD_REGISTRATIONS: list[tuple[str, dict[str, Any]]] = [
    ("not an email", {"email": "ana-at-example.com"}),
    ("empty email", {"email": "  "}),
    ("short password", {"password": "short"}),
    ("huge password", {"password": "x" * 10_000}),
    ("empty full name", {"full_name": "   "}),
    ("huge full name", {"full_name": "x" * 5000}),
    ("empty organization name", {"organization_name": ""}),
    ("huge organization name", {"organization_name": "x" * 5000}),
    ("unknown field", {"is_admin": True}),
    ("wrong type", {"password": 12345678}),
    ("null", {"full_name": None}),
    ("NUL character", {"organization_name": "Pad\u0000aria"}),
]


def test_bad_registrations_are_refused_and_write_nothing(
    client: TestClient[Any], services: Services
) -> None:
    head = services.app.recorder.max_notification_id()
    email = new_email()
    for label, change in BAD_REGISTRATIONS:
        body = registration(email) | change
        response = client.post("/auth/register", json=body)
        assert response.status_code in (400, 422), (label, response.text)
        assert_problem(response, response.status_code)
    for field in ("email", "password", "full_name", "organization_name"):
        body = registration(email)
        del body[field]
        assert_problem(client.post("/auth/register", json=body), 400)
    malformed = client.post(
        "/auth/register", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert_problem(malformed, 400)
    assert_problem(client.post("/auth/register", json=[registration(email)]), 400)

    assert services.app.recorder.max_notification_id() == head
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(users).where(users.c.email == email)).first() is None
    assert client.post("/auth/register", json=registration(email)).status_code == 201


def test_login_gives_a_token_and_the_users_organizations(client: TestClient[Any]) -> None:
    email = new_email()
    registered = client.post("/auth/register", json=registration(email)).json()

    response = client.post("/auth/login", json={"email": email.upper(), "password": PASSWORD})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organizations"] == [
        {"id": registered["organization_id"], "name": "Padaria", "role": "admin"}
    ]
    assert body["organization_id"] == registered["organization_id"]
    headers = auth(body["access_token"], registered["organization_id"])
    assert client.get("/crm/leads", headers=headers).status_code == 200


def test_wrong_credentials_are_401(client: TestClient[Any]) -> None:
    email = new_email()
    client.post("/auth/register", json=registration(email))

    wrong = client.post("/auth/login", json={"email": email, "password": "wrong password"})
    unknown = client.post("/auth/login", json={"email": new_email(), "password": PASSWORD})
    foreign_org = client.post(
        "/auth/login",
        json={"email": email, "password": PASSWORD, "organization_id": str(uuid4())},
    )

    for response in (wrong, unknown, foreign_org):
        assert "access_token" not in assert_problem(response, 401)
    assert_problem(client.post("/auth/login", json={"email": email}), 400)
    assert_problem(client.post("/auth/login", json={"email": 1, "password": PASSWORD}), 400)


@cheap
def test_every_guarded_route_is_401_without_valid_credentials(client: TestClient[Any]) -> None:
    acme = register(client)
    lead, stage = some_ids(acme)
    now = datetime.now(UTC)
    claims = {"sub": acme.user_id, "org": acme.organization_id}
    expired = jwt.encode(claims | {"exp": now - timedelta(minutes=1)}, SECRET, "HS256")
    forged = jwt.encode(claims | {"exp": now + timedelta(hours=1)}, "x" * 40, "HS256")
    no_expiry = jwt.encode(claims, SECRET, "HS256")
    later = {"exp": now + timedelta(hours=1)}
    no_org = jwt.encode({"sub": acme.user_id} | later, SECRET, "HS256")
    not_ids = jwt.encode({"sub": "me", "org": "acme"} | later, SECRET, "HS256")
    unsigned = (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
            for part in (
                {"alg": "none", "typ": "JWT"},
                claims | {"exp": int(now.timestamp()) + 600},
            )
        )
        + "."
    )
    org = {"X-Org-Id": acme.organization_id}
    credentials: list[dict[str, str]] = [
        org,
        org | {"Authorization": "Bearer"},
        org | {"Authorization": "Bearer not.a.token"},
        org | {"Authorization": f"Basic {acme.token}"},
        org | {"Authorization": f"Bearer {expired}"},
        org | {"Authorization": f"Bearer {forged}"},
        org | {"Authorization": f"Bearer {no_expiry}"},
        org | {"Authorization": f"Bearer {no_org}"},
        org | {"Authorization": f"Bearer {not_ids}"},
        org | {"Authorization": f"Bearer {unsigned}"},
    ]
    for route in GUARDED_ROUTES:
        for headers in credentials:
            response = route.send(client, headers, lead, stage)
            assert_problem(response, 401)
    assert acme.get(f"/crm/leads/{lead}").json()["version"] == 1


@cheap
def test_every_guarded_route_is_403_for_a_missing_bad_or_foreign_org_header(
    client: TestClient[Any],
) -> None:
    acme, other = register(client), register(client, "Other")
    lead, stage = some_ids(acme)
    bearer = {"Authorization": f"Bearer {acme.token}"}
    org_headers: list[dict[str, str]] = [
        {},
        {"X-Org-Id": ""},
        {"X-Org-Id": "acme"},
        {"X-Org-Id": str(uuid4())},
        {"X-Org-Id": other.organization_id},
    ]
    for route in GUARDED_ROUTES:
        for org in org_headers:
            assert_problem(route.send(client, bearer | org, lead, stage), 403)
    assert acme.get(f"/crm/leads/{lead}").json()["version"] == 1


@cheap
def test_a_viewer_reads_everything_a_member_may_read_and_writes_nothing(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    lead, stage = some_ids(acme)
    viewer = add_member(services, acme, "viewer")
    acme.position = max(acme.position, viewer.position)
    before = acme.get("/audit/events").json()["items"]

    for route in GUARDED_ROUTES:
        response = route.send(client, viewer.headers, lead, stage)
        if route.writes or route.path.startswith("/audit"):
            assert_problem(response, 403)
        else:
            assert response.status_code == 200, (str(route), response.text)

    # each refusal is recorded as a security incident; nothing else may be written
    after = acme.get("/audit/events", params={"limit": 200}).json()["items"]
    assert [r for r in after if r["aggregate_type"] != "SecurityIncident"] == before


@cheap
def test_sales_writes_leads_but_neither_stages_nor_the_audit_trail(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    stages = acme.stages()

    lead = seller.capture(assigned_to=seller.user_id)  # sales capture leads for themselves
    moved = seller.patch(f"/crm/leads/{lead['id']}/stage", json={"stage_id": stages[1]["id"]})
    assert moved.status_code == 200, moved.text
    assert seller.post(f"/crm/leads/{lead['id']}/notes", json={"text": "hi"}).status_code == 201
    assert seller.get("/crm/pipeline/board").status_code == 200

    forbidden = [
        seller.post("/crm/pipeline/stages", json={"name": "X", "color": "#000000"}),
        seller.put(f"/crm/pipeline/stages/{stages[0]['id']}", json={"name": "Mine"}),
        seller.put("/crm/pipeline/stages/order", json={"stage_ids": [s["id"] for s in stages]}),
        seller.delete(f"/crm/pipeline/stages/{stages[2]['id']}"),
        seller.get("/audit/events"),
    ]
    for response in forbidden:
        assert_problem(response, 403)
    assert [s["name"] for s in acme.stages()] == [s["name"] for s in stages]


@cheap
def test_a_member_removed_from_the_organization_is_403_at_once(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    manager = add_member(services, acme, "manager")
    assert manager.get("/crm/leads").status_code == 200

    org_id = UUID(acme.organization_id)
    org = services.app.load(Organization, org_id, org_id)
    org.remove_member(UUID(manager.user_id), actor=Actor("user", "test"))
    services.app.commit(org)

    assert_problem(manager.get("/crm/leads"), 403)
    assert_problem(manager.post("/crm/leads", json={"full_name": "X"}), 403)


@cheap
def test_a_token_for_an_organization_that_does_not_exist_is_403(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    ghost = uuid4()
    token = services.tokens.issue(UUID(acme.user_id), ghost)

    assert_problem(client.get("/crm/leads", headers=auth(token, str(ghost))), 403)


def test_auth_routes_refuse_a_body_that_is_not_a_json_object(client: TestClient[Any]) -> None:
    for path in ("/auth/register", "/auth/login"):
        for content in (b"", b"not json", b"\xff\xfe", b"null", b"[]", b"{}", b'"x"'):
            response = client.post(
                path, content=content, headers={"content-type": "application/json"}
            )
            assert response.status_code in (400, 422), (path, content, response.text)
            assert_problem(response, response.status_code)


def test_a_member_of_two_organizations_logs_in_to_either(
    client: TestClient[Any], services: Services
) -> None:
    email = new_email()
    first = client.post("/auth/register", json=registration(email)).json()
    second = register(client, "Second")
    org_id = UUID(second.organization_id)
    org = services.app.load(Organization, org_id, org_id)
    org.add_member(UUID(first["user_id"]), Role.SALES, actor=Actor("user", "test"))
    services.app.commit(org)

    default = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    chosen = client.post(
        "/auth/login",
        json={"email": email, "password": PASSWORD, "organization_id": second.organization_id},
    ).json()

    roles = {(o["id"], o["role"]) for o in default["organizations"]}
    assert roles == {(first["organization_id"], "admin"), (second.organization_id, "sales")}
    assert default["organization_id"] == first["organization_id"]
    assert chosen["organization_id"] == second.organization_id
    token = chosen["access_token"]
    assert client.get("/crm/leads", headers=auth(token, second.organization_id)).status_code == 200
    assert_problem(client.get("/crm/leads", headers=auth(token, first["organization_id"])), 403)


def test_two_concurrent_registrations_of_one_email_make_one_account(
    client: TestClient[Any], services: Services
) -> None:
    email = new_email()
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def register_as(i: int) -> None:
        barrier.wait()
        body = registration(email, organization_name=f"Org {i}")
        results[i] = client.post("/auth/register", json=body)

    threads = [threading.Thread(target=register_as, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
    assert_problem(next(r for r in results if r.status_code == 409), 409)
    login = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert len(login.json()["organizations"]) == 1
