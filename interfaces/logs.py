"""Structured logs: one JSON object per line on stdout, secrets masked before rendering.

Both structlog loggers and the standard library's (our own, libraries') go through one
formatter, so every line carries the request's bound context (request_id, …) and passes the
same redaction.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|authorization|api[-_]?key|cookie|credential|signature|"
    r"^key$|[-_]key$",
    re.IGNORECASE,
)
SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), REDACTED),  # a JWT anywhere
    (  # a URL's query parameter with a secret-looking name, in any message
        re.compile(
            r"(?i)([?&;][^=&\s]*(?:token|pass|secret|key|auth|code|signature)[^=&\s]*=)[^&#\s\"']*"
        ),
        r"\1" + REDACTED,
    ),
]


def redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Mask values under secret-looking names, and credentials inside any text."""
    return {key: _clean(key, value) for key, value in event.items()}


def _clean(name: str, value: Any) -> Any:
    if SECRET_NAME.search(name) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        for pattern, replacement in SECRET_TEXT:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(name, v) for v in value]
    return value


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout is at the time (test capture replaces it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stdout for every logger (idempotent: repeated calls replace the handler)."""
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _Stdout()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stdout)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
