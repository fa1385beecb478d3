"""Conversation and call handlers: idempotent inbound recording, concurrent first contacts,
the 24-hour window, provider ids recorded once — on both backends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from application.context import Ctx
from application.conversations import calls, integrations
from application.conversations import messages as conversations
from application.conversations.providers import CallUpdate, InboundMessage, MessageStatusUpdate
from domain.call import Call
from domain.conversation import Conversation, WindowClosedError
from domain.errors import InvalidValueError
from domain.lead import Lead
from interfaces.services import Services
from tests.application.test_handlers import owner_of

PROVIDER = conversations.provider_actor("business_api")
NOW = datetime.now(UTC)


def whatsapp(services: Services, ctx: Ctx) -> None:
    setup = integrations.WhatsAppSetup(
        provider="business_api",
        phone_number_id="1065",
        access_token="a",
        app_secret="b",
        verify_token="c",
    )
    integrations.setup_provider(services.app, services.secret_box, "whatsapp", setup, ctx)


def inbound(wamid: str, sender: str = "5511987654321", at: datetime = NOW) -> InboundMessage:
    return InboundMessage(
        provider_message_id=wamid, from_phone=sender, sent_at=at, text="oi", contact_name="Ana"
    )


def receive(services: Services, ctx: Ctx, message: InboundMessage) -> conversations.Received:
    return conversations.receive_message(
        services.app,
        services,
        ctx.organization_id,
        "business_api",
        message,
        actor=PROVIDER,
    )


def test_concurrent_first_messages_from_one_number_make_one_lead_and_one_conversation(
    services: Services,
) -> None:
    ctx = owner_of(services)
    with ThreadPoolExecutor(6) as pool:
        done = list(
            pool.map(lambda i: receive(services, ctx, inbound(f"wamid.C{i % 3}")), range(6))
        )
    assert len({d.conversation_id for d in done}) == 1
    assert len({d.lead_id for d in done}) == 1
    chat = services.app.load(Conversation, done[0].conversation_id, ctx.organization_id)
    assert sorted(chat.provider_ids) == ["wamid.C0", "wamid.C1", "wamid.C2"]
    lead = services.app.load(Lead, done[0].lead_id, ctx.organization_id)
    assert (lead.source, lead.full_name, lead.phone) == ("whatsapp", "Ana", "+5511987654321")


def test_a_number_that_is_no_phone_is_refused(services: Services) -> None:
    ctx = owner_of(services)
    with pytest.raises(InvalidValueError):
        receive(services, ctx, inbound("wamid.bad", sender="12"))


def test_free_text_needs_the_window_a_template_does_not(services: Services) -> None:
    ctx = owner_of(services)
    whatsapp(services, ctx)
    old = receive(services, ctx, inbound("wamid.old", at=NOW - timedelta(hours=25)))
    text = conversations.SendMessage(text="still there?")
    with pytest.raises(WindowClosedError):
        conversations.send_message(services.app, old.lead_id, text, ctx, now=NOW)
    template = conversations.SendMessage(
        template_name="follow_up", template_language="pt_BR", template_variables={"1": "Ana"}
    )
    queued = conversations.send_message(services.app, old.lead_id, template, ctx, now=NOW)
    assert (queued.status, queued.provider_type) == ("queued", "business_api")
    receive(services, ctx, inbound("wamid.new"))
    assert conversations.send_message(services.app, old.lead_id, text, ctx, now=NOW).status == (
        "queued"
    )


def test_a_status_for_an_unknown_message_is_ignored_and_a_known_one_moves_forward(
    services: Services,
) -> None:
    ctx = owner_of(services)
    whatsapp(services, ctx)
    got = receive(services, ctx, inbound("wamid.in"))
    queued = conversations.send_message(
        services.app, got.lead_id, conversations.SendMessage(text="olá"), ctx, now=NOW
    )
    update = MessageStatusUpdate("wamid.out", "delivered", NOW, recipient="5511987654321")
    org = ctx.organization_id
    assert conversations.record_status(services.app, org, update, actor=PROVIDER) is None
    conversations.mark_sent(
        services.app, org, queued.conversation_id, queued.message_id, "wamid.out", actor=PROVIDER
    )
    assert conversations.record_status(services.app, org, update, actor=PROVIDER)
    assert conversations.record_status(services.app, org, update, actor=PROVIDER) == 0
    chat = services.app.load(Conversation, queued.conversation_id, org)
    assert chat.statuses[queued.message_id] == "delivered"


def test_an_outbound_call_is_recorded_then_dialed_once_and_followed_by_its_callbacks(
    services: Services,
) -> None:
    ctx = owner_of(services)
    voip = integrations.VoipSetup(
        provider="twilio", account_sid="AC1", auth_token="t", numbers=["+14155552671"]
    )
    integrations.setup_provider(services.app, services.secret_box, "voip", voip, ctx)
    from application.leads.commands import CaptureLead, capture_lead

    lead = capture_lead(services.app, CaptureLead(full_name="Ana", phone="+5511987654321"), ctx)
    queued = calls.place_call(services.app, lead.id, calls.PlaceCall(), ctx)
    assert (queued.from_number, queued.to_number) == ("+14155552671", "+5511987654321")
    org = ctx.organization_id
    calls.mark_dialed(services.app, org, queued.call_id, "CA1", actor=PROVIDER)
    assert calls.mark_dialed(services.app, org, queued.call_id, "CA1", actor=PROVIDER) == 0
    for status in ("answered", "ringing", "answered"):  # late and repeated callbacks
        update = CallUpdate("CA1", f"CA1:{status}", status, NOW)
        calls.record_call_update(
            services.app,
            services,
            org,
            "twilio",
            update,
            actor=PROVIDER,
            call_id=queued.call_id,
        )
    ended = CallUpdate("CA1", "CA1:end", "ended", NOW, duration_seconds=30, outcome="completed")
    calls.record_call_update(
        services.app,
        services,
        org,
        "twilio",
        ended,
        actor=PROVIDER,
        call_id=queued.call_id,
    )
    call = services.app.load(Call, queued.call_id, org)
    assert (call.status, call.duration_seconds, call.version) == ("ended", 30, 4)
    with pytest.raises(InvalidValueError):
        calls.place_call(services.app, lead.id, calls.PlaceCall(from_number="+442079460000"), ctx)


def test_a_call_placed_outside_the_crm_is_not_logged(services: Services) -> None:
    ctx = owner_of(services)
    update = CallUpdate(
        "CA9", "e", "ringing", NOW, direction="outbound", from_number="+1", to_number="+2"
    )
    recorded = calls.record_call_update(
        services.app,
        services,
        ctx.organization_id,
        "twilio",
        update,
        actor=PROVIDER,
    )
    assert recorded is None
    assert isinstance(UUID(int=0), UUID)


def test_a_status_that_overtakes_the_outbox_finds_its_message_by_our_echoed_id(
    services: Services,
) -> None:
    ctx = owner_of(services)
    whatsapp(services, ctx)
    got = receive(services, ctx, inbound("wamid.in"))
    queued = conversations.send_message(
        services.app, got.lead_id, conversations.SendMessage(text="olá"), ctx, now=NOW
    )
    org = ctx.organization_id
    early = MessageStatusUpdate(
        "wamid.fast",
        "delivered",
        NOW,
        recipient="5511987654321",
        our_message_id=str(queued.message_id),
    )
    assert conversations.record_status(services.app, org, early, actor=PROVIDER)
    # the outbox records the acceptance afterwards: nothing moves back
    conversations.mark_sent(
        services.app, org, queued.conversation_id, queued.message_id, "wamid.fast", actor=PROVIDER
    )
    chat = services.app.load(Conversation, queued.conversation_id, org)
    assert chat.statuses[queued.message_id] == "delivered"
    assert chat.provider_ids["wamid.fast"] == queued.message_id
    # an echoed id that is not one of our sent messages matches nothing
    stray = MessageStatusUpdate(
        "wamid.x", "read", NOW, recipient="5511987654321", our_message_id=str(got.message_id)
    )
    assert conversations.record_status(services.app, org, stray, actor=PROVIDER) is None


def test_a_web_bridge_sends_free_text_without_the_business_window(services: Services) -> None:
    ctx = owner_of(services)
    setup = integrations.WhatsAppSetup(
        provider="web_bridge",
        base_url="http://127.0.0.1:1",
        session="default",
        api_key="k",
        hmac_key="h",
    )
    integrations.setup_provider(services.app, services.secret_box, "whatsapp", setup, ctx)
    from application.leads.commands import CaptureLead, capture_lead

    lead = capture_lead(services.app, CaptureLead(full_name="Ana", phone="+5511987654321"), ctx)
    sent = conversations.send_message(
        services.app, lead.id, conversations.SendMessage(text="Olá!"), ctx, now=NOW
    )
    assert (sent.status, sent.provider_type) == ("queued", "web_bridge")


def test_a_recording_reported_before_the_hangup_keeps_the_real_end(services: Services) -> None:
    ctx = owner_of(services)
    actor = conversations.provider_actor("telnyx")
    base = {
        "provider_call_id": "v3:abc",
        "direction": "inbound",
        "from_number": "+5511987654321",
        "to_number": "+14155552671",
        "at": NOW,
    }

    def record(update: CallUpdate) -> calls.CallRecorded | None:
        return calls.record_call_update(
            services.app,
            services,
            ctx.organization_id,
            "telnyx",
            update,
            actor=actor,
        )

    first = record(CallUpdate(event_id="e1", status="answered", **base))
    record(
        CallUpdate(
            event_id="e3", status="recording", recording_url="https://r.example/1.mp3", **base
        )
    )
    record(CallUpdate(event_id="e2", status="ended", outcome="busy", duration_seconds=125, **base))
    assert first is not None
    call = services.app.load(Call, first.call_id, ctx.organization_id)
    assert (call.status, call.duration_seconds, call.outcome) == ("ended", 125, "busy")
    assert call.recordings == ["https://r.example/1.mp3"]


def test_old_brazilian_and_mexican_whatsapp_ids_match_todays_numbers() -> None:
    from projections.phones import e164

    assert e164("553188887777") == e164("+55 31 98888-7777") == "+5531988887777"
    assert e164("5215639691841") == e164("+52 56 3969 1841") == "+525639691841"
    assert e164("551133334444") == "+551133334444"  # a landline keeps its eight digits
    assert e164("5511987654321") == "+5511987654321"
