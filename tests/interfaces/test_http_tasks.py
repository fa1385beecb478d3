"""Every task route, through HTTP, on both backends: writes, reads, my day, the lead's
timeline, bad input, another organization's ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
SOON = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)


def create(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"title": "Call back", "due_at": SOON.isoformat()} | fields
    response = tenant.post("/crm/tasks", json=body)
    assert response.status_code == 201, response.text
    written: dict[str, Any] = response.json()
    return written


def task_of(tenant: Tenant, task_id: str) -> dict[str, Any]:
    response = tenant.get(f"/crm/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = tenant.get("/crm/tasks", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_created_task_reads_back_for_its_creator_with_its_fields(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    lead = acme.capture()["id"]
    written = create(acme, notes=" ring at 3 ", lead_id=lead, priority="high", kind="call")

    assert written.keys() == {"id", "version", "position"} and written["version"] == 1
    task = task_of(acme, written["id"])
    assert (task["title"], task["notes"], task["priority"], task["kind"]) == (
        "Call back",
        "ring at 3",
        "high",
        "call",
    )
    assert task["assignee_id"] == acme.user_id == task["created_by"]
    assert (task["lead_id"], task["status"], task["version"]) == (lead, "open", 1)
    assert datetime.fromisoformat(task["due_at"]) == SOON
    assert [t["id"] for t in listed(acme)] == [written["id"]]


def test_edit_complete_reopen_and_cancel_move_a_task_through_its_life(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    sales = add_member(services, acme, "sales")
    acme.position = sales.position
    task = create(acme)["id"]

    later = SOON + timedelta(hours=1)
    edited = acme.patch(
        f"/crm/tasks/{task}",
        json={"title": "Call again", "due_at": later.isoformat(), "assignee_id": sales.user_id},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 3  # an edit, then a reassignment
    found = task_of(acme, task)
    assert (found["title"], found["assignee_id"]) == ("Call again", sales.user_id)
    assert datetime.fromisoformat(found["due_at"]) == later

    for verb, status in (("complete", "completed"), ("reopen", "open"), ("cancel", "cancelled")):
        response = acme.post(f"/crm/tasks/{task}/{verb}")
        assert response.status_code == 200, response.text
        assert task_of(acme, task)["status"] == status
    assert task_of(acme, task)["closed_at"] is not None


def test_a_stale_expected_version_and_a_change_of_a_closed_task_are_conflicts(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    task = create(acme)["id"]
    head = services.app.recorder.max_notification_id()

    stale = acme.patch(f"/crm/tasks/{task}", json={"title": "x", "expected_version": 7})
    assert assert_problem(stale, 409)["current_version"] == 1
    assert acme.post(f"/crm/tasks/{task}/complete").status_code == 200
    head = services.app.recorder.max_notification_id()
    for response in (
        acme.patch(f"/crm/tasks/{task}", json={"title": "x"}),
        acme.post(f"/crm/tasks/{task}/complete"),
        acme.post(f"/crm/tasks/{task}/cancel"),
    ):
        assert_problem(response, 409)
    assert services.app.recorder.max_notification_id() == head
    assert_problem(acme.post(f"/crm/tasks/{create(acme)['id']}/reopen"), 409)  # open already
    ok = acme.patch(f"/crm/tasks/{task}", json={"title": "x", "expected_version": 2})
    assert_problem(ok, 409)  # right version, but closed: reopen first


def test_bad_input_is_refused_with_a_problem_and_nothing_is_written(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    task = create(acme)["id"]
    head = services.app.recorder.max_notification_id()
    due = SOON.isoformat()
    bad_creates: list[Any] = [
        {},
        {"title": "x"},
        {"due_at": due},
        {"title": " ", "due_at": due},
        {"title": "x" * 201, "due_at": due},
        {"title": "x", "due_at": "tomorrow"},
        {"title": "x", "due_at": "2026-12-07T10:00:00"},  # no offset
        {"title": "x", "due_at": "0001-01-01T00:00:00+14:00"},
        {"title": "x", "due_at": due, "priority": "asap"},
        {"title": "x", "due_at": due, "kind": "fax"},
        {"title": "x", "due_at": due, "status": "completed"},
        {"title": "x", "due_at": due, "assignee_id": "me"},
        [],
    ]
    for body in bad_creates:
        response = acme.post("/crm/tasks", json=body)
        assert response.status_code in (400, 422), (body, response.text)
        assert_problem(response, response.status_code)
    for body in ({"title": ""}, {"due_at": None}, {"priority": "x"}, {"version": 1}):
        response = acme.patch(f"/crm/tasks/{task}", json=body)
        assert response.status_code in (400, 422), (body, response.text)
    for params in (
        {"status": "done"},
        {"due": "tomorrow"},
        {"assignee": "someone"},
        {"due_before": "soon"},
        {"cursor": "nonsense"},
        {"limit": 0},
    ):
        response = acme.get("/crm/tasks", params=params)
        assert response.status_code in (400, 422), (params, response.text)
        assert_problem(response, response.status_code)
    assert services.app.recorder.max_notification_id() == head


def test_the_list_filters_and_pages_in_due_time_order(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    sales = add_member(services, acme, "sales")
    acme.position = sales.position
    lead = acme.capture()["id"]
    ids = [
        create(acme, title=f"T{i}", due_at=(SOON + timedelta(hours=5 - i)).isoformat())["id"]
        for i in range(5)
    ]
    theirs = create(acme, assignee_id=sales.user_id, lead_id=lead, due_at=SOON.isoformat())["id"]
    acme.post(f"/crm/tasks/{ids[0]}/complete")

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = acme.get("/crm/tasks", params=params).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[-5:] == ids[::-1] and set(seen) == {*ids, theirs}
    assert [t["id"] for t in listed(acme, assignee=sales.user_id)] == [theirs]
    assert [t["id"] for t in listed(acme, lead_id=lead)] == [theirs]
    sales.position = acme.position
    assert [t["id"] for t in listed(sales, assignee="me")] == [theirs]
    assert [t["id"] for t in listed(acme, status="completed")] == [ids[0]]
    window = {"due_after": (SOON + timedelta(hours=2)).isoformat()}
    window["due_before"] = (SOON + timedelta(hours=4)).isoformat()
    assert [t["id"] for t in listed(acme, **window)] == [ids[3], ids[2]]


def test_my_day_is_the_members_own_local_day_across_a_time_zone_boundary(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    # the organization works far east; one member lives far west and says so
    assert acme.put("/organizations/current", json={"timezone": "Pacific/Kiritimati"}).is_success
    west = add_member(services, acme, "sales")
    assert west.put("/users/preferences", json={"timezone": "Pacific/Pago_Pago"}).is_success
    east = acme
    for tenant, zone_name in ((east, "Pacific/Kiritimati"), (west, "Pacific/Pago_Pago")):
        zone = ZoneInfo(zone_name)
        today = datetime.now(zone).date()
        local = datetime(today.year, today.month, today.day, tzinfo=zone)
        tenant.position = max(east.position, west.position)
        due = {
            "start": local,
            "end": local + timedelta(days=1) - timedelta(seconds=1),
            "yesterday": local - timedelta(seconds=1),
            "tomorrow": local + timedelta(days=1),
        }
        made = {k: create(tenant, title=k, due_at=at.isoformat())["id"] for k, at in due.items()}
        mine = listed(tenant, assignee="me", due="today")
        assert [t["id"] for t in mine] == [made["start"], made["end"]], zone_name
    # the same tasks of the west member, seen through the east member's day (25 hours ahead):
    # their local day's first or last hour falls outside it
    seen_from_east = {t["title"] for t in listed(east, assignee=west.user_id, due="today")}
    assert seen_from_east in ({"start", "yesterday"}, {"end"})


def test_a_lead_timeline_shows_its_tasks(client: TestClient[Any]) -> None:
    acme = register(client)
    lead, other = acme.capture()["id"], acme.capture()["id"]
    task = create(acme, lead_id=lead, title="Send the quote")["id"]
    acme.post(f"/crm/tasks/{task}/complete")
    acme.post(f"/crm/tasks/{task}/reopen")
    acme.patch(f"/crm/tasks/{task}", json={"lead_id": other})
    acme.post(f"/crm/tasks/{task}/cancel")
    create(acme, title="About nobody")

    def kinds(lead_id: str) -> list[str]:
        page = acme.get(f"/crm/leads/{lead_id}/activities").json()
        return [a["activity_type"] for a in page["items"] if a["activity_type"].startswith("task")]

    assert kinds(lead) == ["task_reopened", "task_completed", "task_created"]
    assert kinds(other) == ["task_cancelled", "task_edited"]
    first = acme.get(f"/crm/leads/{lead}/activities").json()["items"][-2]
    assert first["data"]["task_id"] == task and first["data"]["title"] == "Send the quote"


def test_sales_create_only_their_own_tasks_and_change_only_theirs(
    client: TestClient[Any], services: Services
) -> None:
    admin = register(client)
    sales = add_member(services, admin, "sales")
    other = add_member(services, admin, "sales")
    for t in (admin, sales, other):
        t.position = other.position
    assert_problem(sales.post("/crm/tasks", json=_body(assignee_id=other.user_id)), 403)
    own = create(sales)["id"]
    given = create(admin, assignee_id=sales.user_id)["id"]
    elses = create(admin, assignee_id=other.user_id)["id"]
    sales.position = admin.position
    assert sales.post(f"/crm/tasks/{own}/complete").status_code == 200
    assert sales.patch(f"/crm/tasks/{given}", json={"title": "Mine"}).status_code == 200
    for response in (
        sales.patch(f"/crm/tasks/{elses}", json={"title": "Not mine"}),
        sales.post(f"/crm/tasks/{elses}/complete"),
        sales.patch(f"/crm/tasks/{given}", json={"assignee_id": other.user_id}),
    ):
        assert_problem(response, 403)
    assert task_of(sales, elses)["title"] == "Call back"  # reading is for everyone


def test_a_viewer_reads_tasks_and_changes_none(client: TestClient[Any], services: Services) -> None:
    admin = register(client)
    viewer = add_member(services, admin, "viewer")
    task = create(admin)["id"]
    viewer.position = admin.position
    assert task_of(viewer, task)["id"] == task and listed(viewer)
    for response in (
        viewer.post("/crm/tasks", json=_body()),
        viewer.patch(f"/crm/tasks/{task}", json={"title": "x"}),
        viewer.post(f"/crm/tasks/{task}/complete"),
        viewer.post(f"/crm/tasks/{task}/reopen"),
        viewer.post(f"/crm/tasks/{task}/cancel"),
    ):
        assert_problem(response, 403)


def _body(**fields: Any) -> dict[str, Any]:
    return {"title": "Call back", "due_at": SOON.isoformat()} | fields


def test_another_organizations_task_lead_and_member_are_not_found_and_audited(
    client: TestClient[Any], services: Services
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    task = create(acme, title="Acme secret")["id"]
    lead = acme.capture()["id"]
    own = create(rival)["id"]
    before = task_of(acme, task)

    attempts = [
        rival.get(f"/crm/tasks/{task}"),
        rival.patch(f"/crm/tasks/{task}", json={"title": "pwned"}),
        rival.post(f"/crm/tasks/{task}/complete"),
        rival.post(f"/crm/tasks/{task}/reopen"),
        rival.post(f"/crm/tasks/{task}/cancel"),
        rival.post("/crm/tasks", json=_body(lead_id=lead)),
        rival.post("/crm/tasks", json=_body(assignee_id=acme.user_id)),
        rival.patch(f"/crm/tasks/{own}", json={"lead_id": lead}),
        rival.patch(f"/crm/tasks/{own}", json={"assignee_id": acme.user_id}),
    ]
    for response in attempts:
        assert_problem(response, 404)
        assert "Acme" not in response.text
    assert listed(rival) == [task_of(rival, own)]
    assert not any(task in r.text for r in (rival.get("/crm/tasks", params={"limit": 200}),))

    acme.position = rival.position = services.app.recorder.max_notification_id()
    assert task_of(acme, task) == before
    rows = acme.get(
        "/audit/events", params={"event_type": "SecurityIncident.Recorded", "limit": 200}
    ).json()["items"]
    victim = {(r["changes"]["details"]["after"]["resource_id"]) for r in rows}
    assert {task, lead} <= victim
    assert all(r["changes"]["kind"]["after"] == "cross_organization_attempt" for r in rows)
    mine = rival.get(
        "/audit/events", params={"event_type": "SecurityIncident.Recorded", "limit": 200}
    ).json()["items"]
    assert len(mine) == len(attempts)
    assert {r["changes"]["kind"]["after"] for r in mine} == {"unknown_id_requested"}


def test_an_unknown_task_is_not_found(client: TestClient[Any]) -> None:
    acme = register(client)
    assert_problem(acme.get(f"/crm/tasks/{uuid4()}"), 404)
    assert_problem(acme.post(f"/crm/tasks/{uuid4()}/complete"), 404)


def test_an_api_key_names_the_assignee_and_has_no_day_of_its_own(client: TestClient[Any]) -> None:
    acme = register(client)
    made = acme.post("/api-keys", json={"name": "k", "scopes": ["tasks:read", "tasks:write"]})
    key = {"X-API-Key": made.json()["key"]}

    def as_key(method: str, path: str, **kw: Any) -> Any:
        return client.request(method, path, headers=key | {"X-Org-Id": acme.organization_id}, **kw)

    assert_problem(as_key("POST", "/crm/tasks", json=_body()), 422)  # for whom?
    created = as_key("POST", "/crm/tasks", json=_body(assignee_id=acme.user_id))
    assert created.status_code == 201, created.text
    assert_problem(as_key("GET", "/crm/tasks", params={"assignee": "me"}), 422)
    acme.position = created.json()["position"]
    task = task_of(acme, created.json()["id"])
    assert (task["assignee_id"], task["created_by"]) == (acme.user_id, None)
