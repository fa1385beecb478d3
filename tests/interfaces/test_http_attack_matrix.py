"""The attack matrix: every role of one organization against every route of the OpenAPI
document, with another organization's ids in the path, the body or the X-Org-Id header.

Never a 2xx that reads or changes the other organization's data: the answer is 403 or 404, the
victim's data is unchanged, and the attempt is in the victim's audit trail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from tests.support.api import Tenant, add_member, cheap_hashing, register, talk_to  # noqa: F401

pytestmark = pytest.mark.usefixtures("cheap_hashing")

ROLES = ["admin", "manager", "sales", "viewer"]
PREFIXES = (
    "/crm",
    "/audit",
    "/organizations",
    "/api-keys",
    "/users",
    "/integrations",
    "/analytics",
    "/privacy",
)
INCIDENT = "SecurityIncident.Recorded"
# routes about the caller's own account, not an organization's data: X-Org-Id plays no part
USER_LEVEL = ("/users", "/organizations/switch", "/organizations/invitations/accept")


# a valid body for each route with an id that takes one, so the refusal comes from the id
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/crm/leads/{lead_id}"): {"company": "Taken over"},
    ("PATCH", "/crm/leads/{lead_id}/stage"): {"stage_id": "{stage_id}"},
    ("PUT", "/crm/leads/{lead_id}/assign"): {"user_id": None},
    ("POST", "/crm/leads/{lead_id}/notes"): {"text": "intrusion"},
    ("PUT", "/crm/pipeline/stages/{stage_id}"): {"name": "Renamed"},
    ("PUT", "/organizations/members/{user_id}/role"): {"role": "admin"},
    ("PUT", "/api-keys/{key_id}/scopes"): {"scopes": ["leads:read", "leads:write"]},
    ("POST", "/crm/leads/{lead_id}/messages"): {"text": "intrusion"},
    ("POST", "/crm/leads/{lead_id}/calls"): {},
    ("POST", "/crm/conversations/{conversation_id}/handoff"): {"user_id": None},
    ("POST", "/crm/conversations/{conversation_id}/close"): None,
    ("PATCH", "/crm/tasks/{task_id}"): {"title": "Taken over"},
    ("PUT", "/crm/templates/{template_id}"): {"name": "Taken over"},
    ("POST", "/crm/templates/{template_id}/use"): {"lead_id": "{lead_id}"},
    ("PUT", "/crm/assignment-rules/{rule_id}"): {
        "name": "Taken over",
        "strategy": "round_robin",
        "members": ["00000000-0000-4000-8000-000000000001"],
    },
}
BODILESS_TASK_VERBS = {
    ("POST", f"/crm/tasks/{{task_id}}/{v}") for v in ("complete", "reopen", "cancel")
}


@dataclass
class Scene:
    client: TestClient[Any]
    acme: Tenant
    attackers: dict[str, Tenant]
    ids: dict[str, str]
    operations: list[tuple[str, str]]

    def foreign_path(self, template: str) -> str:
        return re.sub(
            r"\{(\w+)\}", lambda m: self.ids.get(m.group(1), self.ids["lead_id"]), template
        )

    def foreign_body(self) -> dict[str, Any]:
        """A body whose every id field names one of acme's resources."""
        return {
            "stage_id": self.ids["stage_id"],
            "user_id": self.ids["user_id"],
            "assigned_to": self.ids["user_id"],
            "stage_ids": [self.ids["stage_id"]],
            "organization_id": self.acme.organization_id,
            "full_name": "Intruder",
            "text": "intrusion",
            "expected_version": 1,
        }

    def acme_state(self) -> Any:
        acme = self.acme
        lead = self.ids["lead_id"]
        audit: list[dict[str, Any]] = []
        cursor = None
        while True:  # every page: the refused attempts add incidents between the checks
            params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
            page = acme.get("/audit/events", params=params).json()
            audit += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return (
            acme.get(f"/crm/leads/{lead}").json(),
            acme.get(f"/crm/leads/{lead}/history").json(),
            acme.get("/crm/pipeline/board").json(),
            acme.get("/organizations/current/members").json(),
            acme.get("/api-keys").json(),
            acme.get(f"/crm/tasks/{self.ids['task_id']}").json(),
            acme.get("/crm/templates").json(),
            acme.get("/crm/assignment-rules").json(),
            [row for row in audit if row["event_type"] != INCIDENT],
        )

    def incidents(self) -> int:
        head = self.client.app.state.services.app.recorder.max_notification_id()
        count, cursor = 0, None
        while True:  # every page: there are more attempts than one page holds
            params: dict[str, Any] = {"event_type": INCIDENT, "limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = self.acme.get(
                "/audit/events", params=params, headers={"X-Min-Position": str(head)}
            ).json()
            count += len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return count


