"""The hash-chained history export: its line format, its chain, and its offline verification.

- Every line is one JSON object written in canonical form and ended by `\\n`:
  `canonical(obj) = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
  encoded UTF-8. A line that is not exactly the canonical form of what it parses to is altered.
- Event lines, in log order: `organization_id`, `position` (notification id), `aggregate_type`,
  `aggregate_id`, `version`, `event_type`, `time` (ISO 8601, UTC), `actor` `{kind, id}`, `ip`,
  `user_agent`, `data` (the event's own fields; ids, amounts and times as strings), `prev_hash`,
  `hash`.
- The chain: line 1's `prev_hash` is `genesis(org) = sha256("loved-crm:" + organization id)`;
  each later line's is the previous line's `hash`; a line's `hash` is
  `sha256(prev_hash + canonical(line without "hash"))` (hex digests; `prev_hash` as ASCII).
- The last line is the trailer `{trailer: true, organization_id, count, final_hash, since, until,
  types, up_to, hash}`: `count` event lines, `final_hash` the last one's hash (the genesis when
  there is none), and `hash = sha256(final_hash + canonical(trailer without "hash"))`. It seals
  the filters: a filtered export verifies on its own and cannot pass for a whole one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from uuid import UUID

from domain.values import Actor
from projections.base import event_data, jsonable

GENESIS_PREFIX = "loved-crm:"
EVENT_FIELDS = frozenset(
    {
        "organization_id",
        "position",
        "aggregate_type",
        "aggregate_id",
        "version",
        "event_type",
        "time",
        "actor",
        "ip",
        "user_agent",
        "data",
        "prev_hash",
        "hash",
    }
)
TRAILER_FIELDS = frozenset(
    {
        "trailer",
        "organization_id",
        "count",
        "final_hash",
        "since",
        "until",
        "types",
        "up_to",
        "hash",
    }
)


class ChainBrokenError(Exception):
    """The export file was altered, cut or reordered: `line` (1-based) is the first bad one."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    organization_id: str
    count: int
    final_hash: str
    trailer_hash: str


def canonical(obj: Mapping[str, Any]) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8")


def genesis(organization_id: UUID | str) -> str:
    return hashlib.sha256(f"{GENESIS_PREFIX}{organization_id}".encode()).hexdigest()


