"""A person's data rights over HTTP, on both backends: personal values are sealed in the log from
the start; `POST /privacy/export` gathers everything about them; `POST /privacy/erase` destroys
their key so a scan of every table of the database finds them nowhere in clear text, while the
log stays append-only, its export still verifies, and the same number later starts a new person.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from application.ai.analysis import RECORDED, analyse_message
from application.audit.chain import verify
from application.conversations import calls
from application.conversations import messages as conversations
from application.conversations.providers import CallUpdate, InboundMessage
from domain.privacy import ERASED
from interfaces.database import WalCheckpoint
from interfaces.privacy import subject_keys
from interfaces.services import Services
from projections.registry import all_projectors
from tests.support.analysis import LengthAnalyzer
from tests.support.api import Tenant, add_member, assert_problem, register

# the person of each test; unique per test (the fixture below), since on PostgreSQL the tests
# of a session share one database and the scan reads every row of it
NAME = "Marisol Quintanilha"
CONTACT = "Marisol"
EMAIL = "marisol.q@exemplo.com.br"
PHONE = "+5511987650001"
CPF = "123.456.789-09"
NOTE = "Prefere contato depois das 18h, mora em Pinheiros"
INBOUND = "Oi, quero saber o preço do plano anual"
REPLY = "Claro! Te mando a proposta hoje"
SUMMARY = "Quer o preço do plano anual, Pinheiros"  # an analysis's summary (AI)
NEEDLES: tuple[str, ...] = ()
PROVIDER = conversations.provider_actor("business_api")


@pytest.fixture(autouse=True)
def someone_new(monkeypatch: pytest.MonkeyPatch) -> None:
    token = uuid4().hex[:8]
    number = "".join(str(secrets.randbelow(10)) for _ in range(8))
    person = {
        "NAME": f"Marisol Quintanilha {token}",
        "CONTACT": f"Marisol {token}",
        "EMAIL": f"marisol.{token}@exemplo.com.br",
        "PHONE": f"+55119{number}",
        "CPF": f"{token[:3]}.456.789-{number[:2]}",
        "NOTE": f"Prefere contato depois das 18h, mora em Pinheiros ({token})",
        "INBOUND": f"Oi, quero saber o preço do plano anual ({token})",
        "REPLY": f"Claro! Te mando a proposta hoje ({token})",
        "SUMMARY": f"Quer o preço do plano anual, Pinheiros ({token})",
    }
    for name, value in person.items():
        monkeypatch.setattr(sys.modules[__name__], name, value)
    needles = [v for k, v in person.items() if k != "PHONE"] + [person["PHONE"].lstrip("+")]
    monkeypatch.setattr(sys.modules[__name__], "NEEDLES", tuple(needles))


def _now() -> datetime:
    return datetime.now(UTC)


def _person(services: Services, owner: Tenant) -> UUID:
    """A lead with every kind of personal value: details, a change, a note, messages, a call."""
    response = owner.post(
        "/integrations/whatsapp/setup",
        json={
            "provider": "business_api",
            "phone_number_id": "1065",
            "access_token": "token-a",
            "app_secret": "secret-b",
            "verify_token": "verify-c",
        },
    )
    assert response.status_code == 200, response.text
    lead = owner.capture(
        full_name="Mari Q", email=EMAIL, phone=PHONE, custom_fields={"cpf": CPF, "vip": True}
    )
    lead_id = UUID(lead["id"])
    changed = owner.put(
        f"/crm/leads/{lead_id}", json={"full_name": NAME, "expected_version": lead["version"]}
    )
    assert changed.status_code == 200, changed.text
    assert owner.post(f"/crm/leads/{lead_id}/notes", json={"text": NOTE}).status_code == 201
    org = UUID(owner.organization_id)
    _wait(owner)  # the webhook finds the lead by its number in the leads model
    received = conversations.receive_message(
        services.app,
        services,
        org,
        "business_api",
        InboundMessage(
            provider_message_id="wamid.P1",
            from_phone=PHONE,
            sent_at=_now(),
            text=INBOUND,
            contact_name=CONTACT,
        ),
        actor=PROVIDER,
    )
    assert received.lead_id == lead_id  # found by the number
    owner.position = max(owner.position, received.position)
    analysed = analyse_message(
        services.app,
        LengthAnalyzer(summary=SUMMARY),
        organization_id=org,
        conversation_id=received.conversation_id,
        message_id=received.message_id,
    )
    assert analysed == RECORDED
    sent = owner.post(f"/crm/leads/{lead_id}/messages", json={"text": REPLY})
    assert sent.status_code in (200, 201, 202), sent.text
    update = CallUpdate(
        "CA-privacy", "CA-privacy:1", "ringing", _now(), "inbound", PHONE, "+14155552671"
    )
    recorded = calls.record_call_update(
        services.app, services, org, "twilio", update, actor=PROVIDER
    )
    assert recorded is not None
    owner.position = max(owner.position, recorded.position)
    return lead_id


def _cell(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def scan(services: Services, needles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, needle) for every needle found in clear text in any row of any table."""
    found = []
    lowered = [n.lower() for n in needles]
    engine = services.engine
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            for row in rows:
                text = " ".join(_cell(v) for v in row).lower()
                found.extend((table, n) for n in lowered if n in text)
    return sorted(set(found))


