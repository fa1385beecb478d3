"""A send recorded by a process that is then killed (kill -9) is delivered once after restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa

from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.settings import load_settings
from projections.outbox import outbox
from tests.interfaces.test_process import Proc, child_env, free_port, wait_healthy
from tests.support.databases import scratch_postgres
from tests.support.provider_servers import GraphServer

SECRET = "outbox-process-secret-key-of-at-least-32-chars"
MASTER = "outbox-process-master-key-of-at-least-32-chars"
pytestmark = pytest.mark.slow

# records a template message for a new organization's lead, as a separate process would
RECORD_A_SEND = """
import json, sys
from datetime import UTC, datetime
from application.identity import accounts
from application.leads import commands as leads
from application.context import Ctx
from application.conversations.messages import SendMessage, send_message
from application.conversations.integrations import WhatsAppSetup, setup_provider
from domain.values import Actor, Role
from interfaces.services import build_services
from interfaces.settings import load_settings

svc = build_services(load_settings(), with_runner=False)
done = accounts.register(svc.app, svc.users, svc.hasher, accounts.Register(
    "owner@outbox.example", "long enough pw", "Owner", "Outbox Org"))
ctx = Ctx(done.organization_id, done.user_id, Role.ADMIN, Actor("user", str(done.user_id)))
setup_provider(svc.app, svc.secret_box, "whatsapp", WhatsAppSetup(
    provider="business_api", phone_number_id="1099", access_token="graph-token",
    app_secret="s", verify_token="v", base_url=sys.argv[1]), ctx)
lead = leads.capture_lead(svc.app, leads.CaptureLead(full_name="Ana", phone="+5511987654321"), ctx)
queued = send_message(svc.app, lead.id, SendMessage(template_name="welcome"), ctx,
                      now=datetime.now(UTC))
print(json.dumps({"message_id": str(queued.message_id)}))
svc.close()
"""


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_send_recorded_before_a_kill_is_delivered_once_after_restart(
    backend: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        if backend == "postgres":
            url = stack.enter_context(scratch_postgres("crm_test_outbox"))
        else:
            url = f"sqlite:///{tmp_path}/crm.db"
        crm = {
            "CRM_DATABASE_URL": url,
            "CRM_SECRET_KEY": SECRET,
            "CRM_MASTER_KEY": MASTER,
            "CRM_THREADS": "4",
            "CRM_PROVIDER_PRIVATE_URLS": "on",  # the Graph server is local
        }
        settings = load_settings(crm)
        engine = make_engine(settings)
        migrate(settings, engine)
        try:
            with GraphServer(access_token="graph-token") as graph:
                _crash_and_restart(crm, engine, graph, tmp_path)
        finally:
            engine.dispose()


def _crash_and_restart(
    crm: dict[str, str], engine: sa.Engine, graph: GraphServer, cwd: Path
) -> None:
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"

    def status(item: UUID) -> str | None:
        with engine.connect() as conn:
            found = conn.execute(sa.select(outbox.c.status).where(outbox.c.item_id == item))
            return found.scalar()

    first = Proc(serve, child_env(**crm, CRM_OUTBOX="off"), cwd)
    try:
        wait_healthy(base, first)
        recorded = subprocess.run(
            [sys.executable, "-c", RECORD_A_SEND, graph.url],
            env=child_env(**crm),
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert recorded.returncode == 0, recorded.stderr
        message_id = UUID(json.loads(recorded.stdout.strip().splitlines()[-1])["message_id"])
        eventually(lambda: status(message_id) == "pending", "the outbox row is projected")
    finally:
        first.kill()  # SIGKILL: no shutdown of any kind
    assert graph.requests == []

    second = Proc(serve, child_env(**crm), cwd)
    try:
        wait_healthy(base, second)
        eventually(lambda: status(message_id) == "done", "the message is delivered")
        time.sleep(1.5)  # a second delivery would show within a poll interval
    finally:
        second.kill()
    third = Proc(serve, child_env(**crm), cwd)  # and a later restart sends nothing again
    try:
        wait_healthy(base, third)
        time.sleep(1.5)
        assert third.stop() == 0, third.output()
    finally:
        third.kill()
    assert [r.json["biz_opaque_callback_data"] for r in graph.requests] == [str(message_id)]
    assert "Traceback" not in second.output() + third.output()
