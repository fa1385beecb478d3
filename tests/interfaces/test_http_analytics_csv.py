"""Analytics as spreadsheet tables: every CSV cell, read back with `csv`, is the JSON's value.

The expected tables are derived here from the JSON answer alone (each list of objects a table,
each top-level object a one-row table, the top-level values a `summary` row), never from figure
names, so the tests hold whatever the reports' figures are called.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from tests.interfaces.test_http_analytics import story, talk, window
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

STAGE_NAME = 'Negociação "quente", já'  # quotes, a comma and non-ASCII letters
FORMULA_SOURCE = '=HYPERLINK("http://example.com","clique")'  # a spreadsheet would run it
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def expected_tables(answer: dict[str, Any], defaults: dict[str, list[str]]) -> dict[str, Any]:
    """section → (header, rows of JSON values) as the JSON answer reads as tables.

    `defaults` gives the header of a list the answer holds empty (its columns named elsewhere).
    """
    tables: dict[str, Any] = {}
    plain = {k: v for k, v in answer.items() if not is_table(v) and not isinstance(v, dict)}
    plain = {k: v for k, v in plain.items() if k not in defaults}
    if plain:
        tables["summary"] = (list(plain), [list(plain.values())])
    for key, value in answer.items():
        if isinstance(value, dict):
            tables[key] = (list(value), [list(value.values())])
        elif is_table(value):
            header = list(value[0])
            assert all(list(item) == header for item in value)
            tables[key] = (header, [[item[h] for h in header] for item in value])
        elif key in defaults:
            tables[key] = (defaults[key], [])
    return tables


def as_text(value: Any) -> str:
    """How a JSON value reads in a cell (numbers are compared as numbers, see `same`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not NUMBER.fullmatch(value):
        return "'" + value
    return str(value)


def between(low: Any, cell: str, high: Any) -> bool:
    """A figure that moved between two answers (the report's clock, ages) lies between them."""
    if isinstance(low, str) and isinstance(high, str):
        return min(low, high) <= cell <= max(low, high)
    if cell == "" or low is None or high is None:
        return cell == "" and (low is None or high is None)
    return min(low, high) <= Decimal(cell) <= max(low, high)


def same(cell: str, before: Any, after: Any) -> bool:
    if before != after:
        return between(before, cell, after)
    if isinstance(before, float):
        return "e" not in cell.lower() and Decimal(cell) == Decimal(repr(before))
    return cell == as_text(before)


def read_csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.text
    kind, *parameters = response.headers["content-type"].split("; ")
    assert (kind, sorted(parameters)) == ("text/csv", ["charset=utf-8", "header=present"])
    body: bytes = response.content
    assert not body.startswith(b"\xef\xbb\xbf")  # no byte-order mark (see the README)
    assert body.endswith(b"\r\n") and b"\n" not in body.replace(b"\r\n", b"")
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def sections_named_by_a_bad_one(acme: Tenant, method: str, path: str, **kw: Any) -> set[str]:
    """The sections a 422 for an unknown one names as valid."""
    bad = kw.pop("params", {}) | {"format": "csv", "section": "no-such-table"}
    problem = assert_problem(acme.call(method, path, params=bad, **kw), 422)
    assert problem["errors"][0]["field"] == "section"
    named = re.search(r"must be one of (.*)$", problem["detail"])
    assert named is not None, problem["detail"]
    return set(named.group(1).split(", "))


def check_every_table(
    acme: Tenant,
    method: str,
    path: str,
    default: str,
    *,
    params: dict[str, Any],
    empty: dict[str, list[str]] | None = None,
    **kw: Any,
) -> None:
    """Each table of the CSV answer equals the JSON answer of the same request, cell for cell."""
    before = acme.call(method, path, params=params, **kw).json()
    tables = {}
    for name in [None, *expected_tables(before, {}), default]:
        asked = params | {"format": "csv"} | ({} if name is None else {"section": name})
        response = acme.call(method, path, params=asked, **kw)
        tables[name] = read_csv(response)
        section = default if name is None else name
        disposition = response.headers["content-disposition"]
        stem = f"analytics-{path.rsplit('/', 1)[-1]}-{section}_{before['from']}_{before['to']}"
        assert disposition == f'attachment; filename="{stem}.csv"'
    by_accept = acme.call(method, path, params=params, headers={"Accept": "text/csv"}, **kw)
    tables["accept"] = read_csv(by_accept)
    after = acme.call(method, path, params=params, **kw).json()

    expected = expected_tables(before, empty or {})
    assert expected_tables(after, empty or {}).keys() == expected.keys()
    assert sections_named_by_a_bad_one(acme, method, path, params=params, **kw) == set(expected)
    for name, (header, rows) in expected.items():
        # the default table, asked both ways, is that table too (ages may tick in between)
        answers = [tables[name], *((tables[None], tables["accept"]) if name == default else ())]
        later = expected_tables(after, empty or {})[name][1]
        for got in answers:
            assert got[0] == header, name
            assert len(got) - 1 == len(rows), name
            for i, (row, row_after, cells) in enumerate(zip(rows, later, got[1:], strict=True)):
                for column, value, after_, cell in zip(header, row, row_after, cells, strict=True):
                    assert same(cell, value, after_), (name, i, column, cell, value, after_)


def busy_organization(client: TestClient[Any], services: Any) -> Tenant:
    """The analytics story, talk with calls, a stage with an awkward name, a formula as source."""
    acme = register(client)
    seller = add_member(services, acme, "sales")
    stages = story(acme, seller)
    renamed = acme.put(f"/crm/pipeline/stages/{stages['Contact']}", json={"name": STAGE_NAME})
    assert renamed.is_success, renamed.text
    acme.capture(source=FORMULA_SOURCE, estimated_value="1.10")
    talk(services, acme, seller, acme.capture(assigned_to=seller.user_id)["id"])
    return acme


def test_every_analytics_table_in_csv_holds_the_json_answer_cell_for_cell(
    client: TestClient[Any], services: Any
) -> None:
    acme = busy_organization(client, services)
    period = window()
    check_every_table(acme, "GET", "/analytics/pipeline", "stages", params=period)
    for group_by in ("source", "assignee", "stage"):
        params = period | {"group_by": group_by, "granularity": "week"}
        check_every_table(acme, "GET", "/analytics/leads", "groups", params=params)
    check_every_table(acme, "GET", "/analytics/team", "members", params=period)
    check_every_table(acme, "GET", "/analytics/communication", "messages", params=period)
    report = {"measures": ["leads_created", "stage_moves", "messages_in", "talk_seconds"]}
    for dimensions in (["period", "source"], ["stage", "channel"], []):
        body = period | report | {"dimensions": dimensions}
        check_every_table(acme, "POST", "/analytics/custom-report", "rows", params={}, json=body)
    nothing = period | report | {"dimensions": ["source"], "filters": {"source": ["none"]}}
    columns = ["source", *report["measures"]]
    check_every_table(
        acme,
        "POST",
        "/analytics/custom-report",
        "rows",
        params={},
        json=nothing,
        empty={"rows": columns},
    )


def test_awkward_text_is_quoted_and_a_formula_is_not_run_by_a_spreadsheet(
    client: TestClient[Any], services: Any
) -> None:
    acme = busy_organization(client, services)
    stages = acme.get("/analytics/pipeline", params=window() | {"format": "csv"})
    assert f'"{STAGE_NAME.replace(chr(34), chr(34) * 2)}"'.encode() in stages.content
    sources = acme.get("/analytics/leads", params=window() | {"format": "csv"})
    by_group = {row[0]: row for row in read_csv(sources)[1:]}
    assert "'" + FORMULA_SOURCE in by_group
    assert FORMULA_SOURCE not in by_group


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("GET", "/analytics/pipeline", {}),
        ("GET", "/analytics/leads", {}),
        ("GET", "/analytics/team", {}),
        ("GET", "/analytics/communication", {}),
        (
            "POST",
            "/analytics/custom-report",
            {"json": {"measures": ["notes"], "dimensions": ["source"]}},
        ),
    ],
)
def test_a_section_that_is_not_a_table_of_the_report_is_a_422_naming_the_tables(
    client: TestClient[Any], method: str, path: str, kw: dict[str, Any]
) -> None:
    acme = register(client)
    named = sections_named_by_a_bad_one(acme, method, path, **kw)
    answer = acme.call(method, path, **kw).json()
    # every list, every object and the summary of the answer, nothing else
    lists = {k for k, v in answer.items() if isinstance(v, list | dict)}
    lists -= {k for k, v in answer.items() if isinstance(v, list) and v and isinstance(v[0], str)}
    assert named == lists | {"summary"}
    for other in ("members", "rows", "stages"):
        if other not in named:
            asked = {"params": {"format": "csv", "section": other}}
            assert_problem(acme.call(method, path, **asked, **kw), 422)


