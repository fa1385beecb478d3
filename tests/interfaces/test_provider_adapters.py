"""Outbound provider adapters against local servers speaking each provider's API.

What the provider receives is checked field by field; failures map to ProviderError with
`retryable` set as the outbox needs it. Twilio goes through the real SDK.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from uuid import uuid4

import httpx
import pytest

from application.conversations.providers import (
    BUSINESS_API,
    TELNYX,
    TWILIO,
    WEB_BRIDGE,
    Credentials,
    OutboundCall,
    OutboundMessage,
    ProviderError,
    SessionState,
)
from interfaces.providers.cloud_api import CloudApiSender
from interfaces.providers.factory import HttpProviderFactory
from interfaces.providers.telnyx_voice import TelnyxCalls
from interfaces.providers.twilio_voice import TwilioCalls
from interfaces.providers.waha import WahaBridge
from tests.support.provider_servers import GraphServer, TelnyxServer, TwilioServer, WahaServer

TO = "+5511987654321"
FROM = "+5511333344444"


def creds(provider_type: str, settings: dict[str, str], secrets: dict[str, str]) -> Credentials:
    return Credentials(
        organization_id=uuid4(),
        kind="voip" if provider_type in (TWILIO, TELNYX) else "whatsapp",
        provider_type=provider_type,
        settings=settings,
        secrets=secrets,
    )


def refused_url() -> str:
    server = GraphServer().start()
    url = server.url
    server.stop()
    return url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as c:
        yield c


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(access_token="graph-token", phone_number_id="1099") as server:
        yield server


@pytest.fixture
def waha() -> Iterator[WahaServer]:
    with WahaServer(api_key="waha-key") as server:
        yield server


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer(auth_token="twilio-token") as server:
        yield server


@pytest.fixture
def telnyx() -> Iterator[TelnyxServer]:
    with TelnyxServer(api_key="telnyx-key") as server:
        yield server


def cloud(url: str, client: httpx.Client, token: str = "graph-token") -> CloudApiSender:
    settings = {"phone_number_id": "1099", "base_url": url}
    return CloudApiSender(creds(BUSINESS_API, settings, {"access_token": token}), client)


def bridge(url: str, client: httpx.Client, key: str = "waha-key") -> WahaBridge:
    settings = {"base_url": url, "session": "default"}
    secrets = {"api_key": key, "hmac_key": "hmac-secret"}
    return WahaBridge(creds(WEB_BRIDGE, settings, secrets), client)


def twilio_calls(url: str, sid: str, token: str = "twilio-token") -> TwilioCalls:
    settings = {"account_sid": sid, "base_url": url}
    return TwilioCalls(creds(TWILIO, settings, {"auth_token": token}))


def telnyx_calls(url: str, client: httpx.Client, key: str = "telnyx-key") -> TelnyxCalls:
    settings = {"connection_id": "conn-1", "base_url": f"{url}/v2"}
    return TelnyxCalls(creds(TELNYX, settings, {"api_key": key}), client)


def a_call(key: str = "call-1") -> OutboundCall:
    return OutboundCall(
        idempotency_key=key,
        from_number=FROM,
        to_number=TO,
        status_callback_url="https://crm.example/webhooks/voip/org-1",
    )


# WhatsApp Cloud API


def test_a_text_message_reaches_graph_as_the_documented_request(graph, client):
    accepted = cloud(graph.url, client).send_message(
        OutboundMessage(idempotency_key="msg-1", to=TO, text="Olá!", reply_to="wamid.IN")
    )

    [request] = graph.requests
    assert request.method == "POST"
    assert request.path == "/v23.0/1099/messages"
    assert request.header("Authorization") == "Bearer graph-token"
    assert request.header("Content-Type") == "application/json"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"preview_url": False, "body": "Olá!"},
        "context": {"message_id": "wamid.IN"},
        "biz_opaque_callback_data": "msg-1",
    }
    assert accepted.provider_message_id.startswith("wamid.")


def test_a_template_sends_its_positional_variables_in_numeric_order(graph, client):
    message = OutboundMessage(
        idempotency_key="msg-2",
        to=TO,
        template_name="follow_up",
        template_language="pt_BR",
        template_variables={"10": "ten", "2": "two", "1": "one"},
    )
    cloud(graph.url, client).send_message(message)

    body = graph.requests[0].json
    assert body["type"] == "template"
    assert "text" not in body
    assert body["template"] == {
        "name": "follow_up",
        "language": {"code": "pt_BR"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "one"},
                    {"type": "text", "text": "two"},
                    {"type": "text", "text": "ten"},
                ],
            }
        ],
    }


def test_a_template_with_named_variables_keeps_their_order_and_names(graph, client):
    message = OutboundMessage(
        idempotency_key="msg-3",
        to=TO,
        template_name="welcome",
        template_variables={"first_name": "Ana", "plan": "Pro"},
    )
    cloud(graph.url, client).send_message(message)

    template = graph.requests[0].json["template"]
    assert template["language"] == {"code": "en_US"}
    assert template["components"][0]["parameters"] == [
        {"type": "text", "parameter_name": "first_name", "text": "Ana"},
        {"type": "text", "parameter_name": "plan", "text": "Pro"},
    ]


def test_a_template_without_variables_sends_no_components(graph, client):
    message = OutboundMessage(idempotency_key="m", to=TO, template_name="hello_world")
    cloud(graph.url, client).send_message(message)

    assert "components" not in graph.requests[0].json["template"]


def test_graph_settings_choose_the_api_version(graph, client):
    settings = {"phone_number_id": "1099", "base_url": graph.url, "api_version": "v21.0"}
    sender = CloudApiSender(creds(BUSINESS_API, settings, {"access_token": "graph-token"}), client)
    sender.send_message(OutboundMessage(idempotency_key="m", to=TO, text="hi"))

    assert graph.requests[0].path == "/v21.0/1099/messages"


def test_a_wrong_access_token_is_not_retryable_and_carries_the_graph_code(graph, client):
    with pytest.raises(ProviderError) as caught:
        cloud(graph.url, client, token="stale").send_message(
            OutboundMessage(idempotency_key="m", to=TO, text="hi")
        )

    assert caught.value.retryable is False
    assert caught.value.code == "190"
    assert "stale" not in str(caught.value)


def test_a_message_outside_the_customer_service_window_is_not_retryable(graph, client):
    graph.fail_next(1, 400, body=GraphServer.graph_error(131047, "Re-engagement message"))

    with pytest.raises(ProviderError) as caught:
        cloud(graph.url, client).send_message(OutboundMessage(idempotency_key="m", to=TO, text="x"))

    assert (caught.value.retryable, caught.value.code) == (False, "131047")
    assert "Re-engagement message" in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_graph_throttling_and_server_errors_are_retryable(graph, client, status):
    graph.fail_next(1, status)

    with pytest.raises(ProviderError) as caught:
        cloud(graph.url, client).send_message(OutboundMessage(idempotency_key="m", to=TO, text="x"))

    assert caught.value.retryable is True


def test_a_graph_throttling_code_answered_with_400_is_retryable(graph, client):
    graph.fail_next(1, 400, body=GraphServer.graph_error(131056, "Pair rate limit hit"))

    with pytest.raises(ProviderError) as caught:
        cloud(graph.url, client).send_message(OutboundMessage(idempotency_key="m", to=TO, text="x"))

    assert (caught.value.retryable, caught.value.code) == (True, "131056")


def test_a_failed_send_succeeds_when_the_server_recovers(graph, client):
    graph.fail_next(1, 500)
    sender = cloud(graph.url, client)
    message = OutboundMessage(idempotency_key="m", to=TO, text="x")

    with pytest.raises(ProviderError):
        sender.send_message(message)
    accepted = sender.send_message(message)

    assert len(graph.requests) == 2
    assert accepted.provider_message_id.startswith("wamid.")


def test_an_unreachable_graph_is_retryable(client):
    with pytest.raises(ProviderError) as caught:
        cloud(refused_url(), client).send_message(
            OutboundMessage(idempotency_key="m", to=TO, text="x")
        )

    assert (caught.value.retryable, caught.value.code) == (True, "unreachable")


def test_a_lost_answer_is_retryable(graph, client):
    graph.disconnect_next(1)

    with pytest.raises(ProviderError) as caught:
        cloud(graph.url, client).send_message(OutboundMessage(idempotency_key="m", to=TO, text="x"))

    assert caught.value.retryable is True
    assert len(graph.requests) == 1


def test_a_message_without_text_or_template_is_refused_before_sending(graph, client):
    with pytest.raises(ProviderError) as caught:
        cloud(graph.url, client).send_message(OutboundMessage(idempotency_key="m", to=TO))

    assert caught.value.retryable is False
    assert graph.requests == []


def test_a_missing_phone_number_id_is_a_configuration_fault(client):
    with pytest.raises(ProviderError) as caught:
        CloudApiSender(creds(BUSINESS_API, {}, {"access_token": "t"}), client)

    assert (caught.value.retryable, caught.value.code) == (False, "misconfigured")


# WAHA


def test_a_text_reaches_waha_as_send_text_to_the_contacts_chat(waha, client):
    accepted = bridge(waha.url, client).send_message(
        OutboundMessage(idempotency_key="m", to="+55 11 98765-4321", text="Oi")
    )

    [request] = waha.requests
    assert (request.method, request.path) == ("POST", "/api/sendText")
    assert request.header("X-Api-Key") == "waha-key"
    assert request.json == {"session": "default", "chatId": "5511987654321@c.us", "text": "Oi"}
    assert accepted.provider_message_id.startswith("true_5511987654321@c.us_")


def test_a_waha_message_id_given_as_a_string_is_taken_as_is(client):
    with WahaServer(message_id_style="string") as server:
        accepted = bridge(server.url, client).send_message(
            OutboundMessage(idempotency_key="m", to=TO, text="Oi")
        )

    assert accepted.provider_message_id.startswith("true_5511987654321@c.us_")


def test_a_bridge_refuses_templates_without_calling_waha(waha, client):
    message = OutboundMessage(idempotency_key="m", to=TO, template_name="follow_up")

    with pytest.raises(ProviderError) as caught:
        bridge(waha.url, client).send_message(message)

    assert (caught.value.retryable, caught.value.code) == (False, "template_unsupported")
    assert waha.requests == []


def test_a_wrong_waha_api_key_is_not_retryable(waha, client):
    with pytest.raises(ProviderError) as caught:
        bridge(waha.url, client, key="wrong").send_message(
            OutboundMessage(idempotency_key="m", to=TO, text="Oi")
        )

    assert (caught.value.retryable, caught.value.code) == (False, "401")


def test_a_waha_server_error_is_retryable(waha, client):
    waha.fail_next(1, 500)

    with pytest.raises(ProviderError) as caught:
        bridge(waha.url, client).send_message(OutboundMessage(idempotency_key="m", to=TO, text="x"))

    assert caught.value.retryable is True


def test_an_unreachable_waha_is_retryable(client):
    with pytest.raises(ProviderError) as caught:
        bridge(refused_url(), client).send_message(
            OutboundMessage(idempotency_key="m", to=TO, text="x")
        )

    assert caught.value.retryable is True


def test_starting_a_new_session_registers_the_signed_webhook_and_returns_the_qr(client):
    with WahaServer(sessions={}, qr_value="2@QR") as server:
        state = bridge(server.url, client).start_session("https://crm.example/webhooks/waha/o1")
        create = server.requests[0]

    assert state == SessionState(status="qr_required", qr="2@QR")
    assert (create.method, create.path) == ("POST", "/api/sessions")
    assert create.header("X-Api-Key") == "waha-key"
    assert create.json == {
        "name": "default",
        "config": {
            "webhooks": [
                {
                    "url": "https://crm.example/webhooks/waha/o1",
                    "events": ["message", "message.ack", "session.status"],
                    "hmac": {"key": "hmac-secret"},
                }
            ]
        },
    }
    qr = server.requests[-1]
    assert (qr.method, qr.path, qr.query) == ("GET", "/api/default/auth/qr", {"format": ["raw"]})


def test_starting_an_existing_stopped_session_updates_its_webhook_and_starts_it(client):
    with WahaServer(sessions={"default": "STOPPED"}) as server:
        state = bridge(server.url, client).start_session("https://crm.example/hook")
        calls = [(r.method, r.path) for r in server.requests]
        config = server.sessions["default"]["config"]

    assert calls[:5] == [
        ("POST", "/api/sessions"),
        ("PUT", "/api/sessions/default"),
        ("GET", "/api/sessions/default"),
        ("POST", "/api/sessions/default/start"),
        ("GET", "/api/sessions/default"),
    ]
    assert config["webhooks"][0]["url"] == "https://crm.example/hook"
    assert state.status == "qr_required"


@pytest.mark.parametrize(
    ("waha_status", "status"),
    [
        ("STOPPED", "stopped"),
        ("STARTING", "connecting"),
        ("WORKING", "connected"),
        ("FAILED", "failed"),
    ],
)
def test_waha_session_statuses_map_to_ours(client, waha_status, status):
    with WahaServer(sessions={"default": waha_status}) as server:
        state = bridge(server.url, client).session_state()
        paths = [r.path for r in server.requests]

    assert state == SessionState(status=status, qr=None)
    assert paths == ["/api/sessions/default"]


def test_a_session_waha_does_not_know_is_stopped(client):
    with WahaServer(sessions={}) as server:
        assert bridge(server.url, client).session_state() == SessionState(status="stopped")


# Twilio (through the official SDK)


def test_a_call_reaches_twilio_through_the_sdk_as_the_documented_request(twilio):
    accepted = twilio_calls(twilio.url, twilio.account_sid).place_call(a_call("call-42"))

    [request] = twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Calls.json"
    expected = base64.b64encode(f"{twilio.account_sid}:twilio-token".encode()).decode()
    assert request.header("Authorization") == f"Basic {expected}"
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.header("I-Twilio-Idempotency-Token") == "call-42"
    form = request.parsed
    assert form["To"] == [TO]
    assert form["From"] == [FROM]
    assert form["StatusCallback"] == ["https://crm.example/webhooks/voip/org-1"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["StatusCallbackMethod"] == ["POST"]
    assert form["Twiml"][0].startswith("<Response><Say>")
    assert accepted.provider_call_id.startswith("CA")
    assert len(accepted.provider_call_id) == 34


def test_a_configured_twiml_url_replaces_the_default_greeting(twilio):
    settings = {
        "account_sid": twilio.account_sid,
        "base_url": twilio.url,
        "twiml_url": "https://crm.example/twiml/bridge",
    }
    TwilioCalls(creds(TWILIO, settings, {"auth_token": "twilio-token"})).place_call(a_call())

    form = twilio.requests[0].form
    assert form["Url"] == "https://crm.example/twiml/bridge"
    assert "Twiml" not in form


def test_wrong_twilio_credentials_are_not_retryable(twilio):
    with pytest.raises(ProviderError) as caught:
        twilio_calls(twilio.url, twilio.account_sid, token="wrong").place_call(a_call())

    assert (caught.value.retryable, caught.value.code) == (False, "20003")
    assert "wrong" not in str(caught.value)


@pytest.mark.parametrize("status", [429, 500])
def test_twilio_throttling_and_server_errors_are_retryable(twilio, status):
    twilio.fail_next(1, status)

    with pytest.raises(ProviderError) as caught:
        twilio_calls(twilio.url, twilio.account_sid).place_call(a_call())

    assert caught.value.retryable is True


def test_an_unreachable_twilio_is_retryable():
    sid = "AC" + "0" * 32
    with pytest.raises(ProviderError) as caught:
        twilio_calls(refused_url(), sid).place_call(a_call())

    assert (caught.value.retryable, caught.value.code) == (True, "unreachable")


def test_the_idempotency_header_does_not_leak_into_later_requests(twilio):
    calls = twilio_calls(twilio.url, twilio.account_sid)
    calls.place_call(a_call("first"))
    calls.place_call(a_call("second"))

    tokens = [r.header("I-Twilio-Idempotency-Token") for r in twilio.requests]
    assert tokens == ["first", "second"]


# Telnyx


def test_a_call_reaches_telnyx_as_a_dial_command(telnyx, client):
    accepted = telnyx_calls(telnyx.url, client).place_call(a_call("call-7"))

    [request] = telnyx.requests
    assert (request.method, request.path) == ("POST", "/v2/calls")
    assert request.header("Authorization") == "Bearer telnyx-key"
    assert request.json == {
        "connection_id": "conn-1",
        "to": TO,
        "from": FROM,
        "webhook_url": "https://crm.example/webhooks/voip/org-1",
        "command_id": "call-7",
    }
    assert accepted.provider_call_id.startswith("v3:")


def test_a_wrong_telnyx_key_is_not_retryable_and_carries_the_telnyx_code(telnyx, client):
    with pytest.raises(ProviderError) as caught:
        telnyx_calls(telnyx.url, client, key="wrong").place_call(a_call())

    assert (caught.value.retryable, caught.value.code) == (False, "10009")
    assert "Authentication failed" in str(caught.value)


def test_a_telnyx_server_error_is_retryable_and_the_retry_places_one_call(telnyx, client):
    telnyx.fail_next(1, 500)
    calls = telnyx_calls(telnyx.url, client)

    with pytest.raises(ProviderError) as caught:
        calls.place_call(a_call("call-9"))
    first = calls.place_call(a_call("call-9"))
    again = calls.place_call(a_call("call-9"))

    assert caught.value.retryable is True
    assert first == again
    assert [r.json["command_id"] for r in telnyx.requests] == ["call-9"] * 3


def test_an_unreachable_telnyx_is_retryable(client):
    with pytest.raises(ProviderError) as caught:
        telnyx_calls(refused_url(), client).place_call(a_call())

    assert caught.value.retryable is True


# factory


def test_the_factory_builds_the_adapter_of_each_provider_type():
    factory = HttpProviderFactory(timeout=5.0, allow_private=True)  # the servers are local
    try:
        whatsapp = creds(BUSINESS_API, {"phone_number_id": "1"}, {"access_token": "t"})
        bridge_creds = creds(WEB_BRIDGE, {"base_url": "http://127.0.0.1:9"}, {"api_key": "k"})
        twilio_creds = creds(TWILIO, {"account_sid": "AC" + "0" * 32}, {"auth_token": "t"})
        telnyx_creds = creds(TELNYX, {"connection_id": "c"}, {"api_key": "k"})

        assert isinstance(factory.message_sender(whatsapp), CloudApiSender)
        assert isinstance(factory.message_sender(bridge_creds), WahaBridge)
        assert isinstance(factory.bridge_sessions(bridge_creds), WahaBridge)
        assert isinstance(factory.call_placer(twilio_creds), TwilioCalls)
        assert isinstance(factory.call_placer(telnyx_creds), TelnyxCalls)
        with pytest.raises(ValueError):
            factory.bridge_sessions(whatsapp)
        with pytest.raises(ValueError):
            factory.call_placer(whatsapp)
        with pytest.raises(ValueError):
            factory.message_sender(twilio_creds)
    finally:
        factory.close()


def test_adapters_from_the_factory_reach_their_servers(graph, telnyx):
    factory = HttpProviderFactory(timeout=5.0, allow_private=True)  # the servers are local
    try:
        settings = {"phone_number_id": "1099", "base_url": graph.url}
        sender = factory.message_sender(
            creds(BUSINESS_API, settings, {"access_token": "graph-token"})
        )
        sender.send_message(OutboundMessage(idempotency_key="m", to=TO, text="hi"))
        placer = factory.call_placer(
            creds(
                TELNYX,
                {"connection_id": "c", "base_url": f"{telnyx.url}/v2"},
                {"api_key": "telnyx-key"},
            )
        )
        placer.place_call(a_call())
    finally:
        factory.close()

    assert len(graph.requests) == 1
    assert len(telnyx.requests) == 1
