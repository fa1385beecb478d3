"""Inbox, messages, calls log and their timeline rows, projected from real events on both
backends; stopped and restarted at any batch boundary they equal a rebuild from zero."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from application.conversations import inbox
from domain.call import Call
from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor
from interfaces.services import Services
from projections.timeline import rm_lead_timeline
from tests.projections import test_runner
from tests.projections.test_runner import dump, rebuild_all, runner_for

fresh = test_runner.fresh  # services on a database of their own, on each backend

ACTOR = Actor(kind="user", id=str(uuid4()))
PROVIDER = Actor(kind="provider", id="whatsapp_cloud")
SOON = datetime.now(UTC)


def setup_lead(services: Services, assignee: UUID | None = None) -> Lead:
    org = Organization.register(name="Inbox Org", owner_user_id=uuid4(), actor=ACTOR)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
    lead = Lead.capture(
        organization_id=org.id,
        pipeline_id=pipeline.id,
        stage=pipeline.stages[0].ref,
        details={"full_name": "Maria", "phone": "+5511999990000"},
        assignee_id=assignee,
        actor=ACTOR,
    )
    services.app.commit(org, pipeline, lead)
    return lead


def start(services: Services, lead: Lead) -> Conversation:
    conversation = Conversation.start(
        organization_id=lead.organization_id,
        lead_id=lead.id,
        channel="whatsapp",
        contact="+5511999990000",
        actor=PROVIDER,
    )
    services.app.commit(conversation)
    return conversation


def receive(conversation: Conversation, text: str, at: datetime) -> UUID:
    return conversation.receive(
        provider_message_id=uuid4().hex,
        provider_type="whatsapp_cloud",
        text=text,
        sent_at=at,
        actor=PROVIDER,
        contact_name="Maria",
    )


def send(conversation: Conversation, text: str | None = None, template: str | None = None) -> UUID:
    return conversation.send(
        provider_type="whatsapp_cloud",
        now=datetime.now(UTC),
        actor=ACTOR,
        text=text,
        template_name=template,
        template_language="pt_BR" if template else None,
        template_variables={"1": "Maria"} if template else None,
    )


def inbox_row(services: Services, org: UUID) -> inbox.ConversationView:
    runner_for(services).catch_up()
    with services.engine.connect() as conn:
        (row,) = inbox.list_conversations(conn, org).items
    assert isinstance(row, inbox.ConversationView)
    return row


def test_the_inbox_counts_unread_messages_and_waiting_time_until_we_answer(
    fresh: Services,
) -> None:
    lead = setup_lead(fresh)
    conversation = start(fresh, lead)
    org = lead.organization_id
    fresh_row = inbox_row(fresh, org)
    assert (fresh_row.message_count, fresh_row.last_message_at, fresh_row.unread_count) == (
        0,
        None,
        0,
    )
    first, second = SOON - timedelta(minutes=5), SOON - timedelta(minutes=2)
    receive(conversation, "Hi", first)
    receive(conversation, "Anyone there?", second)
    fresh.app.commit(conversation)

    row = inbox_row(fresh, org)
    assert (row.unread_count, row.waiting_since, row.last_message_at) == (2, first, second)
    assert (row.last_message_preview, row.last_message_direction) == ("Anyone there?", "inbound")
    assert row.provider_type == "whatsapp_cloud"

    send(conversation, text="Hello Maria! " * 30)
    fresh.app.commit(conversation)
    row = inbox_row(fresh, org)
    assert (row.unread_count, row.waiting_since, row.last_message_direction) == (
        0,
        None,
        "outbound",
    )
    assert row.last_message_preview == ("Hello Maria! " * 30)[:200]

    third = datetime.now(UTC)
    receive(conversation, "Thanks", third)
    send(conversation, template="follow_up")
    receive(conversation, "One more thing", datetime.now(UTC))
    fresh.app.commit(conversation)
    row = inbox_row(fresh, org)
    assert (row.unread_count, row.message_count, row.last_message_preview) == (
        1,
        6,
        "One more thing",
    )
    assert row.waiting_since is not None and row.waiting_since > third


def test_a_late_inbound_message_counts_but_does_not_become_the_last_message(
    fresh: Services,
) -> None:
    lead = setup_lead(fresh)
    conversation = start(fresh, lead)
    receive(conversation, "newer", SOON)
    receive(conversation, "older, delivered late", SOON - timedelta(hours=1))
    fresh.app.commit(conversation)

    row = inbox_row(fresh, lead.organization_id)
    assert (row.last_message_preview, row.last_message_at) == ("newer", SOON)
    assert (row.unread_count, row.waiting_since) == (2, SOON - timedelta(hours=1))


def test_status_callbacks_out_of_order_end_in_the_furthest_status(fresh: Services) -> None:
    lead = setup_lead(fresh)
    conversation = start(fresh, lead)
    receive(conversation, "Hi", SOON)
    read_first = send(conversation, text="one")
    failed_late = send(conversation, text="two")
    template = send(conversation, template="welcome")
    fresh.app.commit(conversation)
    runner_for(fresh).catch_up()
    for message, status in [
        (read_first, "read"),
        (read_first, "delivered"),
        (read_first, "sent"),
        (failed_late, "delivered"),
        (failed_late, "failed"),
        (template, "sent"),
        (template, "failed"),
    ]:
        conversation.change_status(
            message, status, actor=PROVIDER, provider_message_id=f"wamid.{message.hex[:8]}"
        )
        fresh.app.commit(conversation)
        runner_for(fresh, batch=1).catch_up()

    with fresh.engine.connect() as conn:
        page = inbox.conversation_messages(conn, lead.organization_id, conversation.id)
    by_id = {m.id: m for m in page.items}
    assert by_id[read_first].status == "read"
    assert by_id[read_first].provider_message_id == f"wamid.{read_first.hex[:8]}"
    assert by_id[failed_late].status == "delivered"
    assert (by_id[template].status, by_id[template].template_name) == ("failed", "welcome")
    assert by_id[template].template_variables == {"1": "Maria"}
    assert [m.direction for m in page.items][-1] == "inbound"  # newest first


def test_the_assignee_follows_the_lead_until_someone_takes_the_conversation(
    fresh: Services,
) -> None:
    owner, second, taker, third = uuid4(), uuid4(), uuid4(), uuid4()
    lead = setup_lead(fresh, assignee=owner)
    conversation = start(fresh, lead)
    org = lead.organization_id
    assert inbox_row(fresh, org).assigned_to == owner

    lead.assign(second, actor=ACTOR)
    fresh.app.commit(lead)
    assert inbox_row(fresh, org).assigned_to == second

    conversation.hand_off(taker, actor=ACTOR)
    lead.assign(third, actor=ACTOR)
    fresh.app.commit(conversation, lead)
    row = inbox_row(fresh, org)
    assert (row.assigned_to, row.handled_by) == (taker, taker)

    conversation.hand_off(None, actor=ACTOR)
    conversation.close(actor=ACTOR)
    fresh.app.commit(conversation)
    row = inbox_row(fresh, org)
    assert (row.assigned_to, row.handled_by, row.status) == (third, None, "closed")
    with fresh.engine.connect() as conn:
        assert inbox.list_conversations(conn, org, status="open").items == []
        assert len(inbox.list_conversations(conn, org, assigned_to=third).items) == 1


def place_call(lead: Lead, direction: str = "outbound") -> Call:
    return Call.start(
        organization_id=lead.organization_id,
        lead_id=lead.id,
        direction=direction,
        provider_type="twilio",
        from_number="+5511888880000",
        to_number="+5511999990000",
        actor=ACTOR if direction == "outbound" else PROVIDER,
        provider_call_id=None if direction == "outbound" else "CA-in",
    )


def test_the_calls_log_follows_a_call_from_ringing_to_its_recording(fresh: Services) -> None:
    lead = setup_lead(fresh)
    call = place_call(lead)
    fresh.app.commit(call)
    call.progress("ringing", actor=PROVIDER, provider_event_id="e1", provider_call_id="CA-1")
    call.progress("answered", actor=PROVIDER, provider_event_id="e2")
    call.end(duration_seconds=42, outcome="completed", actor=PROVIDER, provider_event_id="e3")
    call.attach_recording("https://rec.example/1.mp3", actor=PROVIDER)
    fresh.app.commit(call)
    runner_for(fresh, batch=2).catch_up()

    with fresh.engine.connect() as conn:
        view = inbox.get_call(conn, lead.organization_id, call.id)
    assert (view.status, view.outcome, view.duration_seconds) == ("ended", "completed", 42)
    assert (view.provider_call_id, view.placed_by) == ("CA-1", UUID(ACTOR.id))
    assert view.recording_urls == ["https://rec.example/1.mp3"]
    assert view.started_at <= view.answered_at <= view.ended_at  # type: ignore[operator]


def test_messages_and_calls_appear_on_the_lead_timeline_in_log_order(fresh: Services) -> None:
    lead = setup_lead(fresh)
    conversation = start(fresh, lead)
    receive(conversation, "Hi", SOON)
    send(conversation, text="Hello")
    received = place_call(lead, "inbound")
    received.end(duration_seconds=0, outcome="no_answer", actor=PROVIDER)
    placed = place_call(lead)
    placed.end(duration_seconds=30, outcome="completed", actor=PROVIDER)
    placed.attach_recording("https://rec.example/2.mp3", actor=PROVIDER)
    fresh.app.commit(conversation)
    fresh.app.commit(received)
    lead.add_note("called back", actor=ACTOR)
    fresh.app.commit(placed, lead)
    runner_for(fresh).catch_up()  # every Started shares its batch with what follows it

    with fresh.engine.connect() as conn:
        rows = conn.execute(
            rm_lead_timeline.select()
            .where(rm_lead_timeline.c.lead_id == lead.id)
            .order_by(rm_lead_timeline.c.position)
        ).mappings()
        got = [(r["activity_type"], r["version"]) for r in rows]
    assert got == [
        ("captured", 1),
        ("message_received", None),
        ("message_sent", None),
        ("call_received", None),
        ("call_ended", None),
        ("call_placed", None),
        ("call_ended", None),
        ("call_recording", None),
        ("note", 2),
    ]


def write_conversations(services: Services, seed: int = 11) -> None:
    """Leads, conversations and calls with every kind of event, saved in many small commits."""
    rnd = random.Random(seed)
    leads = [setup_lead(services, assignee=rnd.choice([None, uuid4()])) for _ in range(3)]
    chats = [start(services, rnd.choice(leads)) for _ in range(4)]
    calls: list[Call] = []
    sent: dict[UUID, list[UUID]] = {c.id: [] for c in chats}
    for _ in range(60):
        step = rnd.choice(["in", "in", "out", "status", "handoff", "assign", "call", "close"])
        chat = rnd.choice(chats)
        if step == "in":
            receive(chat, f"msg {rnd.random()}", SOON + timedelta(seconds=rnd.randint(-90, 90)))
        elif step == "out" and not chat.closed:
            if chat.window_open(datetime.now(UTC)):
                sent[chat.id].append(send(chat, text="answer"))
            else:
                sent[chat.id].append(send(chat, template="follow_up"))
        elif step == "status" and sent[chat.id]:
            status = rnd.choice(["sent", "delivered", "read", "failed"])
            chat.change_status(rnd.choice(sent[chat.id]), status, actor=PROVIDER)
        elif step == "handoff":
            chat.hand_off(rnd.choice([None, uuid4()]), actor=ACTOR)
        elif step == "close" and rnd.random() < 0.3:
            chat.close(actor=ACTOR)
        elif step == "assign":
            lead = rnd.choice(leads)
            lead.assign(uuid4(), actor=ACTOR)
            services.app.commit(lead)
        elif step == "call":
            call = place_call(rnd.choice(leads), rnd.choice(["inbound", "outbound"]))
            call.progress("answered", actor=PROVIDER)
            calls.append(call)
        services.app.commit(chat, *calls[-1:])
        for call in calls:
            if call.status != "ended" and rnd.random() < 0.3:
                call.end(duration_seconds=rnd.randint(0, 600), outcome="completed", actor=PROVIDER)
                call.attach_recording(f"https://rec.example/{call.id}.mp3", actor=PROVIDER)
                services.app.commit(call)


def test_a_runner_stopped_at_any_batch_boundary_equals_a_rebuild_from_zero(
    fresh: Services,
) -> None:
    write_conversations(fresh)
    first = runner_for(fresh, batch=3)
    for _ in range(7):
        first.run_once()
    runner_for(fresh, batch=4).catch_up()
    with fresh.engine.connect() as conn:
        live = dump(conn)

    rebuilt = rebuild_all(fresh)
    assert live == rebuilt
    for table in ("rm_conversations", "rm_messages", "rm_calls", "rm_timeline_sources"):
        assert rebuilt[table], table
    assert len(rebuilt["rm_conversations"]) == 4
