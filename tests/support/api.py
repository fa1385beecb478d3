"""A small HTTP-level helper: register organizations and call the API as their users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from litestar.testing import TestClient


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
            "password": "correct horse battery",
            "full_name": "Owner " + name,
            "organization_name": name,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    tenant = Tenant(client, body["organization_id"], body["user_id"], body["access_token"])
    tenant.position = body["position"]
    return tenant