@pytest.fixture
def scene(client: TestClient[Any], services: Any) -> Scene:
    acme = register(client, "Acme")
    lead = acme.capture(full_name="Acme secret", company="Acme Co")["id"]
    member = add_member(services, acme, "sales", name="Acme seller")
    key = acme.post("/api-keys", json={"name": "acme", "scopes": ["leads:read"]}).json()
    rule = {"name": "Acme rule", "strategy": "member", "members": [member.user_id]}
    rule_id = acme.post("/crm/assignment-rules", json=rule).json()["id"]
    rival = register(client, "Rival")
    attackers = {"admin": rival} | {
        role: add_member(services, rival, role, name=f"Rival {role}") for role in ROLES[1:]
    }
    spec = client.get("/schema/openapi.json").json()
    operations = [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith(PREFIXES)
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
        and (method, path) != ("delete", "/users/me")  # closing one's own account is no attack
    ]
    conversation, call = talk_to(services, acme, lead, text="Acme secret")
    task = acme.post(
        "/crm/tasks", json={"title": "Acme secret", "due_at": "2030-01-01T09:00:00Z"}
    ).json()["id"]
    template = acme.post(
        "/crm/templates", json={"name": "Acme secret", "body": "Hi {{lead.full_name}}"}
    ).json()["id"]
    ids = {
        "template_id": template,
        "task_id": task,
        "conversation_id": conversation,
        "call_id": call,
        "lead_id": lead,
        "stage_id": acme.stages()[1]["id"],
        "user_id": member.user_id,
        "key_id": key["id"],
        "rule_id": rule_id,
        "aggregate_id": lead,
        "id": lead,
    }
    return Scene(client, acme, attackers, ids, operations)


def attack(scene: Scene, role: str, operation: tuple[str, str], where: str) -> Any:
    method, template = operation
    attacker = scene.attackers[role]
    headers = {"Authorization": f"Bearer {attacker.token}", "X-Org-Id": attacker.organization_id}
    path = template
    body = None
    if where == "path":
        path = scene.foreign_path(template)
        body = VALID_BODIES.get(operation)
        if body is not None and "stage_id" in body:
            body = {"stage_id": scene.ids["stage_id"]}
        if body is not None and "lead_id" in body:
            body = {"lead_id": scene.ids["lead_id"]}
    else:
        path = re.sub(r"\{\w+\}", "00000000-0000-4000-8000-000000000000", template)
    if where == "header":
        headers["X-Org-Id"] = scene.acme.organization_id
    if where == "body" and method in ("POST", "PUT", "PATCH"):
        body = scene.foreign_body()
    return scene.client.request(method, path, headers=headers, json=body)


def check(scene: Scene, role: str, operation: tuple[str, str], where: str) -> None:
    response = attack(scene, role, operation, where)
    text = response.text
    assert "Acme secret" not in text and "Acme seller" not in text, (role, operation, where)
    if where == "header" and not operation[1].startswith(USER_LEVEL):
        assert response.status_code == 403, (role, operation, response.status_code, text)
    elif where == "header":
        assert scene.acme.organization_id not in text, (role, operation, text)
    elif where == "path" and "{" in operation[1]:
        assert response.status_code in (403, 404), (role, operation, response.status_code, text)
    else:  # acme's ids in the body of a request on the attacker's own organization
        assert response.status_code >= 400 or scene.acme.organization_id not in text, (
            role,
            operation,
            where,
        )


def test_every_role_on_every_route_with_foreign_ids_in_the_path_or_header_is_refused_and_audited(
    scene: Scene,
) -> None:
    before = scene.acme_state()
    incidents = scene.incidents()
    id_operations = [op for op in scene.operations if "{" in op[1]]
    assert len(id_operations) >= 15
    writes = {op for op in id_operations if op[0] in ("POST", "PUT", "PATCH")}
    bodiless = {("POST", p) for p in ("/crm/leads/{lead_id}/won", "/crm/leads/{lead_id}/lost")}
    bodiless |= {("POST", "/crm/leads/{lead_id}/reopen")}
    bodiless |= BODILESS_TASK_VERBS
    assert writes - bodiless <= VALID_BODIES.keys(), "a new route needs a valid body here"
    for role in ROLES:
        for operation in scene.operations:
            check(scene, role, operation, "header")
        for operation in id_operations:
            check(scene, role, operation, "path")
    assert scene.acme_state() == before
    # one record per refused attempt that reached acme: the header ones at least, per role
    tenant_routes = [op for op in scene.operations if not op[1].startswith(USER_LEVEL)]
    assert scene.incidents() >= incidents + len(ROLES) * len(tenant_routes)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_any_role_any_route_any_placement_of_foreign_ids_never_touches_the_victim(
    scene: Scene, data: st.DataObject
) -> None:
    before = scene.acme_state()
    role = data.draw(st.sampled_from(ROLES))
    operation = data.draw(st.sampled_from(scene.operations))
    where = data.draw(st.sampled_from(["path", "body", "header"]))
    check(scene, role, operation, where)
    assert scene.acme_state() == before


def test_the_past_of_each_kind_of_the_victims_aggregates_is_refused_to_every_role(
    scene: Scene,
) -> None:
    """`/audit/aggregates/{id}` takes any aggregate id: each kind of acme's, at any version or
    time, is 403 for roles without the permission and 404 for the rival's admin (audited in
    acme's trail) whatever the selectors ask, never a word of its state."""
    acme = scene.acme
    before = scene.acme_state()
    incidents = scene.incidents()
    pipeline = acme.get(f"/audit/aggregates/{scene.ids['lead_id']}").json()["state"]["pipeline_id"]
    targets = [acme.organization_id, pipeline]
    targets += [scene.ids[k] for k in ("lead_id", "conversation_id", "call_id")]
    selectors: list[dict[str, str]] = [{}, {"version": "1"}, {"version": "99"}]
    selectors += [{"at": "2000-01-01T00:00:00Z"}, {"version": "1", "at": "2000-01-01"}]
    for role in ROLES:
        for target in targets:
            for params in selectors:
                response = scene.attackers[role].get(f"/audit/aggregates/{target}", params=params)
                expected = 404 if role == "admin" else 403
                assert response.status_code == expected, (role, target, params, response.text)
                assert "Acme" not in response.text and "pipeline_id" not in response.text
    assert scene.acme_state() == before
    assert scene.incidents() == incidents + len(targets) * len(selectors)
