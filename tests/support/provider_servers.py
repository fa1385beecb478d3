"""Local HTTP servers speaking the providers' APIs, for adapters (and the SDKs) to talk to.

Each server runs a stdlib `ThreadingHTTPServer` on 127.0.0.1 (port 0) in a thread, records every
request it receives (`requests`, thread-safe) and can be scripted to fail: `fail_next(n, status)`
answers the next n requests with that status and the provider's own error shape;
`disconnect_next(n)` closes the connection without an answer (a lost response).

    with GraphServer(access_token="t") as graph:
        ... CloudApiSender(credentials(base_url=graph.url), client) ...
        assert graph.requests[0].json["to"] == "+5511987654321"
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

Answer = tuple[int, Any]  # status, JSON-able body (bytes are sent as they are)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the provider received it. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    parsed: Any = None  # JSON → its value; form-encoded → dict[str, list[str]]

    @property
    def json(self) -> Any:
        return self.parsed

    @property
    def form(self) -> dict[str, str]:
        """Form fields with one value each (see `parsed` for repeated fields)."""
        return {name: values[-1] for name, values in (self.parsed or {}).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class _Script:
    failures: deque[tuple[int, Any]] = field(default_factory=deque)
    disconnects: int = 0


class ProviderServer:
    """Base class: subclasses implement `handle` (route + answer) and `error_body`."""

    name = "provider"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script = _Script()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() may wait for the loop to notice
            name=f"{self.name}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # recording and scripting

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def fail_next(self, n: int = 1, status: int = 500, body: Any = None) -> None:
        """Answer the next n requests with `status` and the provider's error (or `body`)."""
        with self._lock:
            for _ in range(n):
                self._script.failures.append((status, body))

    def disconnect_next(self, n: int = 1) -> None:
        """Close the next n connections without answering (the request was received)."""
        with self._lock:
            self._script.disconnects += n

    # for subclasses

    def handle(self, request: RecordedRequest) -> Answer:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "status": status}

    # plumbing

    def _serve(self, request: RecordedRequest) -> Answer | None:
        with self._lock:
            self._requests.append(request)
            if self._script.disconnects:
                self._script.disconnects -= 1
                return None
            scripted = self._script.failures.popleft() if self._script.failures else None
        if scripted is not None:
            status, body = scripted
            return status, body if body is not None else self.error_body(status, "scripted failure")
        return self.handle(request)


