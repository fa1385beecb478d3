"""Schemathesis against /schema with valid credentials: no generated request gets a 5xx.

Every operation of the OpenAPI document, a few generated examples each (bounded so `make test`
stays fast), on both backends.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from tests.support.api import register

EXAMPLES = 8


def test_no_generated_request_gets_a_server_error(client: TestClient[Any]) -> None:
    acme = register(client, "Schema")
    acme.capture(full_name="Existing lead")
    headers = {"Authorization": f"Bearer {acme.token}", "X-Org-Id": acme.organization_id}
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", client.app)
    failures: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers={**(case.headers or {}), **headers})
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")

        run()
    assert not failures, failures
    assert len(statuses) >= len(operations) * 2
    assert any(200 <= s < 300 for s in statuses)  # credentials work: not everything is refused
