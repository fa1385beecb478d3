"""Read-your-writes through X-Min-Position, stale answers, and optimistic concurrency over HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.services import build_services
from tests.conftest import settings_for
from tests.support.api import (
    Tenant,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

READS = [
    "/crm/leads",
    "/crm/leads/{lead}",
    "/crm/leads/{lead}/activities",
    "/crm/pipeline/stages",
    "/crm/pipeline/board",
    "/audit/events",
]

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def impatient_client(database_url: str) -> Iterator[TestClient[Any]]:
    """A server whose reads wait at most 0.2 s for the projectors."""
    services = build_services(settings_for(database_url, CRM_READ_WAIT_SECONDS="0.2"))
    try:
        with TestClient(create_app(services, own_services=False)) as client:
            yield client
    finally:
        services.close()


def test_a_commands_position_makes_the_next_read_include_the_write(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()

    for i in range(5):
        lead = acme.capture(full_name=f"Fresh {i}")
        headers = {"X-Min-Position": str(lead["position"])}
        got = acme.get(f"/crm/leads/{lead['id']}", headers=headers)
        assert got.status_code == 200, got.text
        assert "x-stale" not in got.headers
        moved = acme.patch(
            f"/crm/leads/{lead['id']}/stage",
            json={"stage_id": stages[1 + i % 3]["id"], "expected_version": 1},
        )
        headers = {"X-Min-Position": str(moved.json()["position"])}
        board = acme.get("/crm/pipeline/board", headers=headers).json()
        column = next(s for s in board["stages"] if s["id"] == stages[1 + i % 3]["id"])
        assert lead["id"] in {c["id"] for c in column["leads"]}
        timeline = acme.get(f"/crm/leads/{lead['id']}/activities", headers=headers).json()
        assert [a["version"] for a in timeline["items"]] == [2, 1]
        audit = acme.get("/audit/events", headers=headers, params={"limit": 1}).json()
        assert audit["items"][0]["position"] == moved.json()["position"]


def test_a_position_beyond_the_head_answers_what_it_has_marked_stale(
    impatient_client: TestClient[Any],
) -> None:
    acme = register(impatient_client)
    lead = acme.capture()["id"]
    acme.get("/crm/leads")

    for path in READS:
        started = time.monotonic()
        response = acme.get(path.format(lead=lead), headers={"X-Min-Position": str(10**9)})
        assert response.status_code == 200, (path, response.text)
        assert response.headers.get("x-stale") == "true", path
        assert time.monotonic() - started < 2.5, path
    fresh = acme.get("/crm/leads")
    assert "x-stale" not in fresh.headers
    assert [item["id"] for item in fresh.json()["items"]] == [lead]


def test_a_malformed_min_position_is_400(client: TestClient[Any]) -> None:
    acme = register(client)
    lead = acme.capture()["id"]

    for value in ("abc", "-1", "1.5", "0x10", "1e3", b"\xb2"):
        for path in READS:
            response = acme.get(path.format(lead=lead), headers={"X-Min-Position": value})
            assert_problem(response, 400)


def race(tenant: Tenant, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    """Send the calls at the same moment from as many threads."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def send(i: int) -> None:
        method, path, body = calls[i]
        barrier.wait()
        results[i] = tenant.client.request(method, path, headers=tenant.headers, json=body)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_concurrent_moves_with_the_same_version_one_wins_one_conflicts(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()

    for _ in range(3):
        lead = acme.capture()
        path = f"/crm/leads/{lead['id']}/stage"
        one = {"stage_id": stages[1]["id"], "expected_version": 1}
        two = {"stage_id": stages[2]["id"], "expected_version": 1}
        results = race(acme, [("PATCH", path, one), ("PATCH", path, two)])

        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
        winner = next(r for r in results if r.status_code == 200)
        loser = next(r for r in results if r.status_code == 409)
        assert winner.json()["version"] == 2
        assert assert_problem(loser, 409)["current_version"] == 2
        acme.position = max(acme.position, winner.json()["position"])
        history = acme.get(f"/crm/leads/{lead['id']}/history").json()
        assert [e["version"] for e in history] == [1, 2]
        timeline = acme.get(f"/crm/leads/{lead['id']}/activities").json()["items"]
        assert [a["version"] for a in timeline] == [2, 1]


def test_concurrent_changes_to_different_leads_all_succeed(client: TestClient[Any]) -> None:
    acme = register(client)
    stage = acme.stages()[1]["id"]
    leads = [acme.capture()["id"] for _ in range(6)]

    results = race(
        acme,
        [
            ("PATCH", f"/crm/leads/{lead}/stage", {"stage_id": stage, "expected_version": 1})
            for lead in leads
        ],
    )

    assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
    acme.position = max(r.json()["position"] for r in results)
    board = acme.get("/crm/pipeline/board").json()
    assert board["stages"][1]["count"] == 6
