"""Prometheus metrics: requests counted and timed by ASGI middleware, state read at each scrape.

Labels are bounded by the code, never by the traffic: a request's route is its template
(`/crm/leads/{lead_id}`, never the path and its ids; `unmatched` for every path no route
matched), its method one of the HTTP methods (`OTHER` beside them), its status the answer's
code. No label names an organization or a user.

Several server processes (`crm serve --workers N`) each count their own requests: the serve
command then points PROMETHEUS_MULTIPROC_DIR at a fresh directory where each process writes its
figures, and a scrape of any worker sums every process's (prometheus_client's multiprocess
mode). The projectors' lag and the outbox queue are read from the database at the scrape, so
they are the same whichever process answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import PersistenceError
from litestar.enums import ScopeType
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from interfaces.operations import outbox_depth, projector_lags

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from interfaces.services import Services

log = logging.getLogger("crm.metrics")
# Litestar adds "; charset=utf-8" to text/* types itself (the constant has it already)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.replace("; charset=utf-8", "")
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LABELS = ("method", "route", "status")
#: seconds; an API answer is expected well under a second, reports and exports take longer
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_mode() -> bool:
    """prometheus_client writes to files when this variable is set (read when it is imported)."""
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


class Metrics:
    """One app's metrics, in a registry of its own (apps built in one process do not mix)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "crm_http_requests",
            "HTTP requests answered, by method, route template and status.",
            LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "crm_http_request_duration_seconds",
            "Time to answer an HTTP request (live streams excluded), by method, route template "
            "and status.",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.live = Gauge(
            "crm_live_connections",
            "Open live-update connections, by transport (sse, websocket).",
            ["transport"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        #: (method, route, status) -> its counter and histogram: the labels are bounded by the
        #: routes, the methods and the status codes, so this stays small
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.sse = self.live.labels("sse")
        self.websocket = self.live.labels("websocket")
        if not self.multiprocess:  # these read this process only: meaningless summed
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def count(self, method: str, route: str, status: int, seconds: float | None) -> None:
        key = (method if method in METHODS else "OTHER", route, status)
        children = self._children.get(key)
        if children is None:  # labels() costs several µs: look each combination up once
            labels = (key[0], route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)

    def exposition(self, services: Services) -> bytes:
        """The text format: this process's (or every process's) counters, then the state."""
        if self.multiprocess:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            counted = generate_latest(registry)
        else:
            counted = generate_latest(self.registry)
        return counted + generate_latest(StateCollector(services))

    def process_ended(self) -> None:
        """Forget this process's live gauges (its counters stay in the sums, as they should)."""
        if self.multiprocess:
            prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class StateCollector:
    """Figures read from the database when scraped: projectors' lag, the outbox queue."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "crm_database_up", "1 when the scrape could read the database, else 0."
        )
        try:
            families = list(self._read())
        except (SQLAlchemyError, PersistenceError, OSError):  # still answer the request counts
            log.warning("metrics: the database could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[Metric]:
        services = self.services
        head, lags = projector_lags(services.engine, services.app)
        log_head = GaugeMetricFamily("crm_event_log_head", "The event log's last position.")
        log_head.add_metric([], head)
        yield log_head
        lag = GaugeMetricFamily(
            "crm_projector_lag_events",
            "Events of the log a projector has yet to apply (log head - position).",
            labels=["projector"],
        )
        position = GaugeMetricFamily(
            "crm_projector_position",
            "The last log position a projector applied.",
            labels=["projector"],
        )
        for item in lags:
            lag.add_metric([item.name], item.lag)
            position.add_metric([item.name], item.position)
        yield lag
        yield position
        with services.engine.connect() as conn:
            depth = outbox_depth(conn)
        queue = GaugeMetricFamily(
            "crm_outbox_items",
            "Outbox items (sends to providers) by status, every organization summed: pending "
            "(waiting or retrying), sending (claimed), failed (given up).",
            labels=["status"],
        )
        for status, n in depth.items():
            queue.add_metric([status], n)
        yield queue


class RequestMetrics:
    """ASGI middleware: counts and times each HTTP request; gauges open live connections.

    Wraps the whole handler (routing included), so 404s and 405s of unknown paths are counted
    under `unmatched`. A Server-Sent Events answer is counted when it ends but not timed (it
    lasts as long as the client stays), and gauged while open; a WebSocket is gauged from its
    first frame sent (a refused ticket is closed before any) until it ends.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            await self._http(scope, receive, send)
        elif scope["type"] == ScopeType.WEBSOCKET:
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # unless a response starts
        streaming = False

        async def observed(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = _is_event_stream(message)
                if streaming:
                    self.metrics.sse.inc()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            if streaming:
                self.metrics.sse.dec()
            self.metrics.count(
                str(scope.get("method", "GET")),
                scope.get("path_template") or UNMATCHED,
                status,
                None if streaming else time.perf_counter() - started,
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        opened = False

        async def observed(message: Message) -> None:
            nonlocal opened
            if not opened and message["type"] == "websocket.send":
                opened = True
                self.metrics.websocket.inc()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            if opened:
                self.metrics.websocket.dec()


def _is_event_stream(message: Any) -> bool:
    for name, value in message.get("headers") or ():
        if name.lower() == b"content-type":
            return bytes(value).startswith(b"text/event-stream")
    return False
