"""Provider webhooks over HTTP: signed with the providers' real algorithms, recorded once."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from application.conversations.integrations import credentials
from application.conversations.messages import CHANNEL, conversation_id, mark_sent
from application.conversations.providers import OutboundMessage
from domain.call import Call
from domain.conversation import Conversation
from domain.values import Actor
from interfaces.services import Services
from tests.support.api import Tenant, assert_problem, cheap_hashing, register  # noqa: F401
from tests.support.provider_servers import WahaServer
from tests.support.webhooks import (
    PHONE_NUMBER_ID,
    TelnyxSigner,
    meta_message,
    meta_payload,
    meta_signature,
    meta_status,
    telnyx_event,
    twilio_call,
    twilio_signed,
    waha_message,
    waha_signature,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

APP_SECRET = "meta-app-secret-0001"
VERIFY = "verify-token-0001"
HMAC_KEY = "waha-hmac-key-0001"
AUTH_TOKEN = "twilio-auth-token-0001"
SENDER = "5511987654321"
E164 = "+5511987654321"
OUR_NUMBER = "+14155552671"


def cloud_setup(tenant: Tenant, secret: str = APP_SECRET, **extra: Any) -> None:
    body = {
        "provider": "business_api",
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "token",
        "app_secret": secret,
        "verify_token": VERIFY,
    } | extra
    assert tenant.post("/integrations/whatsapp/setup", json=body).status_code == 200


def incidents(tenant: Tenant) -> list[dict[str, Any]]:
    head = tenant.client.app.state.services.app.recorder.max_notification_id() or 0
    tenant.position = max(tenant.position, head)  # read after every write so far
    response = tenant.get("/audit/events", params={"limit": 200})
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if e["event_type"] == "SecurityIncident.Recorded"]


def leads_of(tenant: Tenant) -> list[dict[str, Any]]:
    """The leads, read after every write so far (webhooks write outside the tenant's calls)."""
    head = tenant.client.app.state.services.app.recorder.max_notification_id() or 0
    tenant.position = max(tenant.position, head)
    items: list[dict[str, Any]] = tenant.get("/crm/leads").json()["items"]
    return items


def post_meta(client: TestClient[Any], org: str, body: bytes, secret: str = APP_SECRET) -> Any:
    return client.post(
        f"/webhooks/whatsapp/{org}", content=body, headers=meta_signature(secret, body)
    )


def conversation(services: Services, tenant: Tenant, phone: str = E164) -> Conversation:
    org = UUID(tenant.organization_id)
    return services.app.load(Conversation, conversation_id(org, CHANNEL, phone), org)


def test_the_verification_handshake_echoes_the_challenge_only_for_the_right_token(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    cloud_setup(acme)
    url = f"/webhooks/whatsapp/{acme.organization_id}"
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    ok = client.get(url, params=params)
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    assert_problem(client.get(url, params=params | {"hub.verify_token": "guess"}), 403)
    assert [i["changes"]["details"]["after"]["reason"] for i in incidents(acme)] == [
        "verify token mismatch"
    ]


def test_an_inbound_message_from_an_unknown_number_creates_a_whatsapp_lead(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    body = meta_payload([meta_message("wamid.A1", SENDER, "Olá, quero um orçamento")])
    response = post_meta(client, acme.organization_id, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"messages": 1, "statuses": 0}
    chat = conversation(services, acme)
    assert chat.contact == E164
    (lead,) = leads_of(acme)
    assert (lead["id"], lead["source"], lead["full_name"]) == (
        str(chat.lead_id),
        "whatsapp",
        "Maria Silva",
    )


def test_an_inbound_message_is_matched_to_the_lead_with_that_phone(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    lead = acme.capture(full_name="Maria", phone="+55 (11) 98765-4321")
    acme.get("/crm/leads")  # the leads read model has the phone (read-your-writes)
    post_meta(client, acme.organization_id, meta_payload([meta_message("wamid.M", SENDER, "oi")]))
    assert conversation(services, acme).lead_id == UUID(lead["id"])


def test_the_same_webhook_delivered_three_times_records_one_message(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    body = meta_payload([meta_message("wamid.R1", SENDER, "hello")])
    for _ in range(3):
        assert post_meta(client, acme.organization_id, body).status_code == 200
    chat = conversation(services, acme)
    assert chat.version == 2  # started + one message
    assert list(chat.provider_ids) == ["wamid.R1"]


def test_every_message_of_a_batched_payload_is_recorded(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    other = "5521912345678"
    body = meta_payload(
        [meta_message(f"wamid.B{i}", SENDER if i % 2 else other, f"m{i}") for i in range(6)]
    )
    assert post_meta(client, acme.organization_id, body).json() == {"messages": 6, "statuses": 0}
    assert len(conversation(services, acme).provider_ids) == 3
    assert len(conversation(services, acme, "+5521912345678").provider_ids) == 3


@pytest.mark.parametrize(
    "case", ["tampered body", "wrong secret", "missing header", "malformed header"]
)
def test_an_unsigned_or_badly_signed_webhook_records_nothing_but_an_incident(
    client: TestClient[Any], services: Services, case: str
) -> None:
    acme = register(client)
    cloud_setup(acme)
    body = meta_payload([meta_message("wamid.X", SENDER, "hi")])
    headers = meta_signature(APP_SECRET, body)
    if case == "tampered body":
        body = body.replace(b"hi", b"ho")
    elif case == "wrong secret":
        headers = meta_signature("not-the-secret", body)
    elif case == "missing header":
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = "sha1=abc"
    before = services.app.recorder.max_notification_id()
    response = client.post(
        f"/webhooks/whatsapp/{acme.organization_id}", content=body, headers=headers
    )
    assert_problem(response, 401 if case == "missing header" else 403)
    (incident,) = incidents(acme)
    assert incident["changes"]["kind"]["after"] == "webhook_rejected"
    assert services.app.recorder.max_notification_id() == (before or 0) + 1  # the incident only
    assert leads_of(acme) == []


def test_another_organizations_path_with_this_organizations_signature_is_rejected(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    other = register(client, "Other")
    cloud_setup(acme)
    cloud_setup(other, secret="other-secret-0002")
    body = meta_payload([meta_message("wamid.T", SENDER, "hi")])
    assert_problem(post_meta(client, other.organization_id, body, APP_SECRET), 403)
    assert leads_of(other) == []
    # an organization without the integration, and an id that is no organization at all
    third = register(client, "Third")
    assert_problem(post_meta(client, third.organization_id, body), 404)
    assert_problem(post_meta(client, "00000000-0000-4000-8000-000000000001", body), 404)
    assert len(incidents(third)) == 1


def test_a_malformed_but_signed_payload_answers_400(client: TestClient[Any]) -> None:
    acme = register(client)
    cloud_setup(acme)
    assert_problem(post_meta(client, acme.organization_id, b"{not json"), 400)


def test_statuses_out_of_order_end_in_the_right_final_status(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    post_meta(client, acme.organization_id, meta_payload([meta_message("wamid.IN", SENDER, "oi")]))
    lead_id = conversation(services, acme).lead_id
    sent = acme.post(f"/crm/leads/{lead_id}/messages", json={"text": "Olá! Como posso ajudar?"})
    assert sent.status_code == 201, sent.text
    queued = sent.json()
    assert (queued["status"], queued["provider_type"]) == ("queued", "business_api")
    org = UUID(acme.organization_id)
    outbox = Actor(kind="system", id="test-outbox")
    mark_sent(
        services.app,
        org,
        UUID(queued["conversation_id"]),
        UUID(queued["message_id"]),
        "wamid.OUT",
        actor=outbox,
    )
    statuses = [meta_status("wamid.OUT", s, SENDER) for s in ("read", "delivered", "sent")]
    response = post_meta(client, acme.organization_id, meta_payload(statuses=statuses))
    assert response.status_code == 200, response.text
    assert conversation(services, acme).statuses[UUID(queued["message_id"])] == "read"


def test_a_message_on_the_web_bridge_joins_the_same_conversation_after_a_switch(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    post_meta(client, acme.organization_id, meta_payload([meta_message("wamid.1", SENDER, "a")]))
    bridge = {
        "provider": "web_bridge",
        "base_url": "http://127.0.0.1:9",
        "session": "default",
        "api_key": "k",
        "hmac_key": HMAC_KEY,
    }
    assert acme.post("/integrations/whatsapp/setup", json=bridge).status_code == 200
    body = waha_message("false_5511987654321@c.us_3EB0AAA", SENDER, "b")
    url = f"/webhooks/whatsapp-web/{acme.organization_id}"
    for _ in range(2):
        response = client.post(url, content=body, headers=waha_signature(HMAC_KEY, body))
        assert response.status_code == 200, response.text
    assert_problem(client.post(url, content=body, headers=waha_signature("wrong", body)), 403)
    chat = conversation(services, acme)
    assert len(chat.provider_ids) == 2
    kinds = [
        e.provider_type
        for e in services.app.events.get(chat.id)
        if isinstance(e, Conversation.MessageReceived)
    ]
    assert kinds == ["business_api", "web_bridge"]


@pytest.mark.parametrize("engine", ["NOWEB", "WEBJS"])
def test_waha_read_receipts_without_to_mark_our_message_delivered_then_read(
    client: TestClient[Any], services: Services, engine: str
) -> None:
    acme = register(client)
    org = UUID(acme.organization_id)
    with WahaServer(message_id_style="key" if engine == "NOWEB" else "object") as bridge:
        setup = {
            "provider": "web_bridge",
            "base_url": bridge.url,
            "session": "default",
            "api_key": bridge.api_key,
            "hmac_key": HMAC_KEY,
        }
        assert acme.post("/integrations/whatsapp/setup", json=setup).status_code == 200
        lead = acme.capture(full_name="Ana Souza", phone=E164)
        sent = acme.post(f"/crm/leads/{lead['id']}/messages", json={"text": "Olá, Ana!"})
        assert sent.status_code == 201, sent.text
        queued = sent.json()
        assert (queued["status"], queued["provider_type"]) == ("queued", "web_bridge")
        message_id = UUID(queued["message_id"])
        # delivered as the outbox delivers it: the bridge's adapter sends through WAHA, and
        # the id WAHA answered (WEBJS `_serialized`, or NOWEB's Baileys key) is recorded
        creds = credentials(services.app, services.secret_box, org, "whatsapp", "web_bridge")
        assert creds is not None
        accepted = services.providers.message_sender(creds).send_message(
            OutboundMessage(idempotency_key=str(message_id), to=E164, text="Olá, Ana!")
        )
        mark_sent(
            services.app,
            org,
            UUID(queued["conversation_id"]),
            message_id,
            accepted.provider_message_id,
            actor=Actor(kind="system", id="test-outbox"),
        )
    [request] = bridge.requests
    assert request.json["chatId"] == f"{SENDER}@c.us"
    provider_id = accepted.provider_message_id
    assert provider_id.startswith(f"true_{SENDER}@c.us_")
    url = f"/webhooks/whatsapp-web/{acme.organization_id}"
    for ack, name, expected in ((2, "DEVICE", "delivered"), (3, "READ", "read")):
        # WAHA's documented message.ack (docs/how-to/webhooks): no `to`, the contact in `from`
        body = json.dumps(
            {
                "event": "message.ack",
                "session": "default",
                "engine": engine,
                "payload": {
                    "id": provider_id,
                    "from": f"{SENDER}@c.us",
                    "participant": None,
                    "fromMe": True,
                    "ack": ack,
                    "ackName": name,
                },
            }
        ).encode()
        response = client.post(url, content=body, headers=waha_signature(HMAC_KEY, body))
        assert response.status_code == 200, response.text
        assert response.json() == {"messages": 0, "statuses": 1}
        assert conversation(services, acme).statuses[message_id] == expected
    acme.position = services.app.recorder.max_notification_id() or 0
    messages = acme.get(f"/crm/conversations/{queued['conversation_id']}/messages").json()
    assert [(m["id"], m["status"]) for m in messages["items"]] == [(str(message_id), "read")]


def twilio_setup(tenant: Tenant) -> None:
    body = {
        "provider": "twilio",
        "account_sid": "AC" + "1" * 32,
        "auth_token": AUTH_TOKEN,
        "numbers": [OUR_NUMBER],
    }
    assert tenant.post("/integrations/voip/setup", json=body).status_code == 200


def post_twilio(
    client: TestClient[Any], services: Services, path: str, params: dict[str, str], **kw: Any
) -> Any:
    public = services.settings.public_url + path
    body, headers = twilio_signed(AUTH_TOKEN, public, params)
    return client.post(path, content=body, headers=headers | kw.pop("headers", {}), **kw)


def test_an_inbound_twilio_call_is_logged_once_and_ends_with_its_duration(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    twilio_setup(acme)
    org = acme.organization_id
    sid = "CA" + "a" * 32
    voice = post_twilio(
        client,
        services,
        f"/webhooks/twilio/{org}/voice",
        twilio_call(sid, "ringing", E164, OUR_NUMBER),
    )
    assert voice.status_code == 200, voice.text
    assert voice.text.startswith("<?xml") and "<Response" in voice.text
    status = f"/webhooks/twilio/{org}/status"
    for _ in range(2):  # a retried callback changes nothing
        answered = twilio_call(sid, "in-progress", E164, OUR_NUMBER, SequenceNumber="1")
        assert post_twilio(client, services, status, answered).status_code == 200
    done = twilio_call(sid, "completed", E164, OUR_NUMBER, SequenceNumber="2", CallDuration="42")
    assert post_twilio(client, services, status, done).status_code == 200
    from application.conversations.calls import inbound_call_id

    call = services.app.load(Call, inbound_call_id(UUID(org), "twilio", sid), UUID(org))
    assert (call.status, call.duration_seconds, call.outcome, call.version) == (
        "ended",
        42,
        "completed",
        4,  # started, ringing, answered, ended
    )
    (lead,) = leads_of(acme)
    assert (lead["source"], lead["phone"]) == ("phone", E164)


def test_a_twilio_callback_signed_with_another_token_or_url_is_rejected(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    twilio_setup(acme)
    path = f"/webhooks/twilio/{acme.organization_id}/status"
    params = twilio_call("CA" + "b" * 32, "completed", E164, OUR_NUMBER, CallDuration="1")
    body, headers = twilio_signed("another-token", services.settings.public_url + path, params)
    assert_problem(client.post(path, content=body, headers=headers), 403)
    body, headers = twilio_signed(AUTH_TOKEN, "https://evil.example" + path, params)
    assert_problem(client.post(path, content=body, headers=headers), 403)
    del headers["X-Twilio-Signature"]
    assert_problem(client.post(path, content=body, headers=headers), 401)
    # one record per reason a minute: a flood of bad calls does not grow the log
    reasons = sorted(i["changes"]["details"]["after"]["reason"] for i in incidents(acme))
    assert reasons == ["X-Twilio-Signature is missing", "signature mismatch"]


def telnyx_setup(tenant: Tenant, signer: TelnyxSigner) -> None:
    body = {
        "provider": "telnyx",
        "api_key": "KEY-telnyx",
        "public_key": signer.public_key,
        "connection_id": "conn-1",
        "numbers": [OUR_NUMBER],
    }
    assert tenant.post("/integrations/voip/setup", json=body).status_code == 200


def test_telnyx_events_are_verified_with_ed25519_and_a_fresh_timestamp(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    signer = TelnyxSigner()
    telnyx_setup(acme, signer)
    url = f"/webhooks/telnyx/{acme.organization_id}"
    call = "v3:call-1"
    common = {"from": E164, "to": OUR_NUMBER, "direction": "incoming", "state": "parked"}
    started = telnyx_event("evt-1", "call.initiated", call, **common)
    assert client.post(url, content=started, headers=signer.headers(started)).status_code == 200
    answered = telnyx_event("evt-2", "call.answered", call, **common)
    stale = signer.headers(answered, int(time.time()) - 301)
    assert_problem(client.post(url, content=answered, headers=stale), 403)
    assert_problem(client.post(url, content=answered + b" ", headers=signer.headers(answered)), 403)
    for _ in range(2):
        ok = client.post(url, content=answered, headers=signer.headers(answered))
        assert ok.status_code == 200, ok.text
    hangup = telnyx_event(
        "evt-3",
        "call.hangup",
        call,
        hangup_cause="normal_clearing",
        hangup_source="caller",
        start_time="2026-11-24T12:00:00Z",
        end_time="2026-11-24T12:01:30Z",
        **common,
    )
    assert client.post(url, content=hangup, headers=signer.headers(hangup)).status_code == 200
    from application.conversations.calls import inbound_call_id

    org = UUID(acme.organization_id)
    found = services.app.load(Call, inbound_call_id(org, "telnyx", call), org)
    assert (found.status, found.outcome, found.duration_seconds, found.version) == (
        "ended",
        "completed",
        90,
        3,
    )
    assert len(incidents(acme)) == 2
    assert json.loads(hangup)["data"]["id"] == "evt-3"


def test_a_status_that_loses_a_race_is_retried_not_dropped(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    post_meta(client, acme.organization_id, meta_payload([meta_message("wamid.IN", SENDER, "oi")]))
    org = UUID(acme.organization_id)
    lead_id = conversation(services, acme).lead_id
    sent = acme.post(f"/crm/leads/{lead_id}/messages", json={"text": "olá"}).json()
    mark_sent(
        services.app,
        org,
        UUID(sent["conversation_id"]),
        UUID(sent["message_id"]),
        "wamid.OUT",
        actor=Actor(kind="system", id="test-outbox"),
    )
    real_commit = services.app.commit
    raced: list[bool] = []

    def racing_commit(*aggregates: Any) -> int:
        # another webhook for the same contact commits between this one's load and save
        if not raced and any(isinstance(a, Conversation) for a in aggregates):
            raced.append(True)
            again = meta_payload([meta_message("wamid.IN2", SENDER, "de novo")])
            assert post_meta(client, acme.organization_id, again).status_code == 200
        return real_commit(*aggregates)

    services.app.commit = racing_commit  # type: ignore[method-assign]
    try:
        body = meta_payload(statuses=[meta_status("wamid.OUT", "read", SENDER)])
        response = post_meta(client, acme.organization_id, body)
    finally:
        services.app.commit = real_commit  # type: ignore[method-assign]
    assert raced and response.json() == {"messages": 0, "statuses": 1}
    chat = conversation(services, acme)
    assert chat.statuses[UUID(sent["message_id"])] == "read"
    assert len(chat.provider_ids) == 3
