"""Exporting leads as CSV through HTTP, on both backends: columns, filters, the formula
guard, erased people, and the round trip through the import."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from tests.interfaces.test_http_leads_import import imported, leads
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

HEADER = [
    "full_name",
    "email",
    "phone",
    "company",
    "source",
    "estimated_value",
    "stage",
    "assigned_to",
    "external_id",
]


def exported(tenant: Tenant, **params: Any) -> tuple[str, list[dict[str, str]]]:
    response = tenant.get("/crm/leads/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text: str = response.text
    return text, list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_export_has_the_import_columns_and_a_row_per_lead(client: TestClient[Any]) -> None:
    acme = register(client)
    maria = acme.capture(
        full_name="Maria Silva",
        email="maria@example.com",
        phone="+55 11 99999-0000",
        company="Padaria, Ltda",
        estimated_value="1234.5",
        custom_fields={"segment": "bakery", "employees": 12},
        assigned_to=acme.user_id,
    )
    acme.capture(full_name="Ana", custom_fields={"city": 'Rio "RJ"'})

    text, rows = exported(acme)

    assert text.splitlines()[0].split(",") == [
        *HEADER,
        "custom.city",
        "custom.employees",
        "custom.segment",
    ]
    assert "\r\n" in text
    assert [r["full_name"] for r in rows] == ["Ana", "Maria Silva"]  # newest first
    assert rows[1] == {
        "full_name": "Maria Silva",
        "email": "maria@example.com",
        "phone": "'+55 11 99999-0000",  # a spreadsheet would read +55… as a formula
        "company": "Padaria, Ltda",
        "source": "",
        "estimated_value": "1234.50",
        "stage": acme.stages()[0]["name"],
        "assigned_to": acme.user_id,
        "external_id": maria["id"],
        "custom.city": "",
        "custom.employees": "12",
        "custom.segment": "bakery",
    }
    assert rows[0]["custom.city"] == 'Rio "RJ"'


def test_the_export_takes_the_list_filters(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    rep = add_member(services, acme, "sales")
    second = acme.stages()[1]
    acme.capture(full_name="Mine", assigned_to=rep.user_id)
    moved = acme.capture(full_name="Moved", email="moved@example.com")
    acme.patch(f"/crm/leads/{moved['id']}/stage", json={"stage_id": second["id"]})
    acme.capture(full_name="Other")

    assert [r["full_name"] for r in exported(acme, assigned_to=rep.user_id)[1]] == ["Mine"]
    assert [r["full_name"] for r in exported(acme, stage_id=second["id"])[1]] == ["Moved"]
    assert [r["full_name"] for r in exported(acme, q="moved@")[1]] == ["Moved"]
    assert_problem(acme.get("/crm/leads/export", params={"status": "maybe"}), 422)


def test_the_export_walks_every_page(client: TestClient[Any]) -> None:
    acme = register(client)
    body = "full_name,email\r\n" + "".join(f"Lead {i},l{i}@example.com\r\n" for i in range(450))
    imported(acme, body)

    _, rows = exported(acme)

    assert len(rows) == 450 and len({r["external_id"] for r in rows}) == 450


def test_a_formula_looking_value_is_guarded_and_reads_back_as_written(
    client: TestClient[Any],
) -> None:
    acme, other = register(client), register(client, "Other")
    acme.capture(
        full_name='=HYPERLINK("http://evil")',
        email="f@example.com",
        phone="+55 11 99999-0000",
        custom_fields={"note": "@SUM(A1)"},
    )

    text, rows = exported(acme)

    assert rows[0]["full_name"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["custom.note"] == "'@SUM(A1)"
    assert rows[0]["phone"] == "'+55 11 99999-0000"
    imported(other, text)
    (lead,) = leads(other)
    assert lead["full_name"] == '=HYPERLINK("http://evil")'
    assert lead["custom_fields"] == {"note": "@SUM(A1)"}
    assert lead["phone"] == "+55 11 99999-0000"


def test_export_then_import_round_trips(client: TestClient[Any]) -> None:
    acme, other = register(client), register(client, "Other")
    stages = acme.stages()
    for i in range(5):
        acme.capture(
            full_name=f"Lead {i}",
            email=f"l{i}@example.com",
            company=f"Co {i}",
            source="fair",
            estimated_value=f"{i}00.25",
            custom_fields={"tier": f"t{i % 2}"},
            stage_id=stages[i % 3]["id"],
        )
    text, rows = exported(acme)

    same_org = imported(acme, text)
    into_other = imported(other, text)

    assert (same_org["created"], same_org["skipped"]) == (0, 5)
    assert (into_other["created"], into_other["failed"]) == (5, 0)
    again = imported(other, text)
    assert (again["created"], again["skipped"]) == (0, 5)
    _, back = exported(other)
    keep = [*HEADER[:7], "custom.tier"]
    assert sorted([r[k] for k in keep] for r in back) == sorted([r[k] for k in keep] for r in rows)


def test_an_erased_person_reads_erased_in_the_export(client: TestClient[Any]) -> None:
    acme = register(client)
    lead = acme.capture(full_name="Maria", email="maria@example.com", custom_fields={"k": "v"})
    erase = acme.post("/privacy/erase", json={"lead_id": lead["id"], "legal_basis": "asked"})
    assert erase.status_code == 200, erase.text
    acme.position = max(acme.position, erase.json().get("position", 0))

    _, rows = exported(acme)

    assert (rows[0]["full_name"], rows[0]["email"], rows[0]["custom.k"]) == ("[erased]",) * 3


def test_a_viewer_may_export_and_a_stranger_may_not(
    client: TestClient[Any], services: Services
) -> None:
    acme, other = register(client), register(client, "Other")
    viewer = add_member(services, acme, "viewer")
    acme.capture(full_name="Ours")
    viewer.position = acme.position

    assert [r["full_name"] for r in exported(viewer)[1]] == ["Ours"]
    assert exported(other)[1] == []
    stranger = other.get("/crm/leads/export", headers={"X-Org-Id": acme.organization_id})
    assert_problem(stranger, 403)
