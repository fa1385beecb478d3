"""Cross-organization attempts are answered 404 like an unknown id. The victim's trail records
the attempt in full; the asker's own trail reads the same whether the id exists elsewhere or
nowhere, so it is no oracle of other organizations' ids."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from tests.support.api import Tenant, register

INCIDENT = "SecurityIncident.Recorded"


def incidents(tenant: Tenant) -> list[dict[str, Any]]:
    rows = tenant.get("/audit/events", params={"event_type": INCIDENT, "limit": 200})
    assert rows.status_code == 200, rows.text
    return [
        r["changes"]["details"]["after"] | {"kind": r["changes"]["kind"]["after"], "ip": r["ip"]}
        for r in rows.json()["items"]
    ]


def catch_up(client: TestClient[Any], *tenants: Tenant) -> int:
    head: int = client.app.state.services.app.recorder.max_notification_id()
    for tenant in tenants:
        tenant.position = head
    return head


def test_reading_or_changing_another_organizations_lead_is_404_and_audited_in_full_for_the_victim(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    acme = register(client, "Acme")
    rival = register(client, "Rival")
    lead = acme.capture()
    with caplog.at_level(logging.WARNING, logger="crm.http"):
        read = rival.get(f"/crm/leads/{lead['id']}")
        write = rival.post(f"/crm/leads/{lead['id']}/notes", json={"text": "hi"})
    # the server log names the asker, the owner and the id
    logged = [r.getMessage() for r in caplog.records if r.name == "crm.http"]
    assert len(logged) == 2
    for line in logged:
        assert rival.organization_id in line and acme.organization_id in line
        assert lead["id"] in line and rival.user_id in line
    assert (read.status_code, write.status_code) == (404, 404)
    unknown = rival.get("/crm/leads/00000000-0000-4000-8000-000000000001")
    assert unknown.status_code == 404
    assert read.json()["detail"].replace(lead["id"], "X") == unknown.json()["detail"].replace(
        "00000000-0000-4000-8000-000000000001", "X"
    )
    catch_up(client, acme, rival)
    seen = incidents(acme)
    assert {(i["kind"], i["method"], i["resource_id"]) for i in seen} == {
        ("cross_organization_attempt", "GET", lead["id"]),
        ("cross_organization_attempt", "POST", lead["id"]),
    }
    assert all(i["from_organization_id"] == rival.organization_id for i in seen)
    assert all(i["ip"] == "testclient" for i in seen)
    # the asker's admin sees that a member asked for ids that are not theirs, all three alike
    mine = incidents(rival)
    assert [(i["kind"], i["method"]) for i in mine] == [
        ("unknown_id_requested", "GET"),
        ("unknown_id_requested", "POST"),
        ("unknown_id_requested", "GET"),
    ]
    assert all(i["ip"] == "testclient" for i in mine)


def _probe(rival: Tenant, target: str) -> list[Any]:
    return [
        rival.get(f"/crm/leads/{target}"),
        rival.post(f"/crm/leads/{target}/notes", json={"text": "hi"}),
        rival.put(f"/crm/leads/{target}/assign", json={"user_id": None}),
        rival.get(f"/audit/aggregates/{target}", params={"version": "1"}),
    ]


def _same(value: Any, target: str, own: set[str]) -> str:
    """`value` as JSON with the probed id and the records' own ids and times made anonymous."""
    text = json.dumps(value, sort_keys=True).replace(target, "TARGET")
    for item in own:
        text = text.replace(item, "OWN")
    return text


def test_the_askers_trail_reads_the_same_for_another_organizations_id_and_an_id_of_nowhere(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    rival = register(client, "Rival")
    foreign = acme.capture(full_name="Acme secret")["id"]
    nowhere = str(uuid4())
    catch_up(client, acme, rival)
    # each probe between two writes of the asker's own, whose log positions it sees
    marks = [rival.capture()["position"]]
    answers = {}
    for target in (foreign, nowhere):
        answers[target] = _probe(rival, target)
        marks.append(rival.capture()["position"])
    phases = {foreign: (marks[0], marks[1]), nowhere: (marks[1], marks[2])}
    assert marks[1] - marks[0] == marks[2] - marks[1]  # as many events written either way
    catch_up(client, acme, rival)

    # the answers: the same 404 problem, but for the id itself
    for a, b in zip(answers[foreign], answers[nowhere], strict=True):
        assert (a.status_code, b.status_code) == (404, 404)
        assert a.text.replace(foreign, "TARGET") == b.text.replace(nowhere, "TARGET")

    # the trail, the export and each record rebuilt as an aggregate: the same but for the ids
    # and times of the records themselves, at the same places in the log
    rows = rival.get("/audit/events", params={"limit": 200}).json()["items"]
    lines = [json.loads(line) for line in rival.get("/audit/export").text.splitlines()]
    seen: dict[str, list[str]] = {}
    for target, (after, before) in phases.items():
        mine = [r for r in rows if after < r["position"] < before]
        exported = [x for x in lines if after < x.get("position", 0) < before]
        assert len(mine) == len(answers[target]) == len(exported)
        assert {r["event_type"] for r in mine} == {INCIDENT}
        rebuilt = [rival.get(f"/audit/aggregates/{r['resource_id']}").json() for r in mine]
        own = {r["resource_id"] for r in mine} | {r["occurred_at"] for r in mine}
        own |= {x["time"] for x in exported} | {r["event"]["time"] for r in rebuilt}
        places = [{"position": r["position"] - after} for r in mine]
        places += [{"position": x["position"] - after} for x in exported]
        unhashed = [{k: v for k, v in x.items() if "hash" not in k} for x in exported]
        seen[target] = [
            _same(value | place, target, own)
            for value, place in zip([*mine, *unhashed], places, strict=True)
        ] + [_same(r, target, own) for r in rebuilt]
    assert seen[foreign] == seen[nowhere]
    everything = json.dumps([rows, lines])
    assert acme.organization_id not in everything and "cross_organization" not in everything

    # the victim's trail names the asker, the id and the route of each attempt
    victim = incidents(acme)
    assert len(victim) == len(answers[foreign])
    assert {i["kind"] for i in victim} == {"cross_organization_attempt"}
    assert {i["resource_id"] for i in victim} == {foreign}
    assert {i["from_organization_id"] for i in victim} == {rival.organization_id}


def test_another_organizations_header_writes_the_same_whether_that_organization_exists(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    rival = register(client, "Rival")
    catch_up(client, acme, rival)
    marks = [rival.capture()["position"]]
    answers = {}
    for header in (acme.organization_id, str(uuid4())):
        answers[header] = rival.get("/crm/leads", headers={"X-Org-Id": header})
        marks.append(rival.capture()["position"])
    assert marks[1] - marks[0] == marks[2] - marks[1]
    catch_up(client, acme, rival)
    rows = rival.get("/audit/events", params={"limit": 200}).json()["items"]
    seen = []
    for (header, answer), after, before in zip(answers.items(), marks, marks[1:], strict=False):
        assert answer.status_code == 403
        mine = [r for r in rows if after < r["position"] < before]
        own = {r["resource_id"] for r in mine} | {r["occurred_at"] for r in mine}
        places = [{"position": r["position"] - after} for r in mine]
        seen.append([_same(r | p, header, own) for r, p in zip(mine, places, strict=True)])
        seen[-1].append(_same(answer.json(), header, own))
    assert seen[0] == seen[1] and len(seen[0]) == 2
    assert [i["kind"] for i in incidents(acme)] == ["cross_organization_attempt"]
