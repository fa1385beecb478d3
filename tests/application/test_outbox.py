"""The outbox delivers each recorded send once, through the real adapters to local provider
servers, retrying what may succeed later and settling what the aggregate shows as handled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from application.context import Ctx
from application.conversations.calls import PlaceCall, place_call
from application.conversations.integrations import VoipSetup, WhatsAppSetup, setup_provider
from application.conversations.messages import MessageQueued, SendMessage, mark_sent, send_message
from application.conversations.outbox import OUTBOX_ACTOR, Dispatcher, RetryPolicy
from application.leads import commands as leads
from domain.call import Call
from domain.conversation import Conversation
from interfaces.services import Services, build_services
from projections.outbox import OutboxProjector, claim_next, outbox
from projections.runner import ProjectionRunner, positions
from tests.application.test_handlers import owner_of
from tests.conftest import settings_for
from tests.support.provider_servers import GraphServer, TelnyxServer, TwilioServer

PHONE = "+5511987654321"
CALLER = "+551133334444"


class Clock:
    """Real time, moved forward by the test."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def svc(database_url: str) -> Iterator[Services]:
    """Projectors running, the background outbox off: tests drive the dispatcher themselves."""
    services = build_services(settings_for(database_url, CRM_OUTBOX="off"))
    services.start_projections()
    # the PostgreSQL database is shared by the session: sends recorded by other suites (with
    # their outbox off) are not this test's to deliver
    head = services.app.recorder.max_notification_id() or 0
    assert services.wait_for(["outbox"], head, timeout=30)
    with services.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM outbox")
    yield services
    services.close()


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(access_token="graph-token") as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def dispatcher(svc: Services, clock: Clock, **policy: Any) -> Dispatcher:
    return Dispatcher(
        svc.app,
        svc.engine,
        svc.secret_box,
        svc.providers,
        "https://crm.example",
        policy=RetryPolicy(**policy),
        clock=clock,
        jitter=lambda: 0.0,
    )


def whatsapp_org(svc: Services, graph: GraphServer) -> Ctx:
    ctx = owner_of(svc)
    setup = WhatsAppSetup(
        provider="business_api",
        phone_number_id="1234567890",
        access_token=graph.access_token,
        app_secret="app-secret",
        verify_token="verify-token",
        base_url=graph.url,
    )
    setup_provider(svc.app, svc.secret_box, "whatsapp", setup, ctx)
    return ctx


def queue_message(svc: Services, ctx: Ctx, phone: str = PHONE) -> MessageQueued:
    lead = leads.capture_lead(svc.app, leads.CaptureLead(full_name="Ana", phone=phone), ctx)
    cmd = SendMessage(template_name="welcome", template_language="pt_BR")
    queued = send_message(svc.app, lead.id, cmd, ctx, now=datetime.now(UTC))
    assert svc.wait_for(["outbox"], queued.position, timeout=10)
    return queued


def row(svc: Services, item_id: UUID) -> dict[str, Any]:
    with svc.engine.connect() as conn:
        found = conn.execute(sa.select(outbox).where(outbox.c.item_id == item_id)).mappings()
        return dict(found.one())


def message_status(svc: Services, ctx: Ctx, queued: MessageQueued) -> str:
    conversation = svc.app.load(Conversation, queued.conversation_id, ctx.organization_id)
    return conversation.statuses[queued.message_id]


def keys(server: Any) -> list[str]:
    return [r.json["biz_opaque_callback_data"] for r in server.requests]