def _handler_for(provider: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _dispatch(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=unquote(split.path),
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=raw,
                parsed=_parse(self.headers.get("Content-Type", ""), raw),
            )
            answer = provider._serve(request)
            if answer is None:
                self.close_connection = True
                return
            status, body = answer
            if isinstance(body, bytes):
                payload, kind = body, "application/octet-stream"
            else:
                payload, kind = json.dumps(body).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; the requests are recorded instead

    return Handler


def _parse(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            return None
    if "x-www-form-urlencoded" in content_type:
        return parse_qs(raw.decode(), keep_blank_values=True)
    return None


def _bearer(request: RecordedRequest) -> str | None:
    value = request.header("authorization") or ""
    return value[7:] if value.startswith("Bearer ") else None


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


# WhatsApp Cloud API (Graph)


class GraphServer(ProviderServer):
    """`POST /vNN.N/{phone_number_id}/messages` with a Bearer token, answering like Graph."""

    name = "graph"
    PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/messages$")

    def __init__(self, access_token: str = "graph-token", phone_number_id: str | None = None):
        super().__init__()
        self.access_token = access_token
        self.phone_number_id = phone_number_id  # None: any number id is accepted

    def handle(self, request: RecordedRequest) -> Answer:
        match = self.PATH.match(request.path)
        if request.method != "POST" or match is None:
            return 400, self.graph_error(
                100, "Unsupported post request.", type_="GraphMethodException"
            )
        if _bearer(request) != self.access_token:
            return 401, self.graph_error(
                190, "Invalid OAuth access token - Cannot parse access token"
            )
        if self.phone_number_id is not None and match.group(2) != self.phone_number_id:
            return 400, self.graph_error(100, "Object with ID does not exist", subcode=33)
        body = request.json
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return 400, self.graph_error(100, "(#100) The parameter messaging_product is required.")
        if not body.get("to") or body.get("type") not in ("text", "template"):
            return 400, self.graph_error(100, "(#100) Invalid parameter")
        message: dict[str, str] = {"id": "wamid." + secrets.token_urlsafe(24)}
        if body["type"] == "template":
            message["message_status"] = "accepted"
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": _digits(body["to"])}],
            "messages": [message],
        }

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return self.graph_error(130429, "Rate limit hit")
        if status >= 500:
            return self.graph_error(131000, "Something went wrong")
        return self.graph_error(100, message)

    @staticmethod
    def graph_error(
        code: int, message: str, *, subcode: int | None = None, type_: str = "OAuthException"
    ) -> dict[str, Any]:
        """Graph's error envelope, e.g. `graph_error(131047, "Re-engagement message")`."""
        error: dict[str, Any] = {"message": message, "type": type_, "code": code}
        if subcode is not None:
            error["error_subcode"] = subcode
        error["fbtrace_id"] = secrets.token_urlsafe(12)
        return {"error": error}


# WAHA (WhatsApp Web bridge)


class WahaServer(ProviderServer):
    """WAHA's sessions, auth/qr and sendText endpoints behind an `X-Api-Key`.

    `sessions` maps name → WAHA status; by default one WORKING session named "default".
    A started session waits for a scan (SCAN_QR_CODE) with `qr_value` as its QR.
    `message_id_style` chooses how sendText answers the id: "object" (WEBJS), "string", or
    "key" (NOWEB/GOWS: Baileys' message, `key: {remoteJid: <digits>@s.whatsapp.net, fromMe, id}`).
    """

    name = "waha"

    def __init__(
        self,
        api_key: str = "waha-key",
        sessions: dict[str, str] | None = None,
        qr_value: str = "2@QRVALUE,abcdef==,ghijkl==,mnopqr==",
        message_id_style: str = "object",
    ):
        super().__init__()
        self.api_key = api_key
        self.qr_value = qr_value
        self.message_id_style = message_id_style
        self.sessions: dict[str, dict[str, Any]] = {
            name: {"name": name, "status": status, "config": {}}
            for name, status in ({"default": "WORKING"} if sessions is None else sessions).items()
        }

    def set_status(self, session: str, status: str) -> None:
        with self._lock:
            self.sessions[session]["status"] = status

    def handle(self, request: RecordedRequest) -> Answer:
        if request.header("x-api-key") != self.api_key:
            return 401, {"message": "Unauthorized", "statusCode": 401}
        with self._lock:
            return self._route(request)

    def _route(self, request: RecordedRequest) -> Answer:
        parts = request.path.strip("/").split("/")
        method = request.method
        if method == "POST" and parts == ["api", "sendText"]:
            return self._send_text(request.json or {})
        if method == "POST" and parts == ["api", "sessions"]:
            return self._create(request.json or {})
        if len(parts) >= 3 and parts[:2] == ["api", "sessions"]:
            session = self.sessions.get(parts[2])
            if session is None:
                return 404, self.error_body(404, f"Session '{parts[2]}' does not exist")
            if method == "GET" and len(parts) == 3:
                return 200, self._info(session)
            if method == "PUT" and len(parts) == 3:
                session["config"] = (request.json or {}).get("config") or {}
                return 200, self._info(session)
            if method == "POST" and len(parts) == 4 and parts[3] in ("start", "stop", "logout"):
                session["status"] = "SCAN_QR_CODE" if parts[3] == "start" else "STOPPED"
                return 201, self._info(session)
        if (
            method == "GET"
            and len(parts) == 4
            and parts[0] == "api"
            and parts[2:] == ["auth", "qr"]
        ):
            return self._qr(parts[1], request)
        return 404, self.error_body(404, f"Cannot {method} {request.path}")

    def _create(self, body: dict[str, Any]) -> Answer:
        name = body.get("name") or "default"
        if name in self.sessions:
            message = f"Session '{name}' already exists. Use PUT to update it."
            return 422, self.error_body(422, message)
        status = "SCAN_QR_CODE" if body.get("start", True) else "STOPPED"
        self.sessions[name] = {"name": name, "status": status, "config": body.get("config") or {}}
        return 201, self._info(self.sessions[name])

    def _qr(self, name: str, request: RecordedRequest) -> Answer:
        session = self.sessions.get(name)
        if session is None or session["status"] != "SCAN_QR_CODE":
            status = session["status"] if session else "absent"
            return 422, self.error_body(422, f"Can get QR code only in SCAN_QR_CODE, not {status}")
        if request.query.get("format") == ["raw"]:
            return 200, {"value": self.qr_value}
        return 200, b"\x89PNG\r\n\x1a\n"  # the image form; adapters ask for the raw value

    def _send_text(self, body: dict[str, Any]) -> Answer:
        session = self.sessions.get(body.get("session") or "default")
        if session is None:
            return 404, self.error_body(404, "Session does not exist")
        if session["status"] != "WORKING":
            status = session["status"]
            return 422, self.error_body(422, f"Session status is not as expected: {status}")
        chat = str(body.get("chatId", ""))
        if not chat.endswith(("@c.us", "@g.us")) or not body.get("text"):
            return 400, self.error_body(400, "chatId and text are required")
        serialized = f"true_{chat}_{secrets.token_hex(10).upper()}"
        ident: Any = serialized
        if self.message_id_style == "object":
            ident = {
                "fromMe": True,
                "remote": chat,
                "id": serialized.rsplit("_", 1)[1],
                "_serialized": serialized,
            }
        if self.message_id_style == "key":
            key = {
                "remoteJid": chat.replace("@c.us", "@s.whatsapp.net"),
                "fromMe": True,
                "id": serialized.rsplit("_", 1)[1],
            }
            message = {"extendedTextMessage": {"text": body["text"]}}
            return 201, {
                "key": key,
                "message": message,
                "messageTimestamp": str(int(time.time())),
                "status": "PENDING",
            }
        return 201, {"id": ident, "body": body["text"], "to": chat, "fromMe": True, "ack": 0}

    def _info(self, session: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": session["name"],
            "status": session["status"],
            "config": session["config"],
            "me": None,
            "engine": {"engine": "WEBJS"},
        }

    def error_body(self, status: int, message: str) -> Any:
        reasons = {400: "Bad Request", 404: "Not Found", 422: "Unprocessable Entity"}
        return {"statusCode": status, "message": message, "error": reasons.get(status, "Error")}


# Twilio REST API


class TwilioServer(ProviderServer):
    """`POST /2010-04-01/Accounts/{sid}/Calls.json` (form-encoded, HTTP Basic sid:token)."""

    name = "twilio"
    PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Calls\.json$")

    def __init__(self, account_sid: str | None = None, auth_token: str = "twilio-token"):
        super().__init__()
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token

    def handle(self, request: RecordedRequest) -> Answer:
        if not self._authorized(request):
            return 401, self.twilio_error(401, 20003, "Authenticate")
        match = self.PATH.match(request.path)
        if match is None or request.method != "POST":
            return 404, self.twilio_error(404, 20404, "The requested resource was not found")
        if match.group(1) != self.account_sid:
            return 403, self.twilio_error(403, 20403, "Forbidden")
        form = request.form
        if not form.get("To"):
            return 400, self.twilio_error(400, 21201, "No 'To' number is specified")
        if not form.get("From"):
            return 400, self.twilio_error(400, 21213, "No 'From' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return 400, self.twilio_error(400, 21205, "Url parameter is required.")
        return 201, self.call_resource(form)

    def _authorized(self, request: RecordedRequest) -> bool:
        value = request.header("authorization") or ""
        if not value.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def call_resource(self, form: dict[str, str]) -> dict[str, Any]:
        sid = "CA" + secrets.token_hex(16)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}"
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": now,
            "date_updated": now,
            "to": form["To"],
            "to_formatted": form["To"],
            "from": form["From"],
            "from_formatted": form["From"],
            "phone_number_sid": "PN" + secrets.token_hex(16),
            "status": "queued",
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "payments": f"{uri}/Payments.json",
                "events": f"{uri}/Events.json",
                "siprec": f"{uri}/Siprec.json",
                "streams": f"{uri}/Streams.json",
                "user_defined_messages": f"{uri}/UserDefinedMessages.json",
            },
        }

    def error_body(self, status: int, message: str) -> Any:
        return self.twilio_error(status, 20429 if status == 429 else 20500, message)

    @staticmethod
    def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
        return {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }


