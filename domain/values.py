"""Value objects shared by the aggregates, with the checks that make them valid."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from domain.errors import InvalidValueError


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SALES = "sales"
    VIEWER = "viewer"


class StageType(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class LeadStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


STATUS_OF_STAGE_TYPE = {
    StageType.OPEN: LeadStatus.OPEN,
    StageType.WON: LeadStatus.WON,
    StageType.LOST: LeadStatus.LOST,
}


@dataclass(frozen=True)
class Actor:
    """Who caused an event, and from where: recorded in every event for the audit trail."""

    kind: str  # "user", "api_key", "provider" or "system"
    id: str
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system", id="system")


_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{5,32}$")
CUSTOM_FIELDS_MAX = 50
SCALAR = (str, int, float, bool, type(None))
RESERVED_KEYS = frozenset({"_type_", "_data_"})
MONEY_LIMIT = Decimal("1e15")


def _no_nul(field: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here so no event can carry one
    if "\x00" in value:
        raise InvalidValueError(field, "must not contain NUL characters")
    return value


def color(value: str) -> str:
    if not _COLOR.fullmatch(value):
        raise InvalidValueError("color", "must be a colour in the form #rrggbb")
    return value.lower()


def text(field: str, value: str, *, max_length: int, required: bool = True) -> str:
    cleaned = _no_nul(field, value).strip()
    if required and not cleaned:
        raise InvalidValueError(field, "must not be empty")
    if len(cleaned) > max_length:
        raise InvalidValueError(field, f"must be at most {max_length} characters")
    return cleaned


def optional_text(field: str, value: str | None, *, max_length: int) -> str | None:
    if value is None:
        return None
    cleaned = text(field, value, max_length=max_length, required=False)
    return cleaned or None


def email(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = _no_nul("email", value).strip().lower()
    if len(cleaned) > 254 or not _EMAIL.fullmatch(cleaned):
        raise InvalidValueError("email", "is not a valid email address")
    return cleaned


def phone(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip()
    if not _PHONE.fullmatch(cleaned) or sum(c.isdigit() for c in cleaned) < 5:
        raise InvalidValueError("phone", "is not a valid phone number")
    return cleaned


def money(value: Decimal | int | float | str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidValueError("estimated_value", "is not a number") from None
    if not amount.is_finite():
        raise InvalidValueError("estimated_value", "is not a number")
    if abs(amount) >= MONEY_LIMIT:
        raise InvalidValueError("estimated_value", "must be between 0 and 10^15")
    amount = amount.quantize(Decimal("0.01"))
    if amount < 0 or amount >= MONEY_LIMIT:
        raise InvalidValueError("estimated_value", "must be between 0 and 10^15")
    return amount


FIXED_WIN_PROBABILITY = {StageType.WON: 100, StageType.LOST: 0}


def win_probability(value: int | None, stage_type: StageType) -> int | None:
    """A stage's chance of winning in percent, or None to derive it from the stage's place."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidValueError("win_probability", "must be a whole number from 0 to 100")
    fixed = FIXED_WIN_PROBABILITY.get(stage_type)
    if fixed is not None and value != fixed:
        # a closed stage's outcome is known: any other figure would skew the weighted pipeline
        raise InvalidValueError(
            "win_probability", f"a {stage_type} stage's win probability is {fixed} (or null)"
        )
    return value


def custom_fields(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if len(value) > CUSTOM_FIELDS_MAX:
        raise InvalidValueError("custom_fields", f"at most {CUSTOM_FIELDS_MAX} fields")
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise InvalidValueError("custom_fields", "keys must have 1 to 64 characters")
        _no_nul("custom_fields", key)
        if isinstance(item, str):
            _no_nul("custom_fields", item)
        if not isinstance(item, SCALAR) or (isinstance(item, str) and len(item) > 2000):
            raise InvalidValueError(
                "custom_fields",
                f"{key!r} must be a string (≤ 2000), number, boolean or null",
            )
        if isinstance(item, float) and item != item:  # NaN cannot be stored as JSON
            raise InvalidValueError("custom_fields", f"{key!r} is not a number")
    if RESERVED_KEYS & value.keys():
        # the event store's JSON transcoder reads a dict with these keys as an encoded object
        raise InvalidValueError("custom_fields", "keys _type_ and _data_ are reserved")
    return dict(value)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type, recursively: 1 and True are different values to a user."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)
