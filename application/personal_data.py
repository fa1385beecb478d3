"""The event store's personal-data layer: sealed on the way in, opened on the way out.

`domain.privacy.PERSONAL_DATA` says which values of which event classes are personal and whose
they are. When an event is stored, `PersonalDataMapper` takes those values out of its state and
stores them as one sealed value under `"_personal"`:

    "_personal": {"_type_": "personal", "_data_": {"o": org, "s": subject,
                  "p": [["full_name"], ["custom_fields", "cpf"]], "c": "<AES-GCM token>"}}

The paths stay readable (which fields a person had), the values do not. When an event is read,
the `personal` transcoding opens the token with the subject's key and the mapper puts each value
back where it was, so aggregates, projectors and exports see plain values. Once the subject's
key is destroyed the values read as `domain.privacy.ERASED`; the stored event is never touched.
Events stored before this layer existed carry their values in clear and are read as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
    Transcoding,
    find_id_convertor,
)
from eventsourcing.utils import get_topic, resolve_topic

from application.ports import PersonalDataCipher
from domain.privacy import ERASED, PERSONAL_DATA, Path

SEALED_KEY = "_personal"


@dataclass(frozen=True)
class Sealing:
    """Personal values of one event, about to be sealed."""

    organization_id: UUID
    subject_id: UUID
    values: list[tuple[Path, Any]]


@dataclass(frozen=True)
class Opened:
    """Personal values of one event as read back (or `ERASED` for each of them)."""

    values: list[tuple[Path, Any]]


class CipherHolder:
    """Where the application keeps its cipher; set once the composition root has built it."""

    def __init__(self) -> None:
        self.cipher: PersonalDataCipher | None = None

    def get(self) -> PersonalDataCipher:
        if self.cipher is None:
            msg = "personal data needs a cipher: CrmApplication(personal_data=...)"
            raise RuntimeError(msg)
        return self.cipher


class SealedPersonalData(Transcoding):
    type = Sealing
    name = "personal"

    def __init__(self, holder: CipherHolder) -> None:
        self.holder = holder

    def encode(self, obj: Sealing) -> dict[str, Any]:
        paths = [list(path) for path, _ in obj.values]
        plain = json.dumps([value for _, value in obj.values], separators=(",", ":"))
        token = self.holder.get().seal(obj.organization_id, obj.subject_id, plain.encode())
        return {"o": str(obj.organization_id), "s": str(obj.subject_id), "p": paths, "c": token}

    def decode(self, data: dict[str, Any]) -> Opened:
        paths = [tuple(p) for p in data["p"]]
        plain = self.holder.get().open(UUID(data["o"]), UUID(data["s"]), data["c"])
        if plain is None:
            return Opened([(path, ERASED) for path in paths])
        return Opened(list(zip(paths, json.loads(plain), strict=True)))


def take_personal(state: dict[str, Any], paths: tuple[Path, ...]) -> list[tuple[Path, Any]]:
    """Remove the personal values at `paths` from `state` (copying the dictionaries it changes).

    None is not personal data and stays where it is.
    """
    taken: list[tuple[Path, Any]] = []
    for pattern in paths:
        _take(state, pattern, (), taken)
    return taken


def _take(
    container: dict[str, Any], pattern: Path, prefix: Path, taken: list[tuple[Path, Any]]
) -> None:
    head, rest = pattern[0], pattern[1:]
    keys = list(container) if head == "*" else [head]
    for key in keys:
        if key not in container:
            continue
        value = container[key]
        if rest:
            if isinstance(value, dict):
                copy = dict(value)
                container[key] = copy
                _take(copy, rest, (*prefix, key), taken)
        elif value is not None:
            taken.append(((*prefix, key), value))
            del container[key]


def put_back(state: dict[str, Any], values: list[tuple[Path, Any]]) -> None:
    for path, value in values:
        container = state
        for key in path[:-1]:
            container = container.setdefault(key, {})
        container[path[-1]] = value


def personal_subject(event: DomainEventProtocol[UUID]) -> tuple[UUID, UUID] | None:
    """(organization, subject) of an event that carries personal data, else None."""
    rule = PERSONAL_DATA.get(type(event).__qualname__)
    if rule is None:
        return None
    subject = getattr(event, rule.subject, None)
    organization = getattr(event, "organization_id", None)
    if not isinstance(subject, UUID) or not isinstance(organization, UUID):
        return None
    return organization, subject


#: a sealed value as the transcoder writes it (compact JSON, keys in the order `encode` gives)
_SEALED = re.compile(rb'"_type_":"personal","_data_":\{"o":"([0-9a-f-]{36})","s":"([0-9a-f-]{36})"')


class PersonalDataMapper(Mapper[UUID]):
    """The library's mapper, with personal values sealed per subject (see the module doc)."""

    def __init__(self, transcoder: Transcoder, holder: CipherHolder) -> None:
        super().__init__(transcoder)
        self.holder = holder

    def prefetch(self, stored_events: Iterable[StoredEvent]) -> None:
        """Ready the keys of every subject sealed in these events with one lookup, before
        they are decoded one by one (a projector's batch, an export page)."""
        pairs = {
            (UUID(o.decode()), UUID(s.decode()))
            for event in stored_events
            for o, s in _SEALED.findall(event.state)
        }
        if pairs:
            self.holder.get().prefetch(pairs)

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        cls = type(domain_event)
        event_state = dict(vars(domain_event))
        rule = PERSONAL_DATA.get(cls.__qualname__)
        if rule is not None:
            subject = event_state.get(rule.subject)
            organization = event_state.get("organization_id")
            if isinstance(subject, UUID) and isinstance(organization, UUID):
                values = take_personal(event_state, rule.paths)
                if values:
                    event_state[SEALED_KEY] = Sealing(organization, subject, values)
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(cls),
            state=self.transcoder.encode(event_state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        cls = resolve_topic(stored_event.topic)
        try:
            event_state: dict[str, Any] = self.transcoder.decode(stored_event.state)
        except Exception as e:
            msg = (
                f"Failed to deserialise state of stored event with topic '{stored_event.topic}',"
                f" originator_id '{stored_event.originator_id}' and originator_version"
                f" {stored_event.originator_version}: {e}"
            )
            raise MapperDeserialisationError(msg) from e
        opened = event_state.pop(SEALED_KEY, None)
        if isinstance(opened, Opened):
            put_back(event_state, opened.values)
        convert = cast(
            "Callable[[UUID | str], UUID]",
            find_id_convertor(cls, cast("Hashable", type(stored_event.originator_id))),
        )
        event_state["originator_id"] = convert(stored_event.originator_id)
        event_state["originator_version"] = stored_event.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", event_state)
        return cast("DomainEventProtocol[UUID]", domain_event)
