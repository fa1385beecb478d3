"""Helpers shared by controllers: read-your-writes waits and request parsing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import ValidationException

from application.audit import export as audit
from domain.errors import InvalidValueError
from interfaces.services import Services

T = TypeVar("T")
MIN_POSITION = "x-min-position"
# an unencoded "+01:00" in a query string arrives as " 01:00"


def read_after(services: Services, request: Request[Any, Any, Any], *names: str) -> dict[str, str]:
    """Wait (bounded) until the read models caught up with X-Min-Position; else mark stale."""
    raw = request.headers.get(MIN_POSITION)
    if raw is None:
        return {}
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationException("X-Min-Position must be a non-negative integer")
    if services.wait_for(names, int(raw)):
        return {}
    return {"X-Stale": "true"}


def answer(data: T, headers: dict[str, str]) -> Response[T]:
    return Response(data, headers=headers or None)


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 date-time in UTC (naive means UTC); 400 for anything else."""
    try:
        return audit.parse_time(name, value)
    except InvalidValueError:
        raise ValidationException(f"{name} must be an ISO 8601 date-time") from None


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


async def refuse_nul_characters(request: Request[Any, Any, Any]) -> None:
    """No text may carry U+0000: PostgreSQL cannot store it, so an event holding one would
    be saved but never projected, stalling every read model behind it."""
    if b"%00" in request.scope["query_string"] or b"\x00" in request.scope["query_string"]:
        raise ValidationException("the query string must not contain NUL characters")
    if request.route_handler.opt.get("streamed_body"):
        return  # a large upload read as a stream by its handler, which refuses NUL itself
    body = await request.body()
    if b"\x00" in body:
        raise ValidationException("the body must not contain NUL characters")
    if b"\\u0000" not in body:
        return
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return  # the handler's own parsing answers 400
    if _holds_nul(decoded):
        raise ValidationException("text must not contain NUL (U+0000) characters")
