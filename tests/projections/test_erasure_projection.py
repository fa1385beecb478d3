"""A person's erasure reaches every read model, on both backends: once projected, no row of the
organization holds their values in clear, nobody else's rows change, and the scrubbed tables
equal a rebuild from the log (which reads the person's sealed values as erased). The same
number writing again starts a new person, whose messages read in clear."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from application.audit.privacy import EraseCommand, erase_person
from application.context import Ctx
from application.conversations import calls, integrations
from application.conversations import messages as conversations
from application.conversations.providers import CallUpdate, InboundMessage
from application.leads import commands as leads
from domain.privacy import ERASED
from interfaces.services import Services
from projections.base import metadata
from projections.registry import all_projectors
from projections.runner import positions
from tests.application.test_conversations import whatsapp
from tests.application.test_handlers import owner_of
from tests.projections import test_runner
from tests.projections.test_runner import dump, rebuild_all, runner_for

fresh = test_runner.fresh  # services on a database of their own, on each backend

NAME = "Marisol Quintanilha"
FIRST_NAME = "Mari Q"
EMAIL = "marisol.q@exemplo.com.br"
PHONE = "+5511987650001"
CPF = "123.456.789-09"
NOTE = "Prefere contato depois das 18h"
INBOUND = "Oi, quero saber o preco do plano anual"
REPLY = "Claro! Te mando a proposta hoje"
SIGNED = "Marisolzinha"
NEEDLES = (NAME, FIRST_NAME, EMAIL, PHONE, PHONE.lstrip("+"), CPF, NOTE, INBOUND, REPLY, SIGNED)
OURS = "+14155552671"
PROVIDER = conversations.provider_actor("business_api")
TWILIO = conversations.provider_actor("twilio")

Tables = dict[str, list[tuple[Any, ...]]]


def _setup(services: Services, ctx: Ctx) -> None:
    whatsapp(services, ctx)
    voip = integrations.VoipSetup(
        provider="twilio", account_sid="AC1", auth_token="t", numbers=[OURS]
    )
    integrations.setup_provider(services.app, services.secret_box, "voip", voip, ctx)


def _project(services: Services) -> None:
    runner_for(services, batch=13).catch_up()


def _message(
    services: Services, org: UUID, wamid: str, phone: str, text: str, name: str
) -> conversations.Received:
    message = InboundMessage(
        provider_message_id=wamid,
        from_phone=phone.lstrip("+"),
        sent_at=datetime.now(UTC),
        text=text,
        contact_name=name,
    )
    return conversations.receive_message(
        services.app, services, org, "business_api", message, actor=PROVIDER
    )


def _inbound_call(services: Services, org: UUID, call: str, phone: str) -> None:
    for status, extra in (("ringing", {}), ("ended", {"duration_seconds": 42})):
        update = CallUpdate(
            call,
            f"{call}:{status}",
            status,
            datetime.now(UTC),
            direction="inbound",
            from_number=phone,
            to_number=OURS,
            outcome="completed" if status == "ended" else None,
            **extra,
        )
        calls.record_call_update(services.app, services, org, "twilio", update, actor=TWILIO)


@dataclass(frozen=True)
class Person:
    """What a lead's values are, at every place they go."""

    first_name: str
    name: str
    email: str
    phone: str
    cpf: str
    note: str
    inbound: str
    signed: str  # the name their WhatsApp profile shows
    reply: str


HER = Person(FIRST_NAME, NAME, EMAIL, PHONE, CPF, NOTE, INBOUND, SIGNED, REPLY)
OTTO = Person(
    "Otto", "Otto Outro", "otto@example.com", "+5521998760002", "987", "n", "hi", "O", "ok"
)


def _lead(services: Services, ctx: Ctx, who: Person, *, template_last: bool = False) -> UUID:
    """A lead with details changed, custom fields, a note, a WhatsApp thread (an inbound
    message, our reply and a template) and two calls. The inbox previews our reply, or the
    template (which names no one) if `template_last`."""
    app, org = services.app, ctx.organization_id
    details = leads.CaptureLead(
        full_name=who.first_name, email=who.email, phone=who.phone, custom_fields={"vip": True}
    )
    lead_id = leads.capture_lead(app, details, ctx).id
    change = leads.ChangeLeadDetails(
        full_name=who.name, custom_fields={"cpf": who.cpf, "vip": None}
    )
    leads.change_lead_details(app, lead_id, change, ctx)
    leads.add_note(app, lead_id, who.note, ctx)
    _project(services)  # the inbound message finds the lead by its phone in the leads model
    _message(services, org, f"wamid.{lead_id}", who.phone, who.inbound, who.signed)
    reply = conversations.SendMessage(text=who.reply)
    template = conversations.SendMessage(
        template_name="follow_up", template_language="pt_BR", template_variables={"1": who.name}
    )
    for send in (reply, template) if template_last else (template, reply):
        conversations.send_message(app, lead_id, send, ctx, now=datetime.now(UTC))
    _inbound_call(services, org, f"CA-{lead_id}", who.phone)
    calls.place_call(app, lead_id, calls.PlaceCall(), ctx)
    return lead_id


def _of(tables: Tables, org: UUID) -> Tables:
    """The rows of one organization (every projector's key starts with it)."""
    return {name: [r for r in rows if r[0] == org] for name, rows in tables.items()}


def _in_clear(tables: Tables) -> list[tuple[str, str, tuple[Any, ...]]]:
    return [
        (name, needle, row)
        for name, rows in tables.items()
        for row in rows
        for needle in NEEDLES
        if needle in str(row)
    ]


