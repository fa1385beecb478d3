"""A rep's day, end to end over HTTP with the outbox running in the server process: a lead
writes on WhatsApp, the rep answers and calls back — the local provider servers receive
exactly what Meta and Twilio would, and their callbacks close the loop on the timeline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.services import Services, build_services
from tests.conftest import settings_for
from tests.support.api import Tenant, register
from tests.support.provider_servers import GraphServer, TwilioServer
from tests.support.webhooks import (
    PHONE_NUMBER_ID,
    meta_message,
    meta_payload,
    meta_signature,
    meta_status,
    twilio_call,
    twilio_signed,
)

SENDER = "5511987654321"
OURS = "+14155552671"


@pytest.fixture
def live_client(database_url: str) -> Iterator[tuple[TestClient[Any], Services]]:
    services = build_services(settings_for(database_url, CRM_OUTBOX="on"))
    services.start_projections()
    with TestClient(create_app(services, own_services=False)) as client:
        yield client, services
    services.close()


def eventually(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def after_all(rep: Tenant) -> dict[str, str]:
    """Read after every write so far (webhooks and the outbox write outside the rep's calls)."""
    head = rep.client.app.state.services.app.recorder.max_notification_id()
    return {"X-Min-Position": str(head)}


def messages(rep: Tenant, lead_id: str) -> list[dict[str, Any]]:
    response = rep.get(f"/crm/leads/{lead_id}/messages", headers=after_all(rep))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_lead_writes_the_rep_answers_and_calls_back_and_it_is_all_on_the_timeline(
    live_client: tuple[TestClient[Any], Services],
) -> None:
    client, services = live_client
    rep = register(client)
    org = rep.organization_id
    with (
        GraphServer(access_token="graph-token") as graph,
        TwilioServer(account_sid="AC" + "7" * 32, auth_token="twilio-token") as twilio,
    ):
        cloud = {
            "provider": "business_api",
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": "graph-token",
            "app_secret": "app-secret",
            "verify_token": "verify",
            "base_url": graph.url,
        }
        assert rep.post("/integrations/whatsapp/setup", json=cloud).status_code == 200
        voip = {
            "provider": "twilio",
            "account_sid": "AC" + "7" * 32,
            "auth_token": "twilio-token",
            "numbers": [OURS],
            "base_url": twilio.url,
        }
        assert rep.post("/integrations/voip/setup", json=voip).status_code == 200

        # 1. the lead writes
        body = meta_payload([meta_message("wamid.IN1", SENDER, "Quero saber o preço")])
        inbound = client.post(
            f"/webhooks/whatsapp/{org}", content=body, headers=meta_signature("app-secret", body)
        )
        assert inbound.json() == {"messages": 1, "statuses": 0}, inbound.text
        (lead,) = rep.get("/crm/leads", headers=after_all(rep)).json()["items"]
        lead_id = lead["id"]

        # 2. the rep answers; the outbox delivers it to the Cloud API
        sent = rep.post(f"/crm/leads/{lead_id}/messages", json={"text": "Olá! Custa R$ 99."})
        assert sent.status_code == 201, sent.text
        request = eventually(lambda: graph.requests, "the Cloud API received the reply")[0]
        assert request.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"
        assert request.header("authorization") == "Bearer graph-token"
        assert request.json["to"] == "+5511987654321"
        assert request.json["text"] == {"preview_url": False, "body": "Olá! Custa R$ 99."}
        assert request.json["biz_opaque_callback_data"] == sent.json()["message_id"]
        wamid = eventually(
            lambda: next(
                (m["provider_message_id"] for m in messages(rep, lead_id) if m["status"] == "sent"),
                None,
            ),
            "the provider's id was recorded",
        )
        statuses = [meta_status(wamid, s, SENDER) for s in ("read", "delivered")]
        body = meta_payload(statuses=statuses)
        client.post(
            f"/webhooks/whatsapp/{org}", content=body, headers=meta_signature("app-secret", body)
        )
        mine = eventually(
            lambda: [m for m in messages(rep, lead_id) if m["status"] == "read"], "read"
        )
        assert mine[0]["id"] == sent.json()["message_id"]

        # 3. the rep calls back; the outbox asks Twilio to place it, Twilio calls back
        placed = rep.post(f"/crm/leads/{lead_id}/calls", json={"connect_to": "+55 11 91111-2222"})
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["call_id"]
        dial = eventually(lambda: twilio.requests, "Twilio was asked to place the call")[0]
        assert (dial.form["To"], dial.form["From"]) == ("+5511987654321", OURS)
        # when the lead answers, Twilio rings the rep and joins them, showing our number
        assert dial.form["Twiml"] == (
            f'<Response><Dial callerId="{OURS}">+5511911112222</Dial></Response>'
        )
        callback = dial.form["StatusCallback"]
        assert parse_qs(urlsplit(callback).query)["call_id"] == [call_id]
        path = urlsplit(callback).path + "?" + urlsplit(callback).query
        assert callback == services.settings.public_url + path
        sid = eventually(
            lambda: rep.get(f"/crm/calls/{call_id}", headers=after_all(rep))
            .json()
            .get("provider_call_id"),
            "the call sid was recorded",
        )
        params = twilio_call(
            sid, "completed", OURS, "+5511987654321", CallDuration="65", SequenceNumber="3"
        )
        params["Direction"] = "outbound-api"
        form, headers = twilio_signed("twilio-token", callback, params)
        assert client.post(path, content=form, headers=headers).status_code == 200
        call = eventually(
            lambda: (c := rep.get(f"/crm/calls/{call_id}", headers=after_all(rep)).json())["status"]
            == "ended"
            and c,
            "the call ended",
        )
        assert (call["duration_seconds"], call["outcome"], call["direction"]) == (
            65,
            "completed",
            "outbound",
        )

    timeline = rep.get(f"/crm/leads/{lead_id}/activities", headers=after_all(rep))
    # the message's analysis joins the timeline whenever the timers get to it (this process
    # runs them): its place among the others depends on that moment
    kinds = [
        a["activity_type"]
        for a in timeline.json()["items"]
        if a["activity_type"] != "message_analysed"
    ]
    assert kinds[:4] == ["call_ended", "call_placed", "message_sent", "message_received"]
    assert kinds[-1] == "captured"