def test_a_recorded_message_is_delivered_once_and_its_provider_id_recorded(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    assert row(svc, queued.message_id)["status"] == "pending"
    outbox_ = dispatcher(svc, clock)
    assert outbox_.run_once() == 1
    assert outbox_.run_once() == 0
    [request] = graph.requests
    assert request.json["to"] == PHONE
    assert request.json["template"]["name"] == "welcome"
    assert keys(graph) == [str(queued.message_id)]
    assert message_status(svc, ctx, queued) == "sent"
    conversation = svc.app.load(Conversation, queued.conversation_id, ctx.organization_id)
    assert list(conversation.provider_ids.values()) == [queued.message_id]
    assert row(svc, queued.message_id)["status"] == "done"


def test_a_server_error_is_retried_later_with_the_same_idempotency_key(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    graph.fail_next(1, 500)
    outbox_ = dispatcher(svc, clock)
    assert outbox_.run_once() == 1
    waiting = row(svc, queued.message_id)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert "131000" in waiting["last_error"]
    assert message_status(svc, ctx, queued) == "queued"
    assert outbox_.run_once() == 0  # not due yet: backing off
    clock.advance(seconds=2)
    assert outbox_.run_once() == 1
    assert keys(graph) == [str(queued.message_id)] * 2
    assert message_status(svc, ctx, queued) == "sent"
    events = svc.app.events.get(queued.conversation_id)
    sent = [e for e in events if isinstance(e, Conversation.MessageStatusChanged)]
    assert [(e.status, e.actor) for e in sent] == [("sent", OUTBOX_ACTOR)]


def test_a_refused_message_fails_at_once_with_the_providers_error(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    graph.fail_next(1, 400, GraphServer.graph_error(131047, "Re-engagement message"))
    outbox_ = dispatcher(svc, clock)
    assert outbox_.run_once() == 1
    clock.advance(hours=1)
    assert outbox_.run_once() == 0
    assert len(graph.requests) == 1
    assert message_status(svc, ctx, queued) == "failed"
    failed = row(svc, queued.message_id)
    assert failed["status"] == "failed"
    assert "131047" in failed["last_error"] and "Re-engagement" in failed["last_error"]


def test_retryable_failures_give_up_after_the_last_attempt(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    graph.fail_next(5, 503)
    outbox_ = dispatcher(svc, clock, max_attempts=3)
    for _ in range(4):
        outbox_.run_once()
        clock.advance(minutes=5)
    assert len(graph.requests) == 3
    assert row(svc, queued.message_id)["status"] == "failed"
    assert message_status(svc, ctx, queued) == "failed"


def test_a_message_already_recorded_as_sent_is_settled_without_a_request(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    """A worker died after recording the provider's answer, before settling its row (and the
    projector has not settled it either)."""
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    svc.stop_projections()
    org = ctx.organization_id
    mark_sent(
        svc.app, org, queued.conversation_id, queued.message_id, "wamid.X", actor=OUTBOX_ACTOR
    )
    assert row(svc, queued.message_id)["status"] == "pending"
    assert dispatcher(svc, clock).run_once() == 1
    assert graph.requests == []
    assert row(svc, queued.message_id)["status"] == "done"


def test_a_claim_whose_worker_died_expires_and_the_item_is_then_delivered(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    with svc.engine.begin() as conn:  # a worker claims the row, then dies
        assert claim_next(conn, clock(), timedelta(seconds=120)) is not None
    outbox_ = dispatcher(svc, clock)
    assert outbox_.run_once() == 0
    clock.advance(seconds=121)
    assert outbox_.run_once() == 1
    assert keys(graph) == [str(queued.message_id)]
    assert message_status(svc, ctx, queued) == "sent"


def test_an_item_not_delivered_within_a_day_fails_without_a_request(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = queue_message(svc, ctx)
    clock.advance(hours=25)
    assert dispatcher(svc, clock).run_once() == 1
    assert graph.requests == []
    assert message_status(svc, ctx, queued) == "failed"


def test_concurrent_workers_deliver_each_message_once(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    queued = [queue_message(svc, ctx, f"+55119876543{i:02d}") for i in range(12)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            dispatcher(svc, clock).run_once()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(keys(graph)) == sorted(str(q.message_id) for q in queued)
    assert {message_status(svc, ctx, q) for q in queued} == {"sent"}


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
def test_a_call_is_placed_with_our_status_callback_and_its_provider_id_recorded(
    svc: Services, clock: Clock, provider: str
) -> None:
    server: TwilioServer | TelnyxServer = TwilioServer() if provider == "twilio" else TelnyxServer()
    with server:
        ctx = owner_of(svc)
        if isinstance(server, TwilioServer):
            setup = VoipSetup(
                provider="twilio",
                account_sid=server.account_sid,
                auth_token=server.auth_token,
                base_url=server.url,
                numbers=[CALLER],
            )
        else:
            setup = VoipSetup(
                provider="telnyx",
                api_key=server.api_key,
                public_key="cHVibGljLWtleQ==",
                connection_id="conn-1",
                base_url=f"{server.url}/v2",
                numbers=[CALLER],
            )
        setup_provider(svc.app, svc.secret_box, "voip", setup, ctx)
        lead = leads.capture_lead(svc.app, leads.CaptureLead(full_name="Bo", phone=PHONE), ctx)
        queued = place_call(svc.app, lead.id, PlaceCall(), ctx)
        assert svc.wait_for(["outbox"], queued.position, timeout=10)
        assert dispatcher(svc, clock).run_once() == 1
        [request] = server.requests
    org, call_id = ctx.organization_id, queued.call_id
    if provider == "twilio":
        sent = request.form
        assert (sent["From"], sent["To"]) == (CALLER, PHONE)
        assert sent["StatusCallback"] == (
            f"https://crm.example/webhooks/twilio/{org}/status?call_id={call_id}"
        )
    else:
        sent = request.json
        assert (sent["from"], sent["to"], sent["command_id"]) == (CALLER, PHONE, str(call_id))
        assert sent["webhook_url"] == f"https://crm.example/webhooks/telnyx/{org}?call_id={call_id}"
    call = svc.app.load(Call, call_id, org)
    assert call.provider_call_id
    assert row(svc, call_id)["status"] == "done"


def test_rebuilding_the_outbox_does_not_send_delivered_messages_again(
    svc: Services, graph: GraphServer, clock: Clock
) -> None:
    ctx = whatsapp_org(svc, graph)
    delivered = queue_message(svc, ctx)
    assert dispatcher(svc, clock).run_once() == 1
    waiting = queue_message(svc, ctx, "+5511912345678")
    svc.stop_projections()
    with svc.engine.begin() as conn:
        conn.execute(outbox.delete())
        conn.execute(
            positions.update().where(positions.c.projection_name == "outbox").values(position=0)
        )
    runner = ProjectionRunner(svc.engine, svc.app.recorder, svc.app.mapper, [OutboxProjector()])
    runner.catch_up()
    with svc.engine.begin() as conn:  # the session's shared database holds others' sends too
        conn.execute(outbox.delete().where(outbox.c.organization_id != ctx.organization_id))
    assert row(svc, delivered.message_id)["status"] == "done"
    assert row(svc, waiting.message_id)["status"] == "pending"
    assert dispatcher(svc, clock).run_once() == 1
    assert keys(graph) == [str(delivered.message_id), str(waiting.message_id)]