def _named(tables: Tables, name: str) -> list[dict[str, Any]]:
    columns = [c.name for c in metadata.tables[name].columns]
    return [dict(zip(columns, row, strict=True)) for row in tables[name]]


def _ids_of(tables: Tables, org: UUID, lead_id: UUID) -> set[UUID]:
    """The lead and its conversations and calls."""
    threads = {r[1] for r in tables["rm_conversations"] if r[0] == org and r[2] == lead_id}
    phoned = {r[1] for r in tables["rm_calls"] if r[0] == org and r[2] == lead_id}
    return {lead_id} | threads | phoned


def _live(services: Services) -> Tables:
    _project(services)
    with services.engine.connect() as conn:
        return dump(conn)


def _rebuilt(services: Services, batch: int) -> Tables:
    with services.engine.begin() as conn:
        for table in (t for p in all_projectors() for t in p.tables):
            conn.execute(table.delete())
        conn.execute(positions.update().values(position=0))
    runner_for(services, batch=batch).catch_up()
    with services.engine.connect() as conn:
        return dump(conn)


def _erase(services: Services, ctx: Ctx, lead_id: UUID) -> None:
    erased = erase_person(
        services.app,
        services,
        ctx,
        EraseCommand(lead_id=lead_id, legal_basis="LGPD art. 18, VI"),
    )
    assert erased.newly_erased == [lead_id]


def test_an_erased_person_is_nowhere_in_clear_and_the_scrubbed_models_equal_a_rebuild(
    fresh: Services,
) -> None:
    ctx = owner_of(fresh, "Acme")
    org = ctx.organization_id
    _setup(fresh, ctx)
    her = _lead(fresh, ctx, HER)
    other = _lead(fresh, ctx, OTTO)
    elsewhere = owner_of(fresh, "Beta")
    _setup(fresh, elsewhere)
    _lead(fresh, elsewhere, HER)  # the same person, known to another organization
    before = _live(fresh)
    assert _in_clear(_of(before, org))  # the scan does see her values while they are there

    _erase(fresh, ctx, her)
    after = _live(fresh)

    assert _in_clear(_of(after, org)) == []
    assert _of(after, elsewhere.organization_id) == _of(before, elsewhere.organization_id)
    assert _in_clear(_of(after, elsewhere.organization_id))  # hers there stay theirs
    hers = _ids_of(after, org, her)
    for name, rows in _of(before, org).items():
        for row in [r for r in rows if r not in after[name]]:
            assert any(str(i) in str(row) for i in hers), (name, row)  # only her rows changed
    leads_after = {r["lead_id"]: r for r in _named(after, "rm_leads")}
    assert leads_after[other] in _named(before, "rm_leads")
    person = leads_after[her]
    assert [person[c] for c in ("full_name", "email", "phone", "phone_e164")] == [
        ERASED,
        ERASED,
        ERASED,
        None,
    ]
    assert person["custom_fields"] == {"cpf": ERASED, "vip": None}
    failed = [r for r in _named(after, "outbox") if r["status"] == "failed"]
    assert sorted(r["kind"] for r in failed) == ["call", "message", "message"]
    assert {r["organization_id"] for r in failed} == {org}
    assert all(ERASED in str(r["payload"]) for r in failed)
    (thread,) = [r for r in _named(after, "rm_conversations") if r["lead_id"] == her]
    assert [thread[c] for c in ("contact", "status", "last_message_preview")] == [
        ERASED,
        "closed",
        ERASED,
    ]
    kinds = [r["activity_type"] for r in _named(after, "rm_lead_timeline") if r["lead_id"] == her]
    assert kinds[-1] == "personal_data_erased"

    assert rebuild_all(fresh) == after


def test_the_number_writing_again_after_an_erasure_is_a_new_person_in_clear(
    fresh: Services,
) -> None:
    ctx = owner_of(fresh, "Acme")
    org = ctx.organization_id
    _setup(fresh, ctx)
    her = _lead(fresh, ctx, HER, template_last=True)
    _live(fresh)
    _erase(fresh, ctx, her)
    (thread,) = _named(_live(fresh), "rm_conversations")
    assert thread["last_message_preview"] == "[template follow_up]"  # it names no one

    again = _message(fresh, org, "wamid.her.2", PHONE, "Sou eu de novo", "Nova")
    assert again.new_lead and again.lead_id != her
    after = _live(fresh)

    (thread,) = _named(after, "rm_conversations")
    assert [thread[c] for c in ("lead_id", "contact", "status")] == [again.lead_id, PHONE, "open"]
    texts = sorted(
        ((str(m["lead_id"]), m["text"] or "") for m in _named(after, "rm_messages")),
    )
    assert texts == sorted(
        [
            (str(her), ERASED),  # received
            (str(her), ERASED),  # sent
            (str(her), ""),  # the template: no text
            (str(again.lead_id), "Sou eu de novo"),
        ]
    )
    timeline = _named(after, "rm_lead_timeline")
    new_lead = [r for r in timeline if r["lead_id"] == again.lead_id]
    assert [r["activity_type"] for r in new_lead] == ["captured", "message_received"]
    assert new_lead[1]["data"]["text"] == "Sou eu de novo"
    assert "Sou eu de novo" not in str([r for r in timeline if r["lead_id"] == her])
    assert [n for n in _in_clear(_of(after, org)) if n[1] != PHONE and n[1] != PHONE[1:]] == []

    assert rebuild_all(fresh) == after
    for size in (1, 4):  # the erasure, the resume and what they reach in other batches
        assert _rebuilt(fresh, size) == after, size