def _variants(needle: str) -> set[bytes]:
    """How a value can sit in the file: UTF-8 text, and inside JSON with non-ASCII escaped."""
    lowered = needle.lower()
    return {lowered.encode(), json.dumps(lowered)[1:-1].encode()}


def raw_scan(services: Services, needles: tuple[str, ...], *secrets_: bytes) -> list[str]:
    """'file: needle' for every needle (or secret) found in the raw bytes of the SQLite database
    file, its write-ahead log or its shared-memory index, freed pages and old frames included."""
    path = Path(services.settings.sqlite_path)
    found = []
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if not file.exists():
            continue
        data = file.read_bytes()
        lowered = data.lower()
        found.extend(
            f"{file.name}: {n}"
            for n in needles
            if any(variant in lowered for variant in _variants(n))
        )
        found.extend(f"{file.name}: secret #{i}" for i, s in enumerate(secrets_) if s in data)
    return sorted(found)


def _wrapped_keys(services: Services, subject_id: UUID) -> list[bytes]:
    keys = subject_keys.c
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(keys.wrapped_key).where(
                keys.subject_id == subject_id, keys.wrapped_key.is_not(None)
            )
        ).scalars()
        return [bytes(k) for k in rows]


def _wait(owner: Tenant) -> None:
    """Until every projector has applied everything written so far."""
    services = owner.client.app.state.services
    head = services.app.recorder.max_notification_id() or 0
    owner.position = max(owner.position, head)
    names = [p.name for p in all_projectors()]
    assert services.wait_for(names, head, timeout=60), "the projectors did not catch up"


def test_personal_values_are_sealed_in_the_log_from_the_start(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client)
    lead_id = _person(services, owner)
    in_log = [
        n
        for n in NEEDLES
        for row in services.app.recorder.select_notifications(start=1, limit=10_000)
        if n.lower() in row.state.decode("utf-8", "replace").lower()
    ]
    assert in_log == []
    # ... while the application reads them back in clear
    assert owner.get(f"/crm/leads/{lead_id}").json()["full_name"] == NAME


def test_export_gathers_everything_held_about_the_person_and_is_recorded(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client)
    lead_id = _person(services, owner)
    other = owner.capture(full_name="Someone Else", email="else@example.com")
    for query in (
        {"lead_id": str(lead_id)},
        {"email": EMAIL.upper()},
        {"phone": f"{PHONE[:3]} {PHONE[3:5]} {PHONE[5:10]}-{PHONE[10:]}"},
    ):
        response = owner.post("/privacy/export", json=query)
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["lead_ids"] == [str(lead_id)]
        assert document["leads"][0]["full_name"] == NAME
        types = {e["type"] for e in document["events"]}
        assert {"Lead.Captured", "Lead.DetailsChanged", "Lead.NoteAdded"} <= types
        assert {"Conversation.MessageReceived", "Conversation.MessageSent", "Call.Started"} <= types
        tables = document["read_models"]
        assert {"rm_leads", "rm_messages", "rm_calls", "rm_conversations"} <= set(tables)
        assert {"rm_lead_timeline", "rm_audit_events"} <= set(tables)
        text = json.dumps(document, ensure_ascii=False)
        assert "Conversation.MessageAnalysed" in types
        for needle in (NAME, EMAIL, CPF, NOTE, INBOUND, REPLY, SUMMARY):
            assert needle in text
        assert other["id"] not in text and "Someone Else" not in text
    trail = owner.get("/audit/events", params={"event_type": "PersonalDataExport.Made"}).json()
    assert len(trail["items"]) == 3
    assert all(item["actor_id"] == owner.user_id for item in trail["items"])