def test_the_openapi_document_names_each_operations_tables_and_their_columns(
    client: TestClient[Any],
) -> None:
    document = client.get("/schema/openapi.json").json()
    defaults = {
        "analyticsPipeline": "stages",
        "analyticsLeads": "groups",
        "analyticsTeam": "members",
        "analyticsCommunication": "messages",
        "analyticsCustomReport": "rows",
    }
    seen = set()
    for item in document["paths"].values():
        for operation in item.values():
            if operation.get("operationId") not in defaults:
                continue
            seen.add(operation["operationId"])
            [section] = [p for p in operation["parameters"] if p["name"] == "section"]
            default = defaults[operation["operationId"]]
            assert section["in"] == "query" and default in section["schema"]["enum"]
            assert f"default `{default}`" in section["description"]
            csv_doc = operation["responses"]["200"]["content"]["text/csv"]
            assert f"`{default}` (the default)" in csv_doc["schema"]["description"]
            assert csv_doc["example"].endswith("\r\n")
    assert seen == set(defaults)


# ---------------------------------------------------------------- the rendering, generic


class Point(msgspec.Struct):
    period: str
    won: int
    amount: str


class Owner(msgspec.Struct):
    id: str
    city: str | None


class Group(msgspec.Struct):
    group: str | None
    won: int
    rate: float | None
    owner: Owner
    series: list[Point]


