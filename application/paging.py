"""Keyset pagination shared by every list: pages, opaque cursors, the limit's bounds."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import InvalidValueError

MAX_LIMIT = 200


class Page(msgspec.Struct, frozen=True):
    items: list[Any]
    next_cursor: str | None


def limit_of(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValueError("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def encode_cursor(*parts: object) -> str:
    raw = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = raw.split("|")
    except (ValueError, UnicodeDecodeError):
        parts = []
    if len(parts) != count:
        raise InvalidValueError("cursor", "is not a cursor this list gave out")
    return parts


def number_cursor(cursor: str) -> int:
    (raw,) = decode_cursor(cursor, 1)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise InvalidValueError("cursor", "is not a cursor this list gave out")
    return int(raw)