def link(prev_hash: str, unsealed: Mapping[str, Any]) -> str:
    """The hash of a line: over the previous hash and the line's canonical JSON without `hash`."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(unsealed)).hexdigest()


def event_record(organization_id: UUID, position: int, event: Any) -> dict[str, Any]:
    """One stored event as an (unchained) export record."""
    type_name = type(event).__qualname__
    actor = getattr(event, "actor", None) or Actor.system()
    return {
        "organization_id": str(organization_id),
        "position": position,
        "aggregate_type": type_name.split(".", 1)[0],
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "event_type": type_name,
        "time": event.timestamp.astimezone(UTC).isoformat(),
        "actor": {"kind": actor.kind, "id": actor.id},
        "ip": actor.ip,
        "user_agent": actor.user_agent,
        "data": jsonable(event_data(event)),
    }


class Chain:
    """Seals records into lines one after another; `count` and `last_hash` so far."""

    def __init__(self, organization_id: UUID) -> None:
        self.organization_id = str(organization_id)
        self.last_hash = genesis(organization_id)
        self.count = 0

    def line(self, record: Mapping[str, Any]) -> bytes:
        """canonical({**record, prev_hash, hash}) + newline, serialised once: the keys sorting
        before "hash" and those after it are two canonical objects whose join is the hashed
        text, and with `"hash":…` between them the line."""
        unsealed = {**record, "prev_hash": self.last_hash}
        head = canonical({k: v for k, v in unsealed.items() if k < "hash"})
        tail = canonical({k: v for k, v in unsealed.items() if k > "hash"})
        self.count += 1
        if head == b"{}" or tail == b"{}" or "hash" in unsealed:  # not an event record
            self.last_hash = link(self.last_hash, unsealed)
            return canonical({**unsealed, "hash": self.last_hash}) + b"\n"
        hashed = head[:-1] + b"," + tail[1:]
        self.last_hash = hashlib.sha256(self.last_hash.encode("ascii") + hashed).hexdigest()
        return head[:-1] + b',"hash":"' + self.last_hash.encode("ascii") + b'",' + tail[1:] + b"\n"

    def trailer(
        self, *, since: str | None, until: str | None, types: list[str], up_to: int
    ) -> bytes:
        unsealed = {
            "trailer": True,
            "organization_id": self.organization_id,
            "count": self.count,
            "final_hash": self.last_hash,
            "since": since,
            "until": until,
            "types": sorted(types),
            "up_to": up_to,
        }
        return canonical({**unsealed, "hash": link(self.last_hash, unsealed)}) + b"\n"


def verify(lines: Iterable[bytes]) -> Verified:
    """Recompute the chain of an export read line by line (e.g. a file opened in binary mode).

    Raises ChainBrokenError naming the first line that is not what the exporter wrote: not
    canonical JSON, not the expected shape or organization, a `prev_hash` or `hash` that does not
    follow, a trailer that disagrees, a line after the trailer, or no trailer at all (then the
    line where it should have been). A byte changed anywhere in a line, its `\\n` included, is
    always reported at that very line.
    """
    state: _Walk | None = None
    number = 0
    for number, raw in enumerate(lines, start=1):
        obj = _parse(number, raw)
        if state is None:
            state = _Walk(str(obj.get("organization_id")))
        state.take(number, obj)
    if state is None:
        raise ChainBrokenError(1, "the file is empty: no trailer")
    if state.done is None:
        raise ChainBrokenError(number + 1, "the trailer is missing: the export was cut short")
    return state.done


def _parse(number: int, raw: bytes) -> dict[str, Any]:
    if not raw.endswith(b"\n"):
        raise ChainBrokenError(number, "the line does not end with a newline")
    body = raw[:-1]
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ChainBrokenError(number, "not a JSON line in UTF-8") from None
    if not isinstance(obj, dict):
        raise ChainBrokenError(number, "not a JSON object")
    try:
        same = canonical(obj) == body
    except (TypeError, ValueError, UnicodeEncodeError):
        same = False
    if not same:
        raise ChainBrokenError(number, "not in canonical JSON form")
    return obj


class _Walk:
    """The verification's state between lines."""

    def __init__(self, organization_id: str) -> None:
        self.organization_id = organization_id
        self.last_hash = genesis(organization_id)
        self.count = 0
        self.done: Verified | None = None

    def take(self, number: int, obj: dict[str, Any]) -> None:
        if self.done is not None:
            raise ChainBrokenError(number, "a line after the trailer")
        if obj.get("organization_id") != self.organization_id:
            raise ChainBrokenError(number, "another organization's line")
        if obj.get("trailer") is True:
            self._trailer(number, obj)
        else:
            self._event(number, obj)

    def _event(self, number: int, obj: dict[str, Any]) -> None:
        if set(obj) != EVENT_FIELDS:
            raise ChainBrokenError(number, "not an event line: fields missing or unknown")
        if obj["prev_hash"] != self.last_hash:
            raise ChainBrokenError(number, "prev_hash is not the previous line's hash")
        unsealed = {k: v for k, v in obj.items() if k != "hash"}
        if obj["hash"] != link(self.last_hash, unsealed):
            raise ChainBrokenError(number, "hash does not match the line")
        self.last_hash = obj["hash"]
        self.count += 1

    def _trailer(self, number: int, obj: dict[str, Any]) -> None:
        if set(obj) != TRAILER_FIELDS:
            raise ChainBrokenError(number, "not a trailer: fields missing or unknown")
        if obj["count"] != self.count:
            raise ChainBrokenError(number, f"the trailer counts {obj['count']}, not {self.count}")
        if obj["final_hash"] != self.last_hash:
            raise ChainBrokenError(number, "final_hash is not the last line's hash")
        unsealed = {k: v for k, v in obj.items() if k != "hash"}
        if obj["hash"] != link(self.last_hash, unsealed):
            raise ChainBrokenError(number, "the trailer's hash does not match it")
        self.done = Verified(self.organization_id, self.count, self.last_hash, obj["hash"])
