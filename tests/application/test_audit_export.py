"""The export's hash chain on its own: the format, and that any altered byte is found at its line."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.audit.chain import (
    EVENT_FIELDS,
    Chain,
    ChainBrokenError,
    canonical,
    event_record,
    genesis,
    link,
    verify,
)
from domain.security import SecurityIncident
from domain.values import Actor

ORG = UUID("5f0c6a52-3b7e-4c1a-9d2e-0a1b2c3d4e5f")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
records = st.lists(
    st.fixed_dictionaries(
        {
            "organization_id": st.just(str(ORG)),
            "position": st.integers(1, 10**9),
            "aggregate_type": st.sampled_from(["Lead", "Pipeline", "Organization"]),
            "aggregate_id": st.uuids().map(str),
            "version": st.integers(1, 1000),
            "event_type": st.sampled_from(["Lead.Captured", "Lead.MovedToStage", "Lead.Won"]),
            "time": st.just("2026-12-01T10:00:00.123456+00:00"),
            "actor": st.fixed_dictionaries({"kind": st.just("user"), "id": st.text(max_size=8)}),
            "ip": st.none() | st.just("203.0.113.9"),
            "user_agent": st.none() | st.text(max_size=20),
            "data": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        }
    ),
    max_size=6,
)


def record(position: int, org: UUID = ORG, **data: Any) -> dict[str, Any]:
    return {
        "organization_id": str(org),
        "position": position,
        "aggregate_type": "Lead",
        "aggregate_id": str(UUID(int=position)),
        "version": 1,
        "event_type": "Lead.Captured",
        "time": "2026-12-01T10:00:00+00:00",
        "actor": {"kind": "user", "id": "u-1"},
        "ip": None,
        "user_agent": None,
        "data": data,
    }


def export_of(items: list[dict[str, Any]], **filters: Any) -> list[bytes]:
    chain = Chain(ORG)
    lines = [chain.line(item) for item in items]
    options: dict[str, Any] = {"since": None, "until": None, "types": [], "up_to": 99} | filters
    return [*lines, chain.trailer(**options)]


def broken_line(lines: list[bytes]) -> int:
    with pytest.raises(ChainBrokenError) as broken:
        verify(lines)
    return broken.value.line


@settings(max_examples=60, deadline=None)
@given(items=records)
def test_an_untouched_export_verifies_with_its_count_and_final_hash(
    items: list[dict[str, Any]],
) -> None:
    lines = export_of(items)
    verified = verify(lines)
    trailer = json.loads(lines[-1])
    assert (verified.count, verified.final_hash) == (len(items), trailer["final_hash"])
    assert verified.organization_id == str(ORG) and trailer["count"] == len(items)


@settings(max_examples=300, deadline=None)
@given(items=records, data=st.data())
def test_flipping_any_byte_of_any_line_makes_verify_name_exactly_that_line(
    items: list[dict[str, Any]], data: st.DataObject
) -> None:
    lines = export_of(items)
    index = data.draw(st.integers(0, len(lines) - 1), label="line index")
    offset = data.draw(st.integers(0, len(lines[index]) - 1), label="byte (the newline too)")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    flipped = bytearray(lines[index])
    flipped[offset] ^= mask
    # read back as a file would be: a flip to or from "\n" splits or joins lines
    altered = b"".join([*lines[:index], bytes(flipped), *lines[index + 1 :]])
    assert broken_line(list(io.BytesIO(altered))) == index + 1


def test_the_chain_starts_from_the_organization_and_each_hash_covers_the_previous_one() -> None:
    lines = export_of([record(1, n="é"), record(2)])
    first, second, trailer = (json.loads(line) for line in lines)
    assert first["prev_hash"] == hashlib.sha256(f"loved-crm:{ORG}".encode()).hexdigest()
    assert first["prev_hash"] == genesis(ORG)
    for line, previous in ((first, first["prev_hash"]), (second, first["hash"])):
        body = {k: v for k, v in line.items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert line["hash"] == hashlib.sha256((previous + text).encode()).hexdigest()
    assert trailer["final_hash"] == second["hash"] and trailer["trailer"] is True
    sealed = {k: v for k, v in trailer.items() if k != "hash"}
    assert (
        trailer["hash"] == hashlib.sha256(second["hash"].encode() + canonical(sealed)).hexdigest()
    )
    assert lines[0] == canonical(first) + b"\n" and "é".encode() in lines[0]


def test_a_missing_reordered_foreign_or_extra_line_is_named() -> None:
    lines = export_of([record(n) for n in range(1, 5)])
    assert broken_line(lines[:-1]) == 5  # no trailer: where it should have been
    assert broken_line(lines[:2] + lines[3:]) == 3  # a line taken out
    assert broken_line([lines[0], lines[2], lines[1], *lines[3:]]) == 2
    assert broken_line([*lines, lines[0]]) == 6  # a line after the trailer
    assert broken_line([]) == 1
    rival = uuid4()
    assert broken_line([lines[0], Chain(rival).line(record(2, rival)), *lines[2:]]) == 2
    assert broken_line([lines[0][:-1]]) == 1  # a cut without the final newline


def test_a_trailer_that_claims_other_filters_or_another_count_is_named() -> None:
    lines = export_of([record(1)], types=["Lead.Won"])
    trailer = json.loads(lines[-1])
    for change in ({"types": []}, {"count": 2}, {"up_to": 100}):
        forged = canonical(trailer | change) + b"\n"
        assert broken_line([lines[0], forged]) == 2


def test_an_event_becomes_a_line_with_its_actor_origin_and_json_safe_data() -> None:
    actor = Actor("user", "u-1", ip="203.0.113.9", user_agent="curl/8")
    incident = SecurityIncident.record(
        organization_id=ORG, kind="login_failed", details={"who": uuid4()}, actor=actor
    )
    [event] = incident.collect_events()
    record = event_record(ORG, 42, event)
    assert set(record) | {"prev_hash", "hash"} == EVENT_FIELDS
    assert record["event_type"] == "SecurityIncident.Recorded"
    assert (record["aggregate_type"], record["aggregate_id"]) == (
        "SecurityIncident",
        str(incident.id),
    )
    assert (record["position"], record["version"]) == (42, 1)
    assert record["actor"] == {"kind": "user", "id": "u-1"}
    assert (record["ip"], record["user_agent"]) == ("203.0.113.9", "curl/8")
    assert record["time"].endswith("+00:00")
    assert record["data"] == {"kind": "login_failed", "details": event.details}
    assert json.loads(canonical(record)) == record


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(
            st.one_of(st.text(max_size=12), st.sampled_from(["hash", "ip", "data", "h"])),
            st.one_of(st.none(), st.integers(), st.text(max_size=20), st.booleans()),
            max_size=6,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_line_is_exactly_the_canonical_json_of_its_record_prev_hash_and_hash(
    records: list[dict[str, Any]],
) -> None:
    chain = Chain(ORG)
    for record in records:
        prev = chain.last_hash
        line = chain.line(record)
        unsealed = {**record, "prev_hash": prev}
        assert chain.last_hash == link(prev, unsealed)
        assert line == canonical({**unsealed, "hash": chain.last_hash}) + b"\n"
