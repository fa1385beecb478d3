"""Structured access logs: one JSON line per request with its request id, tenant and timing;
exceptions with their traceback; and no secret ever written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import get
from litestar.testing import TestClient

from tests.support.api import register

CRM = str(Path(sys.executable).with_name("crm"))


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def access(text: str) -> list[dict[str, Any]]:
    return [e for e in lines(text) if e.get("logger") == "crm.access"]


def test_each_request_is_one_json_line_with_its_tenant_route_status_and_duration(
    client: TestClient[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    acme = register(client)
    lead = acme.capture()
    capsys.readouterr()

    response = acme.get(f"/crm/leads/{lead['id']}", headers={"X-Request-Id": "req-42.a"})
    client.get("/nowhere")

    found, missing = access(capsys.readouterr().out)
    assert response.headers["x-request-id"] == "req-42.a"
    assert found["request_id"] == "req-42.a"
    assert found["level"] == "info" and found["event"] == "request"
    assert (found["method"], found["route"], found["status"]) == (
        "GET",
        "/crm/leads/{lead_id}",
        200,
    )
    assert (found["organization_id"], found["user_id"]) == (acme.organization_id, acme.user_id)
    assert isinstance(found["duration_ms"], float) and found["duration_ms"] > 0
    assert (missing["status"], missing["route"], missing["organization_id"]) == (404, None, None)
    assert len(missing["request_id"]) == 32


def test_an_unusable_request_id_is_replaced_by_a_fresh_one(client: TestClient[Any]) -> None:
    given = client.get("/health", headers={"X-Request-Id": 'bad id\t"injected"'})
    assert given.headers["x-request-id"] != 'bad id\t"injected"'
    assert len(given.headers["x-request-id"]) == 32
    assert client.get("/health").headers["x-request-id"] != given.headers["x-request-id"]


def test_an_exception_is_logged_at_error_with_its_traceback_and_request_id(
    client: TestClient[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    @get("/edge-boom", sync_to_thread=True)
    def boom() -> None:
        raise RuntimeError("kaboom in a handler")

    client.app.register(boom)
    capsys.readouterr()

    response = client.get("/edge-boom")

    assert response.status_code == 500
    entries = lines(capsys.readouterr().out)
    error = next(e for e in entries if "exception" in e)
    assert error["level"] == "error"
    assert "Traceback" in error["exception"] and "kaboom in a handler" in error["exception"]
    assert error["request_id"] == response.headers["x-request-id"]
    logged = [e for e in entries if e.get("logger") == "crm.access"]
    assert [(e["route"], e["status"], e["level"]) for e in logged] == [("/edge-boom", 500, "error")]


def test_passwords_tokens_keys_and_cookies_never_reach_the_log(
    client: TestClient[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    password = "S3cret-Pa55word-Xyzzy"
    email = f"owner-{os.getpid()}-{time.monotonic_ns()}@example.com"
    registered = client.post(
        "/auth/register",
        json={
            "email": email,
            "password": password,
            "full_name": "Owner",
            "organization_name": "Secretive",
        },
    )
    assert registered.status_code == 201, registered.text
    login = client.post("/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    org = login.json()["organization_id"]
    api_key = "crm_live_apikey_ZZ9PluralZAlpha"
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Org-Id": org,
        "X-API-Key": api_key,
        "Cookie": "session=cookie-value-QQ77",
    }
    client.get("/crm/leads", headers=headers)
    client.get(f"/crm/leads?token={token}&password={password}&api_key={api_key}", headers=headers)
    client.get(f"/nowhere?secret=hush-hush-77&reset_key={api_key}&q=fine", headers=headers)
    client.post("/auth/login", json={"email": email, "password": password + "-wrong"})

    out = capsys.readouterr().out
    assert len(access(out)) >= 6
    for secret in (
        password,
        token,
        token.split(".")[1],
        api_key,
        "cookie-value-QQ77",
        "hush-hush-77",
    ):
        assert secret not in out
    assert any((e["query"] or "").endswith("q=fine") for e in access(out))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_crm_serve_writes_the_json_lines_to_stdout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "PYTHONUNBUFFERED": "1"}
    subprocess.run([CRM, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
    port = free_port()
    out = (tmp_path / "stdout").open("w+")
    server = subprocess.Popen(
        [CRM, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "crm serve did not start"
                time.sleep(0.1)
        assert response.headers["x-frame-options"] == "DENY"
    finally:
        server.terminate()
        server.wait(10)
    out.seek(0)
    served = access(out.read())
    assert served and served[0]["route"] == "/health" and served[0]["status"] == 200