class Report(msgspec.Struct):
    start: str = msgspec.field(name="from")
    big: float = 0.0
    flag: bool = False
    names: list[str] = []
    groups: list[Group] = []
    empty: list[Point] = []


def test_a_series_inside_the_items_is_a_table_of_its_own_with_the_items_columns_repeated() -> None:
    report = Report(
        start="2026-01-01",
        big=1e16,
        flag=True,
        names=["a", "b"],
        groups=[
            Group(
                "web",
                2,
                1e-05,
                Owner("u1", None),
                [Point("2026-01-01", 1, "12345678901234567890.10"), Point("2026-01-02", 1, "-3")],
            ),
            Group(None, 0, None, Owner("u2", "São Paulo"), []),
        ],
    )
    from interfaces.http.csv_tables import Tables  # here: the HTTP tests run without it

    tables = Tables("test", Report, "groups")
    assert tables.names == ("summary", "groups", "groups.series", "empty")

    def read(section: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO(tables.render(report, section), newline="")))

    assert read("summary") == [
        ["from", "big", "flag", "names"],
        ["2026-01-01", "10000000000000000", "true", "a, b"],
    ]
    assert read("groups") == [
        ["group", "won", "rate", "owner.id", "owner.city"],
        ["web", "2", "0.00001", "u1", ""],
        ["", "0", "", "u2", "São Paulo"],
    ]
    assert read("groups.series") == [
        ["group", "won", "rate", "owner.id", "owner.city", "period", "series.won", "amount"],
        ["web", "2", "0.00001", "u1", "", "2026-01-01", "1", "12345678901234567890.10"],
        ["web", "2", "0.00001", "u1", "", "2026-01-02", "1", "-3"],
    ]
    assert read("empty") == [["period", "won", "amount"]]
    assert tables.filename(report, "groups.series") == "analytics-test-groups.series_2026-01-01.csv"
