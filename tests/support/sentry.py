"""A local stand-in for Sentry's ingestion endpoint: it keeps every envelope the SDK really sends.

The SDK posts envelopes to `/api/<project>/envelope/` of its DSN's host (gzip-compressed or
not); an envelope is newline-delimited JSON: a header, then an item header and its payload per
item. `dsn` points an SDK at this server.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Envelope:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.split(b"\n")
        self.header: dict[str, Any] = json.loads(lines[0])
        self.items: list[tuple[dict[str, Any], Any]] = []
        rest = lines[1:]
        while rest and rest[0].strip():
            item_header = json.loads(rest[0])
            payload = rest[1] if len(rest) > 1 else b""
            try:
                body: Any = json.loads(payload)
            except ValueError:
                body = payload
            self.items.append((item_header, body))
            rest = rest[2:]

    def events(self, kind: str = "event") -> list[dict[str, Any]]:
        return [body for header, body in self.items if header.get("type") == kind]


class SentryServer:
    """Runs on 127.0.0.1 in a thread; `envelopes` grows as the SDK sends."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                with server._lock:
                    server.paths.append(self.path)
                    server.envelopes.append(Envelope(raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.httpd.server_address[1]}/1"

    def __enter__(self) -> SentryServer:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def events(
        self, wanted: int = 1, timeout: float = 10, kind: str = "event"
    ) -> list[dict[str, Any]]:
        """The events (errors, or `kind="transaction"`) received, once at least `wanted` arrived
        (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [e for envelope in self.envelopes for e in envelope.events(kind)]
            if len(found) >= wanted or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(envelope.raw for envelope in self.envelopes)