def test_erasure_leaves_the_person_nowhere_in_clear_text(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client)
    lead_id = _person(services, owner)
    kept = owner.capture(full_name="Kept Person", email="kept@example.com")
    _wait(owner)
    assert scan(services, NEEDLES)  # the read models hold them in clear before the erasure
    wrapped = _wrapped_keys(services, lead_id)
    assert wrapped  # the lead's data key, wrapped by the master key
    if not services.settings.is_postgres:
        # the scan does find what is there: every value, and the key
        seen = {found.split(": ", 1)[1] for found in raw_scan(services, NEEDLES, *wrapped)}
        assert seen == {*NEEDLES, "secret #0"}
    before = services.app.recorder.max_notification_id()
    stored_before = [
        (n.id, n.state) for n in services.app.recorder.select_notifications(start=1, limit=10**6)
    ]

    response = owner.post(
        "/privacy/erase", json={"email": EMAIL, "legal_basis": "LGPD art. 18, VI — titular"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["lead_ids"] == [str(lead_id)] and body["newly_erased"] == [str(lead_id)]
    _wait(owner)

    assert scan(services, NEEDLES) == []
    if not services.settings.is_postgres:
        checkpoint = services.runner.after_round if services.runner else None
        assert isinstance(checkpoint, WalCheckpoint), "no checkpoint after erasures"
        assert checkpoint.wait_for(owner.position, timeout=30)
        # nor in the bytes of the file: freed pages are zeroed, the old log frames truncated
        assert raw_scan(services, NEEDLES, *wrapped) == []
    # the log is append-only: every earlier event is still there, byte for byte
    stored_after = [
        (n.id, n.state) for n in services.app.recorder.select_notifications(start=1, limit=10**6)
    ]
    assert stored_after[: len(stored_before)] == stored_before
    assert services.app.recorder.max_notification_id() > before

    lead = owner.get(f"/crm/leads/{lead_id}").json()
    assert lead["full_name"] == ERASED and lead["email"] == ERASED and lead["phone"] == ERASED
    assert lead["custom_fields"] == {"cpf": ERASED, "vip": ERASED}
    history = owner.get(f"/crm/leads/{lead_id}/history").json()
    captured = history[0]["data"]
    assert captured["full_name"] == ERASED and captured["email"] == ERASED
    assert owner.get(f"/crm/leads/{kept['id']}").json()["full_name"] == "Kept Person"

    trail = owner.get(
        "/audit/events", params={"event_type": "Lead.PersonalDataErased", "resource_id": lead_id}
    ).json()["items"]
    assert len(trail) == 1 and trail[0]["actor_id"] == owner.user_id
    assert "LGPD art. 18, VI" in json.dumps(trail[0])

    # the hash-chained export of the whole history still verifies
    export = owner.get("/audit/export")
    assert export.status_code == 200
    assert verify(export.content.splitlines(keepends=True)).count > 0

    # a retry changes nothing; the person can no longer be found by what was erased
    again = owner.post("/privacy/erase", json={"lead_id": str(lead_id), "legal_basis": "retry"})
    assert again.status_code == 200 and again.json()["newly_erased"] == []
    assert_problem(owner.post("/privacy/erase", json={"email": EMAIL, "legal_basis": "again"}), 404)
    # nothing personal can be recorded about the erased person any more
    assert_problem(owner.put(f"/crm/leads/{lead_id}", json={"full_name": "Back Again"}), 409)


def test_the_same_number_writing_after_an_erasure_starts_a_new_person(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client)
    lead_id = _person(services, owner)
    _wait(owner)
    erase = owner.post("/privacy/erase", json={"phone": PHONE, "legal_basis": "pedido do titular"})
    assert erase.status_code == 200, erase.text
    _wait(owner)
    org = UUID(owner.organization_id)
    again = conversations.receive_message(
        services.app,
        services,
        org,
        "business_api",
        InboundMessage(
            provider_message_id="wamid.P2", from_phone=PHONE, sent_at=_now(), text="Voltei!"
        ),
        actor=PROVIDER,
    )
    assert again.new_lead and again.lead_id != lead_id
    owner.position = max(owner.position, again.position)
    new_lead = owner.get(f"/crm/leads/{again.lead_id}").json()
    assert new_lead["phone"] == PHONE
    messages = owner.get(f"/crm/conversations/{again.conversation_id}/messages").json()["items"]
    texts = {m["text"] for m in messages}
    assert "Voltei!" in texts and INBOUND not in texts and REPLY not in texts
    # a call from the number finds the new person, not the erased one
    update = CallUpdate(
        "CA-after", "CA-after:1", "ringing", _now(), "inbound", PHONE, "+14155552671"
    )
    call = calls.record_call_update(services.app, services, org, "twilio", update, actor=PROVIDER)
    assert call is not None and call.lead_id == again.lead_id
    # the new person's key is not the old one's: the old lead stays erased
    assert owner.get(f"/crm/leads/{lead_id}").json()["full_name"] == ERASED
    assert services.app.personal_data.get().is_erased(org, lead_id)
    assert not services.app.personal_data.get().is_erased(org, again.lead_id)


def test_privacy_routes_are_for_admins_of_the_organization_only(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client)
    lead = owner.capture(full_name=NAME, email=EMAIL)
    intruder = register(client, "Other")
    _wait(owner)
    for path in ("/privacy/export", "/privacy/erase"):
        body = {"lead_id": lead["id"], "legal_basis": "x"}
        if path.endswith("export"):
            body.pop("legal_basis")
        # another organization's admin: the lead is 'not found' there, and nothing changes
        assert_problem(intruder.post(path, json=body), 404)
        assert_problem(
            intruder.post(
                path,
                json={"email": EMAIL} | ({"legal_basis": "x"} if path.endswith("erase") else {}),
            ),
            404,
        )
        # the organization's own header with another's token, and non-admin roles
        assert_problem(
            client.post(
                path, json=body, headers=intruder.headers | {"X-Org-Id": owner.organization_id}
            ),
            403,
        )
        for role in ("manager", "sales", "viewer"):
            member = add_member(services, owner, role)
            assert_problem(member.post(path, json=body), 403)
    assert owner.get(f"/crm/leads/{lead['id']}").json()["full_name"] == NAME
    owner.position = services.app.recorder.max_notification_id()
    incidents = owner.get(
        "/audit/events", params={"event_type": "SecurityIncident.Recorded", "limit": 200}
    ).json()["items"]
    kinds = [i["changes"]["kind"]["after"] for i in incidents]
    # per route: the foreign lead id in the body, and the rival's token under acme's header
    # (the lookups by email found nothing of acme's and name nothing)
    assert kinds.count("cross_organization_attempt") == 4
    assert "permission_denied" in kinds


def test_bad_requests_are_refused_and_change_nothing(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client)
    lead = owner.capture(full_name=NAME, email=EMAIL)
    head = services.app.recorder.max_notification_id()
    for path in ("/privacy/export", "/privacy/erase"):
        extra = {"legal_basis": "LGPD"} if path.endswith("erase") else {}
        for body in (
            {} | extra,
            {"lead_id": lead["id"], "email": EMAIL} | extra,
            {"phone": "not a phone"} | extra,
            {"email": "not-an-email"} | extra,
        ):
            assert_problem(owner.post(path, json=body), 422)
        assert owner.post(path, json={"lead_id": "nope"} | extra).status_code in (400, 422)
        assert owner.post(path, json={"lead_id": lead["id"], "extra": 1} | extra).status_code in (
            400,
            422,
        )
        assert_problem(owner.post(path, json={"email": "nobody@example.com"} | extra), 404)
    for basis in ("", "   ", "x" * 501):
        assert_problem(
            owner.post("/privacy/erase", json={"lead_id": lead["id"], "legal_basis": basis}), 422
        )
    assert_problem(owner.post("/privacy/erase", json={"lead_id": lead["id"]}), 422)
    assert services.app.recorder.max_notification_id() == head
    assert owner.get(f"/crm/leads/{lead['id']}").json()["full_name"] == NAME
