"""Helpers shared by controllers: read-your-writes waits and request parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Request, Response
from litestar.exceptions import ValidationException

from interfaces.services import Services

T = TypeVar("T")
MIN_POSITION = "x-min-position"


def read_after(services: Services, request: Request[Any, Any, Any], *names: str) -> dict[str, str]:
    """Wait (bounded) until the read models caught up with X-Min-Position; else mark stale."""
    raw = request.headers.get(MIN_POSITION)
    if raw is None:
        return {}
    if not raw.strip().isdigit():
        raise ValidationException("X-Min-Position must be a non-negative integer")
    if services.wait_for(names, int(raw)):
        return {}
    return {"X-Stale": "true"}


def answer(data: T, headers: dict[str, str]) -> Response[T]:
    return Response(data, headers=headers or None)


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationException(f"{name} must be an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
