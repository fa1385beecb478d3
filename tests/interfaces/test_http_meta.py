"""The OpenAPI document, and the problem answers of routing itself (404, 405)."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.support.api import GUARDED_ROUTES, PROBLEM, assert_problem


def test_routing_errors_are_problems_too(client: TestClient[Any]) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.get("/crm"), 404)
    not_allowed = assert_problem(client.patch("/crm/leads"), 405)
    assert not_allowed["instance"] == "/crm/leads"
    assert "GET" in client.patch("/crm/leads").headers["allow"]


def operation(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    path = path.replace("{lead}", "{lead_id}").replace("{stage}", "{stage_id}")
    found: dict[str, Any] = schema["paths"][path.split("?")[0]][method.lower()]
    return found


def test_the_openapi_document_describes_every_route_and_its_problems(
    client: TestClient[Any],
) -> None:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    schema = response.json()
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= problem["properties"].keys()

    for route in GUARDED_ROUTES:
        responses = operation(schema, route.method, route.path)["responses"]
        expected = {"401", "403"} | ({"404"} if route.has_id else set())
        expected |= {"409"} if route.writes and route.method != "POST" else set()
        assert expected <= responses.keys(), (str(route), sorted(responses))
        for code, answer in responses.items():
            if code[0] in "45":
                assert list(answer["content"]) == [PROBLEM], (str(route), code)
                ref = answer["content"][PROBLEM]["schema"]["$ref"]
                assert ref == "#/components/schemas/Problem", (str(route), code)
    for path in ("/auth/register", "/auth/login"):
        assert "400" in operation(schema, "POST", path)["responses"]