# Telnyx Call Control


class TelnyxServer(ProviderServer):
    """`POST /v2/calls` (Dial) with a Bearer API key.

    A Dial repeating a `command_id` answers the first call's data again: Telnyx ignores
    duplicate commands, and this is how a test observes "placed once".
    """

    name = "telnyx"

    def __init__(self, api_key: str = "telnyx-key"):
        super().__init__()
        self.api_key = api_key
        self.calls_by_command: dict[str, dict[str, Any]] = {}

    def handle(self, request: RecordedRequest) -> Answer:
        if _bearer(request) != self.api_key:
            return 401, self.telnyx_error(
                "10009", "Authentication failed", "Could not understand the provided API key."
            )
        if request.method != "POST" or request.path.rstrip("/") != "/v2/calls":
            return 404, self.telnyx_error("10005", "Resource not found", request.path)
        body = request.json if isinstance(request.json, dict) else {}
        for required in ("connection_id", "to", "from"):
            if not body.get(required):
                return 422, self.telnyx_error(
                    "10032", "Missing required parameter", f"'{required}' is required."
                )
        with self._lock:
            command = body.get("command_id")
            if command and command in self.calls_by_command:
                return 200, {"data": self.calls_by_command[command]}
            data = {
                "call_control_id": f"v3:{secrets.token_urlsafe(32)}",
                "call_leg_id": str(uuid.uuid4()),
                "call_session_id": str(uuid.uuid4()),
                "is_alive": False,
                "record_type": "call",
            }
            if command:
                self.calls_by_command[command] = data
        return 200, {"data": data}

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return self.telnyx_error("10011", "Too many requests", message)
        return self.telnyx_error("10007", "Unexpected error", message)

    @staticmethod
    def telnyx_error(code: str, title: str, detail: str) -> dict[str, Any]:
        return {"errors": [{"code": code, "title": title, "detail": detail}]}
