"""A small HTTP-level helper: register organizations and call the API as their users."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid4

import pytest
from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError
from litestar.testing import TestClient

from application.ports import UserRecord
from domain.call import Call
from domain.conversation import Conversation
from domain.organization import Organization
from domain.values import Actor, Role

PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"


@dataclass
class Tenant:
    client: TestClient[Any]
    organization_id: str
    user_id: str
    token: str
    position: int = 0
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "X-Org-Id": self.organization_id,
            "X-Min-Position": str(self.position),
        } | self.extra_headers

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = self.headers | kwargs.pop("headers", {})
        response = self.client.request(method, path, headers=headers, **kwargs)
        if response.status_code < 300 and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("position"), int):
                self.position = max(self.position, body["position"])
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.call("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.call("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)

    def capture(self, **fields: Any) -> dict[str, Any]:
        response = self.post("/crm/leads", json={"full_name": "Lead " + uuid4().hex[:6]} | fields)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def stages(self) -> list[dict[str, Any]]:
        response = self.get("/crm/pipeline/stages")
        assert response.status_code == 200, response.text
        stages: list[dict[str, Any]] = response.json()
        return stages


def register(client: TestClient[Any], name: str = "Acme") -> Tenant:
    email = f"{uuid4().hex[:10]}@example.com"
    response = client.post(
        "/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": "Owner " + name,
            "organization_name": name,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    tenant = Tenant(client, body["organization_id"], body["user_id"], body["access_token"])
    tenant.position = body["position"]
    return tenant


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; return its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "type" in body
    return body


def add_member(services: Any, owner: Tenant, role: str, *, name: str = "Member") -> Tenant:
    """A second user of `owner`'s organization with `role`, logged in with a fresh token.

    Goes through the Organization aggregate and the users port directly: the contract has no
    invitation route yet, and going around argon2 login keeps the suite fast.
    """
    org_id = UUID(owner.organization_id)
    user_id = uuid4()
    services.users.add(
        UserRecord(
            id=user_id,
            email=f"{uuid4().hex[:10]}@example.com",
            full_name=name,
            password_hash=_password_hash(services.hasher),
            created_at=datetime.now(UTC),
        )
    )
    org = services.app.load(Organization, org_id, org_id)
    org.add_member(user_id, Role(role), actor=Actor("user", "test"))
    position = services.app.commit(org)
    token = services.tokens.issue(user_id, org_id)
    return Tenant(owner.client, owner.organization_id, str(user_id), token, position)


@cache
def _hash_of(hasher_type: type, password: str) -> str:
    hasher: Any = hasher_type()
    digest: str = hasher.hash(password)
    return digest


def _password_hash(hasher: Any) -> str:
    # argon2 costs ~0.1 s a hash: members created by tests share one
    return _hash_of(type(hasher), PASSWORD)


@dataclass(frozen=True)
class Route:
    """One guarded route of the contract; `{lead}` / `{stage}` in the path are filled in."""

    method: str
    path: str
    body: Any = None
    writes: bool = False

    @property
    def has_id(self) -> bool:
        return "{" in self.path

    def url(self, lead: str = "", stage: str = "") -> str:
        return self.path.format(lead=lead, stage=stage)

    def send(
        self, client: TestClient[Any], headers: dict[str, str], lead: str = "", stage: str = ""
    ) -> Any:
        body = self.body(lead, stage) if callable(self.body) else self.body
        return client.request(self.method, self.url(lead, stage), headers=headers, json=body)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


GUARDED_ROUTES = [
    Route("GET", "/crm/leads"),
    Route("POST", "/crm/leads", {"full_name": "Someone"}, writes=True),
    Route("GET", "/crm/leads/{lead}"),
    Route("PUT", "/crm/leads/{lead}", {"company": "Changed Ltd"}, writes=True),
    Route("DELETE", "/crm/leads/{lead}", writes=True),
    Route("PATCH", "/crm/leads/{lead}/stage", lambda _l, s: {"stage_id": s}, writes=True),
    Route("PUT", "/crm/leads/{lead}/assign", {"user_id": None}, writes=True),
    Route("POST", "/crm/leads/{lead}/notes", {"text": "hello"}, writes=True),
    Route("POST", "/crm/leads/{lead}/won", writes=True),
    Route("POST", "/crm/leads/{lead}/lost", writes=True),
    Route("POST", "/crm/leads/{lead}/reopen", writes=True),
    Route("GET", "/crm/leads/{lead}/activities"),
    Route("GET", "/crm/leads/{lead}/history"),
    Route("GET", "/crm/leads/{lead}/history?at=2030-01-01T00:00:00Z"),
    Route("GET", "/crm/pipeline/stages"),
    Route("POST", "/crm/pipeline/stages", {"name": "Extra", "color": "#123456"}, writes=True),
    Route("PUT", "/crm/pipeline/stages/order", {"stage_ids": []}, writes=True),
    Route("PUT", "/crm/pipeline/stages/{stage}", {"name": "Renamed"}, writes=True),
    Route("DELETE", "/crm/pipeline/stages/{stage}", writes=True),
    Route("GET", "/crm/pipeline/board"),
    Route("GET", "/audit/events"),
    Route("GET", "/crm/leads/{lead}/messages"),
    Route("POST", "/crm/leads/{lead}/messages", {"text": "hello"}, writes=True),
    Route("POST", "/crm/leads/{lead}/calls", {}, writes=True),
    Route("GET", "/crm/conversations"),
    Route("GET", "/crm/calls"),
]
ID_ROUTES = [r for r in GUARDED_ROUTES if r.has_id]


class CheapHasher:
    """Argon2 at its lowest cost: the same algorithm and hash format, ~1 ms instead of ~100."""

    def __init__(self) -> None:
        self._argon = Argon2(time_cost=1, memory_cost=1024, parallelism=1)

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


@pytest.fixture
def cheap_hashing(services: Any) -> None:
    """For suites that register many organizations but do not test hashing itself."""
    services.hasher = CheapHasher()


def talk_to(services: Any, tenant: Tenant, lead: str, text: str = "hello") -> tuple[str, str]:
    """A conversation and a call of the lead, recorded as the webhooks would."""
    org = UUID(tenant.organization_id)
    actor = Actor(kind="provider", id="business_api")
    chat = Conversation.start(
        organization_id=org,
        lead_id=UUID(lead),
        channel="whatsapp",
        contact="+5511987654321",
        actor=actor,
    )
    chat.receive(
        provider_message_id="wamid.1",
        provider_type="business_api",
        text=text,
        sent_at=datetime.now(UTC),
        actor=actor,
    )
    call = Call.start(
        organization_id=org,
        lead_id=UUID(lead),
        direction="inbound",
        provider_type="twilio",
        from_number="+5511987654321",
        to_number="+14155552671",
        actor=actor,
    )
    call.progress("ringing", actor=actor, provider_event_id="cb-1")
    tenant.position = services.app.commit(chat, call)
    return str(chat.id), str(call.id)
