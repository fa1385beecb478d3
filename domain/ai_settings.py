"""An organization's AI settings: whether messages are analysed, whether the qualification
assistant talks (and for which lead sources), its thresholds, the model, custom instructions,
and the organization's own model key (sealed before it reaches an event; never shown again).

Invariants: 0 ≤ nurture threshold < handoff threshold ≤ 100; urgency alert in 0..100;
sentiment alert in −1..1; instructions ≤ 2,000 characters.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError
from domain.values import Actor

_NAMESPACE = UUID("0c6a3f0e-5b7e-4f7c-a3f4-3d2e7f6b9a41")

DEFAULTS: dict[str, Any] = {
    "analysis_enabled": True,
    "assistant_enabled": False,
    "assistant_sources": [],
    "handoff_threshold": 80,
    "nurture_threshold": 50,
    "urgency_alert": 80,
    "sentiment_alert": -0.5,
    "model": None,
    "instructions": None,
}
SETTINGS = tuple(DEFAULTS)


def ai_settings_id(organization_id: UUID) -> UUID:
    return uuid5(_NAMESPACE, f"ai-settings:{organization_id}")


def _whole(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidValueError(field, f"must be a whole number from {low} to {high}")
    return value


def _clean(field: str, value: Any) -> Any:
    if field in ("analysis_enabled", "assistant_enabled"):
        if not isinstance(value, bool):
            raise InvalidValueError(field, "must be true or false")
        return value
    if field == "assistant_sources":
        if not isinstance(value, list) or len(value) > 50:
            raise InvalidValueError(field, "must be a list of at most 50 lead sources")
        return sorted({v.text(field, s, max_length=100).lower() for s in value})
    if field in ("handoff_threshold", "nurture_threshold", "urgency_alert"):
        return _whole(field, value, 0, 100)
    if field == "sentiment_alert":
        if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
            raise InvalidValueError(field, "must be a number from -1 to 1")
        return float(value)
    if field == "model":
        return v.optional_text(field, value, max_length=100)
    if field == "instructions":
        return v.optional_text(field, value, max_length=2_000)
    raise InvalidValueError(field, "is not an AI setting")


class AiSettings(TenantAggregate):
    """The AI settings of one organization."""

    values: dict[str, Any]
    sealed_api_key: str | None

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Started(TenantAggregate.Created):
        def apply(self, s: AiSettings) -> None:
            s.organization_id = self.organization_id
            s.values = dict(DEFAULTS)
            s.sealed_api_key = None

    class DetailsChanged(TenantAggregate.Event):
        changes: dict[str, Any]
        previous: dict[str, Any]

        def apply(self, s: AiSettings) -> None:
            s.values = s.values | self.changes

    class ApiKeyChanged(TenantAggregate.Event):
        """The organization's own key was set (sealed) or removed (None)."""

        sealed_api_key: str | None

        def apply(self, s: AiSettings) -> None:
            s.sealed_api_key = self.sealed_api_key

    @classmethod
    def start(cls, organization_id: UUID, *, actor: Actor) -> AiSettings:
        return cls._create(
            cls.Started,
            id=ai_settings_id(organization_id),
            organization_id=organization_id,
            actor=actor,
        )

    def change(self, settings: dict[str, Any], *, actor: Actor) -> None:
        cleaned = {field: _clean(field, value) for field, value in settings.items()}
        after = self.values | cleaned
        if after["nurture_threshold"] >= after["handoff_threshold"]:
            raise InvalidValueError("nurture_threshold", "must be below the handoff threshold")
        changes = {k: val for k, val in cleaned.items() if self.values.get(k) != val}
        if changes:
            previous = {k: self.values.get(k) for k in changes}
            self.trigger_event(self.DetailsChanged, changes=changes, previous=previous, actor=actor)

    def set_api_key(self, sealed: str | None, *, actor: Actor) -> None:
        if sealed != self.sealed_api_key:
            self.trigger_event(self.ApiKeyChanged, sealed_api_key=sealed, actor=actor)
