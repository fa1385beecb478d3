"""Importing leads from CSV through HTTP, on both backends: dry runs, counts, idempotency,
encodings and delimiters, mappings, per-row errors, tenancy and permissions."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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

CSV = (
    "full_name,email,phone,company,source,estimated_value,custom.segment\r\n"
    "Maria Silva,maria@example.com,+55 11 99999-0000,Padaria,fair,1234.50,bakery\r\n"
    "João Souza,joao@example.com,,Oficina,,,garage\r\n"
    "Ana Lima,,+55 21 98888-1111,,,,\r\n"
)


def upload(tenant: Tenant, body: bytes | str, **params: Any) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return tenant.post(
        "/crm/leads/import",
        content=data,
        params={k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()},
        headers={"Content-Type": "text/csv"},
    )


def imported(tenant: Tenant, body: bytes | str, **params: Any) -> dict[str, Any]:
    response = upload(tenant, body, **params)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    tenant.position = max(tenant.position, report["position"])
    return report


def leads(tenant: Tenant) -> list[dict[str, Any]]:
    response = tenant.get("/crm/leads", params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_dry_run_reports_and_writes_nothing(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    head = services.app.recorder.max_notification_id()

    report = imported(acme, CSV + "No Contact,,,,,,\r\n", dry_run=True)

    assert (report["rows"], report["created"], report["skipped"], report["failed"]) == (4, 3, 0, 1)
    assert report["import_id"] is None and report["dry_run"] is True
    assert report["errors"] == [
        {"row": 5, "column": None, "message": report["errors"][0]["message"]}
    ]
    assert services.app.recorder.max_notification_id() == head
    assert leads(acme) == []


def test_a_real_run_captures_every_valid_row_and_counts_them(client: TestClient[Any]) -> None:
    acme = register(client)

    report = imported(acme, CSV, file_name="from-pipedrive.csv")

    assert (report["rows"], report["created"], report["skipped"], report["failed"]) == (3, 3, 0, 0)
    assert report["file_name"] == "from-pipedrive.csv" and report["import_id"]
    assert (report["encoding"], report["delimiter"]) == ("utf-8", ",")
    by_name = {lead["full_name"]: lead for lead in leads(acme)}
    assert set(by_name) == {"Maria Silva", "João Souza", "Ana Lima"}
    maria = by_name["Maria Silva"]
    assert (maria["email"], maria["company"], maria["source"]) == (
        "maria@example.com",
        "Padaria",
        "fair",
    )
    assert maria["estimated_value"] == "1234.50"
    assert maria["custom_fields"] == {"segment": "bakery"}
    assert by_name["Ana Lima"]["custom_fields"] == {}


def test_a_re_upload_skips_every_row(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    imported(acme, CSV)

    again = imported(acme, CSV)

    assert (again["created"], again["skipped"], again["failed"]) == (0, 3, 0)
    assert len(leads(acme)) == 3
    dry = imported(acme, CSV, dry_run=True)
    assert (dry["created"], dry["skipped"]) == (0, 3)


def test_a_row_repeated_in_the_file_is_captured_once(client: TestClient[Any]) -> None:
    acme = register(client)
    line = "Maria Silva,maria@example.com,+55 11 99999-0000,,,,\r\n"
    body = CSV.splitlines(keepends=True)[0] + line + line.replace("Maria Silva", "M. Silva")

    report = imported(acme, body)

    assert (report["created"], report["skipped"]) == (1, 1)
    assert [lead["full_name"] for lead in leads(acme)] == ["Maria Silva"]


def test_latin_1_with_semicolons_and_decimal_commas_is_read(client: TestClient[Any]) -> None:
    acme = register(client)
    body = "Nome;E-mail;Valor\r\nJosé Conceição;jose@example.com;1.234,56\r\n".encode("latin-1")
    mapping = {"Nome": "full_name", "E-mail": "email", "Valor": "estimated_value"}

    report = imported(acme, body, mapping=json.dumps(mapping))

    assert (report["encoding"], report["delimiter"], report["created"]) == ("latin-1", ";", 1)
    (lead,) = leads(acme)
    assert (lead["full_name"], lead["estimated_value"]) == ("José Conceição", "1234.56")


def test_a_byte_order_mark_is_not_part_of_the_first_header(client: TestClient[Any]) -> None:
    acme = register(client)

    report = imported(acme, b"\xef\xbb\xbf" + CSV.encode())

    assert (report["encoding"], report["created"]) == ("utf-8", 3)
    assert report["ignored_columns"] == []


def test_encoding_and_delimiter_can_be_named(client: TestClient[Any]) -> None:
    acme = register(client)
    body = "full_name\temail\r\nZé\tze@example.com\r\n".encode("latin-1")

    report = imported(acme, body, encoding="latin-1", delimiter="tab")

    assert (report["delimiter"], report["created"]) == ("\t", 1)
    assert leads(acme)[0]["full_name"] == "Zé"
    bad = upload(
        acme, "full_name,email\r\nZé,ze@example.com\r\n".encode("latin-1"), encoding="utf-8"
    )
    assert assert_problem(bad, 422)["errors"][0]["field"] == "encoding"


def test_a_bad_mapping_is_refused_naming_the_column_and_writes_nothing(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    head = services.app.recorder.max_notification_id()
    cases = {
        json.dumps({"Nome": "full_name"}): "'Nome'",
        json.dumps({"full_name": "full_name", "email": "e-mail"}): "'email'",
        json.dumps({"full_name": "full_name", "email": "full_name"}): "'email'",
        json.dumps({"email": "email"}): "full_name",
        "not json": "JSON",
    }
    for mapping, named in cases.items():
        body = assert_problem(upload(acme, CSV, mapping=mapping), 422)
        assert body["errors"][0]["field"] == "mapping"
        assert named in body["errors"][0]["message"], body
    assert services.app.recorder.max_notification_id() == head


def test_bad_rows_are_reported_with_row_numbers_and_the_rest_captured(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    body = (
        "Name,Mail,Value,Stage\r\n"
        "Good One,one@example.com,10,\r\n"
        "Bad Mail,not-an-email,,\r\n"
        ",nobody@example.com,,\r\n"
        "Bad Value,value@example.com,ten,\r\n"
        "Bad Stage,stage@example.com,,Nowhere\r\n"
        "Won Already,won@example.com,,Won\r\n"
        "Good Two,two@example.com,,\r\n"
    )
    mapping = {"Name": "full_name", "Mail": "email", "Value": "estimated_value", "Stage": "stage"}

    report = imported(acme, body, mapping=json.dumps(mapping))

    assert (report["created"], report["skipped"], report["failed"]) == (2, 0, 5)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [
        (3, "Mail"),
        (4, "Name"),
        (5, "Value"),
        (6, "Stage"),
        (7, "Stage"),
    ]
    assert {lead["full_name"] for lead in leads(acme)} == {"Good One", "Good Two"}


def test_an_assignee_of_another_organization_fails_that_row(client: TestClient[Any]) -> None:
    acme, other = register(client), register(client, "Other")
    body = (
        "full_name,email,assigned_to\r\n"
        f"Theirs,theirs@example.com,{other.user_id}\r\n"
        f"Ours,ours@example.com,{acme.user_id}\r\n"
    )

    report = imported(acme, body)

    assert (report["created"], report["failed"]) == (1, 1)
    assert report["errors"][0]["row"] == 2 and report["errors"][0]["column"] == "assigned_to"
    (lead,) = leads(acme)
    assert (lead["full_name"], lead["assigned_to"]) == ("Ours", acme.user_id)
    assert leads(other) == []


def test_a_viewer_may_not_import(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    viewer = add_member(services, acme, "viewer")

    assert_problem(upload(viewer, CSV), 403)
    assert leads(acme) == []


def test_a_sales_member_imports_leads_for_themselves(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    rep = add_member(services, acme, "sales")
    body = (
        "full_name,email,assigned_to\r\n"
        "Mine,mine@example.com,\r\n"
        f"Boss's,boss@example.com,{acme.user_id}\r\n"
    )

    report = imported(rep, body)

    assert (report["created"], report["failed"]) == (1, 1)
    assert report["errors"][0]["column"] == "assigned_to"
    acme.position = rep.position
    (lead,) = leads(acme)
    assert (lead["full_name"], lead["assigned_to"]) == ("Mine", rep.user_id)


def test_the_import_is_recorded_with_its_actor(client: TestClient[Any]) -> None:
    acme = register(client)

    report = imported(acme, CSV, file_name="leads.csv")

    trail = acme.get("/audit/events", params={"resource_id": report["import_id"]})
    assert trail.status_code == 200, trail.text
    events = trail.json()["items"]
    assert sorted(e["event_type"] for e in events) == ["LeadImport.Finished", "LeadImport.Started"]
    assert {e["actor_id"] for e in events} == {acme.user_id}


def test_a_multipart_upload_with_its_mapping_is_imported(client: TestClient[Any]) -> None:
    acme = register(client)
    body = "Nome,Email\r\nMaria,maria@example.com\r\n"

    response = acme.post(
        "/crm/leads/import",
        files={"file": ("crm-export.csv", body.encode(), "text/csv")},
        data={"mapping": json.dumps({"Nome": "full_name", "Email": "email"})},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["file_name"], report["created"]) == ("crm-export.csv", 1)
    # a part named `file` without a file name (curl -F 'file=<leads.csv') is the file too
    plain = acme.post(
        "/crm/leads/import",
        files={"file": (None, b"full_name,email\r\nBia,bia@example.com\r\n")},
    )
    assert plain.status_code == 200, plain.text
    assert (plain.json()["file_name"], plain.json()["created"]) == ("upload.csv", 1)
    no_file = acme.post("/crm/leads/import", files={"mapping": (None, b"{}")})
    assert_problem(no_file, 400)


def test_an_empty_or_headerless_body_is_refused(client: TestClient[Any]) -> None:
    acme = register(client)

    assert_problem(upload(acme, b""), 400)
    assert_problem(upload(acme, "\r\n\r\n"), 422)


def test_a_file_over_the_row_or_byte_limit_is_refused_whole(
    client: TestClient[Any], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = register(client)
    limited = msgspec.structs.replace(services.settings, import_max_rows=2)
    monkeypatch.setattr(services, "settings", limited)

    assert "2 rows" in assert_problem(upload(acme, CSV), 413)["detail"]
    monkeypatch.setattr(services, "settings", msgspec.structs.replace(limited, import_max_bytes=50))
    assert "50 bytes" in assert_problem(upload(acme, CSV), 413)["detail"]
    assert leads(acme) == []


def test_any_body_is_answered_without_a_server_error_and_a_dry_run_writes_nothing(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    head = services.app.recorder.max_notification_id()
    odd = st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: "full_name,email\r\n" + t),
        st.sampled_from(
            [
                '"unclosed\r\nquote',
                "full_name\r\n\x00",
                "full_name\r\n" + "x" * 300,
                "full_name;email,phone\r\na;b,c\r\n",
                "\r",
                "full_name\r\n=1+1\r\n'=cmd\r\n",
            ]
        ),
    )

    @settings(max_examples=60, deadline=None)
    @given(body=odd, delimiter=st.sampled_from([None, ",", ";", "tab", "|"]))
    def never_a_server_error(body: str | bytes, delimiter: str | None) -> None:
        params = {"dry_run": True} | ({"delimiter": delimiter} if delimiter else {})
        response = upload(acme, body, **params)
        assert response.status_code in (200, 400, 413, 422), response.text
        if response.status_code != 200:
            assert_problem(response, response.status_code)

    never_a_server_error()
    assert services.app.recorder.max_notification_id() == head


def test_a_nul_character_fails_its_row_naming_the_column(client: TestClient[Any]) -> None:
    acme = register(client)
    body = "full_name,email,company\r\nAna,ana@example.com,Pa\x00daria\r\nBia,bia@example.com,\r\n"

    report = imported(acme, body)

    assert (report["created"], report["failed"]) == (1, 1)
    assert report["errors"] == [
        {"row": 2, "column": "company", "message": "must not contain NUL characters"}
    ]
    assert_problem(upload(acme, CSV, file_name="a\x00b"), 400)
