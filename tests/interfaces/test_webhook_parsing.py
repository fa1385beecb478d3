"""Webhook signature checks and payload parsers, signed with each provider's real algorithm."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator

from interfaces.webhooks import telnyx, twilio, waha, whatsapp_cloud
from interfaces.webhooks.errors import BadPayload, WebhookRejected

NOW = 1_750_000_000.0


def rejected(status: int) -> Any:
    return pytest.raises(WebhookRejected, match=f"^{status}: ")


# WhatsApp Cloud API (Meta)

APP_SECRET = "meta-app-secret"


def meta_sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_payload(*changes: dict[str, Any], entries: int = 1) -> bytes:
    entry = [{"id": f"WABA{i}", "changes": list(changes)} for i in range(entries)]
    return json.dumps({"object": "whatsapp_business_account", "entry": entry}).encode()


def messages_change(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    number: str = "1122334455667",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511900000000", "phone_number_id": number},
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {"field": "messages", "value": value}


def contact(wa_id: str = "5511987654321", name: str = "Ana", user_id: bool = True) -> dict:
    card: dict[str, Any] = {"profile": {"name": name}, "wa_id": wa_id}
    if user_id:
        card |= {"user_id": "US.1349120865530274", "parent_user_id": "US.ENT.1181579921"}
    return card


def message(kind: str, wamid: str = "wamid.A1", **content: Any) -> dict[str, Any]:
    return {"from": "5511987654321", "id": wamid, "timestamp": "1697043223", "type": kind} | (
        content or {kind: {}}
    )


def status(wamid: str, state: str, **extra: Any) -> dict[str, Any]:
    base = {"id": wamid, "status": state, "timestamp": "1698266945", "recipient_id": "5511987"}
    return base | extra


def test_a_meta_body_signed_with_the_app_secret_is_accepted() -> None:
    body = meta_payload(messages_change([message("text", text={"body": "oi"})]))
    whatsapp_cloud.verify_signature(APP_SECRET, body, meta_sign(body))


def test_a_meta_signature_in_uppercase_hex_is_accepted() -> None:
    body = meta_payload(messages_change([]))
    whatsapp_cloud.verify_signature(APP_SECRET, body, meta_sign(body).upper())


def test_a_tampered_meta_body_is_forbidden() -> None:
    body = meta_payload(messages_change([message("text", text={"body": "oi"})]))
    with rejected(403):
        whatsapp_cloud.verify_signature(APP_SECRET, body.replace(b"oi", b"ei"), meta_sign(body))


def test_a_meta_body_signed_with_another_secret_is_forbidden() -> None:
    body = meta_payload(messages_change([]))
    with rejected(403):
        whatsapp_cloud.verify_signature(APP_SECRET, body, meta_sign(body, "other"))


@pytest.mark.parametrize("header", [None, ""])
def test_a_meta_body_without_signature_is_unauthorized(header: str | None) -> None:
    with rejected(401):
        whatsapp_cloud.verify_signature(APP_SECRET, b"{}", header)


@pytest.mark.parametrize(
    "header", ["md5=abc", "sha256=xyz", "sha256=" + "g" * 64, "sha1=" + "a" * 40, "sha256=é"]
)
def test_a_malformed_meta_signature_is_forbidden(header: str) -> None:
    with rejected(403):
        whatsapp_cloud.verify_signature(APP_SECRET, b"{}", header)


def test_no_configured_app_secret_rejects_even_an_empty_key_signature() -> None:
    with rejected(403):
        whatsapp_cloud.verify_signature("", b"{}", meta_sign(b"{}", ""))


def test_a_rejection_reason_never_contains_the_secret_or_signature() -> None:
    body = b'{"entry":[]}'
    with pytest.raises(WebhookRejected) as caught:
        whatsapp_cloud.verify_signature(APP_SECRET, body, meta_sign(body, "x"))
    assert APP_SECRET not in caught.value.reason
    assert meta_sign(body) not in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_of_a_signed_meta_body_fails_verification(data: Any) -> None:
    body = meta_payload(messages_change([message("text", text={"body": "Olá, tudo bem?"})]))
    header = meta_sign(body)
    index = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
    changed = body[:index] + bytes([replacement]) + body[index + 1 :]
    with rejected(403):
        whatsapp_cloud.verify_signature(APP_SECRET, changed, header)


def test_unicode_escaped_meta_bodies_are_verified_on_the_raw_bytes() -> None:
    escaped = meta_payload(messages_change([message("text", text={"body": "caf\u00e9"})]))
    assert b"\\u00e9" in escaped  # Meta sends the escaped form and signs exactly that
    header = meta_sign(escaped)
    whatsapp_cloud.verify_signature(APP_SECRET, escaped, header)
    reserialised = json.dumps(json.loads(escaped), ensure_ascii=False).encode()
    with rejected(403):
        whatsapp_cloud.verify_signature(APP_SECRET, reserialised, header)
    assert whatsapp_cloud.parse(escaped).messages[0].text == "café"


def test_the_handshake_echoes_the_challenge_for_the_right_token() -> None:
    assert whatsapp_cloud.verify_handshake("subscribe", "tok", "1158201444", "tok") == "1158201444"


@pytest.mark.parametrize(
    ("mode", "token"),
    [("subscribe", "wrong"), ("unsubscribe", "tok"), (None, "tok"), ("subscribe", None)],
)
def test_a_handshake_with_a_wrong_mode_or_token_is_forbidden(mode: Any, token: Any) -> None:
    with rejected(403):
        whatsapp_cloud.verify_handshake(mode, token, "123", "tok")


def test_a_handshake_never_matches_an_unconfigured_verify_token() -> None:
    with rejected(403):
        whatsapp_cloud.verify_handshake("subscribe", "", "123", "")


def test_every_entry_change_message_and_status_of_a_meta_post_is_parsed() -> None:
    first = messages_change(
        [message("text", f"wamid.a{i}", text={"body": f"m{i}"}) for i in range(3)],
        [status("wamid.s1", "delivered"), status("wamid.s2", "read")],
        [contact()],
    )
    second = messages_change(
        [message("text", "wamid.b1", text={"body": "x"})],
        [status("wamid.s3", "sent")],
        [contact()],
        number="998877",
    )
    body = meta_payload(first, second, entries=2)
    batch = whatsapp_cloud.parse(body)
    assert [m.provider_message_id for m in batch.messages] == [
        "wamid.a0",
        "wamid.a1",
        "wamid.a2",
        "wamid.b1",
    ] * 2
    assert [s.status for s in batch.statuses] == ["delivered", "read", "sent"] * 2
    assert batch.phone_number_ids == ["1122334455667", "998877"]
    assert batch.number_of["wamid.b1"] == "998877"
    assert batch.number_of["wamid.s1"] == "1122334455667"
    assert {m.contact_name for m in batch.messages} == {"Ana"}


def test_meta_timestamps_become_aware_utc_datetimes() -> None:
    body = meta_payload(
        messages_change([message("text", text={"body": "a"})], [status("w", "sent")])
    )
    batch = whatsapp_cloud.parse(body)
    assert batch.messages[0].sent_at == datetime(2023, 10, 11, 16, 53, 43, tzinfo=UTC)
    assert batch.statuses[0].at.tzinfo is UTC


def test_the_older_meta_format_without_user_id_still_names_the_contact() -> None:
    body = meta_payload(
        messages_change([message("text", text={"body": "a"})], contacts=[contact(user_id=False)])
    )
    assert whatsapp_cloud.parse(body).messages[0].contact_name == "Ana"


def test_a_meta_message_without_contacts_has_no_contact_name() -> None:
    body = meta_payload(
        messages_change([message("system", system={"body": "User A changed number"})])
    )
    parsed = whatsapp_cloud.parse(body).messages[0]
    assert parsed.contact_name is None
    assert parsed.text == "User A changed number"


def test_the_contact_name_is_matched_by_wa_id_not_by_position() -> None:
    body = meta_payload(
        messages_change(
            [message("text", text={"body": "a"})],
            contacts=[contact("5500000000000", "Bruno"), contact("5511987654321", "Ana")],
        )
    )
    assert whatsapp_cloud.parse(body).messages[0].contact_name == "Ana"


MESSAGE_TYPES = [
    ("text", {"text": {"body": "Body Text"}}, "Body Text"),
    ("image", {"image": {"mime_type": "image/jpeg", "sha256": "x", "id": "654"}}, "[image]"),
    ("image", {"image": {"id": "654", "caption": "my cat"}}, "my cat"),
    ("video", {"video": {"caption": "caption", "mime_type": "video/mp4", "id": "7"}}, "caption"),
    (
        "audio",
        {"audio": {"mime_type": "audio/ogg; codecs=opus", "id": "1", "voice": True}},
        "[audio]",
    ),
    ("document", {"document": {"filename": "filename.pdf", "id": "1"}}, "[document] filename.pdf"),
    (
        "sticker",
        {"sticker": {"mime_type": "image/webp", "id": "1", "animated": False}},
        "[sticker]",
    ),
    (
        "location",
        {"location": {"latitude": 12.25089, "longitude": 43.90539}},
        "[location] 12.25089,43.90539",
    ),
    (
        "location",
        {"location": {"latitude": 37.4611978, "longitude": -122.2164385, "name": "Facebook HQ"}},
        "[location] 37.4611978,-122.2164385 (Facebook HQ)",
    ),
    (
        "contacts",
        {
            "contacts": [
                {
                    "name": {"first_name": "Chandler", "formatted_name": "Chandler Bing"},
                    "phones": [],
                },
                {"name": {"first_name": "Monica"}},
            ]
        },
        "[contacts] Chandler Bing, Monica",
    ),
    (
        "interactive",
        {"interactive": {"type": "button_reply", "button_reply": {"id": "cb", "title": "Yes"}}},
        "Yes",
    ),
    (
        "interactive",
        {
            "interactive": {
                "type": "list_reply",
                "list_reply": {"id": "cb", "title": "Plan B", "description": "d"},
            }
        },
        "Plan B",
    ),
    (
        "interactive",
        {"interactive": {"type": "nfm_reply", "nfm_reply": {"body": "Sent"}}},
        "[interactive]",
    ),
    (
        "button",
        {"button": {"payload": "callback_data", "text": "Stop promotions"}},
        "Stop promotions",
    ),
    (
        "reaction",
        {"reaction": {"message_id": "wamid.yzx", "emoji": "\U0001f62e"}},
        "[reaction] \U0001f62e",
    ),
    ("reaction", {"reaction": {"message_id": "wamid.yzx"}}, "[reaction removed]"),
    (
        "system",
        {"system": {"body": "User A changed from 1 to 2", "type": "user_changed_number"}},
        "User A changed from 1 to 2",
    ),
    (
        "unsupported",
        {"errors": [{"code": 131051, "title": "Message type unknown"}]},
        "[unsupported]",
    ),
    ("order", {"order": {"catalog_id": "1", "product_items": []}}, "[order]"),
]


@pytest.mark.parametrize(("kind", "content", "text"), MESSAGE_TYPES)
def test_every_meta_message_type_gets_a_readable_text(kind: str, content: dict, text: str) -> None:
    body = meta_payload(messages_change([message(kind, **content)], contacts=[contact()]))
    [parsed] = whatsapp_cloud.parse(body).messages
    assert (parsed.message_type, parsed.text) == (kind, text)
    assert parsed.from_phone == "5511987654321"
    assert parsed.provider_message_id == "wamid.A1"


def test_a_meta_status_maps_played_to_read_and_skips_unknown_ones() -> None:
    body = meta_payload(
        messages_change(
            statuses=[
                status("w1", "played"),
                status("w2", "deleted"),
                status(
                    "w3",
                    "sent",
                    pricing={"billable": True, "pricing_model": "PMP", "category": "utility"},
                    conversation={"id": "c"},
                ),
            ]
        )
    )
    assert [(s.provider_message_id, s.status) for s in whatsapp_cloud.parse(body).statuses] == [
        ("w1", "read"),
        ("w3", "sent"),
    ]


def test_a_failed_meta_status_carries_the_first_error_as_code_and_title() -> None:
    errors = [{"code": 131047, "title": "Re-engagement message", "message": "..."}, {"code": 1}]
    body = meta_payload(messages_change(statuses=[status("w1", "failed", errors=errors)]))
    [failed] = whatsapp_cloud.parse(body).statuses
    assert (failed.status, failed.error, failed.recipient) == (
        "failed",
        "131047: Re-engagement message",
        "5511987",
    )


def test_meta_fields_other_than_messages_are_ignored() -> None:
    template = {
        "field": "message_template_status_update",
        "value": {"event": "APPROVED", "message_template_id": 1},
    }
    body = meta_payload(template, messages_change([message("text", text={"body": "a"})]))
    batch = whatsapp_cloud.parse(body)
    assert len(batch.messages) == 1
    assert batch.phone_number_ids == ["1122334455667"]


def test_a_meta_message_that_only_carries_a_user_id_uses_it_as_sender() -> None:
    raw = message("text", text={"body": "hi"})
    del raw["from"]
    raw["from_user_id"] = "US.13491208655302741918"
    body = meta_payload(
        messages_change(
            [raw], contacts=[{"profile": {"name": "Ana"}, "user_id": "US.13491208655302741918"}]
        )
    )
    [parsed] = whatsapp_cloud.parse(body).messages
    assert (parsed.from_phone, parsed.contact_name) == ("US.13491208655302741918", "Ana")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"entry": {"id": 1}}',
        b'{"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "w"}]}}]}]}',
        b'{"entry": [{"changes": [{"field": "messages", "value": {"messages": "nope"}}]}]}',
        meta_payload(
            messages_change([message("text", text={"body": "a"}) | {"timestamp": "soon"}])
        ),
    ],
)
def test_a_malformed_meta_body_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        whatsapp_cloud.parse(body)


def test_a_three_megabyte_meta_body_is_parsed_whole() -> None:
    many = [message("text", f"wamid.{i}", text={"body": "x" * 200}) for i in range(9_500)]
    body = meta_payload(messages_change(many, contacts=[contact()]))
    assert 2.5e6 < len(body) <= whatsapp_cloud.MAX_BODY_BYTES
    assert len(whatsapp_cloud.parse(body).messages) == 9_500


# WAHA

WAHA_KEY = "waha-hmac-key"


def waha_headers(body: bytes, key: str = WAHA_KEY, **extra: str) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    return {"X-Webhook-Hmac": digest, "X-Webhook-Hmac-Algorithm": "sha512"} | extra


def waha_envelope(event: str, payload: dict[str, Any], **extra: Any) -> bytes:
    envelope = {
        "id": "evt_01jb0sj5nkbvz4b1h4d4kh6gqd",
        "timestamp": 1_750_000_000_123,
        "session": "org-42",
        "event": event,
        "payload": payload,
        "me": {"id": "5511900000000@c.us", "pushName": "Loved"},
        "engine": "WEBJS",
        "environment": {"version": "2025.1.1", "engine": "WEBJS", "tier": "PLUS"},
    } | extra
    return json.dumps(envelope).encode()


def waha_message(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "false_5511987654321@c.us_3EB0C767D26A1D5B0F7D",
        "timestamp": 1_749_999_990,
        "from": "5511987654321@c.us",
        "fromMe": False,
        "to": "5511900000000@c.us",
        "body": "Olá!",
        "hasMedia": False,
        "ack": 1,
        "ackName": "SERVER",
    } | overrides


def test_a_waha_body_signed_with_the_hmac_key_is_accepted() -> None:
    body = waha_envelope("message", waha_message())
    waha.verify_signature(WAHA_KEY, body, waha_headers(body), now=NOW)


def test_waha_headers_are_matched_case_insensitively() -> None:
    body = waha_envelope("message", waha_message())
    headers = {k.lower(): v for k, v in waha_headers(body).items()}
    waha.verify_signature(
        WAHA_KEY, body, headers | {"x-webhook-timestamp": "1750000000000"}, now=NOW
    )


def test_a_tampered_waha_body_is_forbidden() -> None:
    body = waha_envelope("message", waha_message())
    with rejected(403):
        waha.verify_signature(WAHA_KEY, body.replace(b"Ol", b"Al"), waha_headers(body), now=NOW)


def test_a_waha_body_signed_with_another_key_is_forbidden() -> None:
    body = waha_envelope("message", waha_message())
    with rejected(403):
        waha.verify_signature(WAHA_KEY, body, waha_headers(body, "other"), now=NOW)


def test_a_waha_body_without_hmac_is_unauthorized() -> None:
    with rejected(401):
        waha.verify_signature(WAHA_KEY, b"{}", {"X-Webhook-Hmac-Algorithm": "sha512"}, now=NOW)


def test_a_waha_hmac_announced_with_another_algorithm_is_forbidden() -> None:
    body = b"{}"
    headers = waha_headers(body) | {"X-Webhook-Hmac-Algorithm": "sha256"}
    with rejected(403):
        waha.verify_signature(WAHA_KEY, body, headers, now=NOW)


def test_a_waha_hmac_without_the_algorithm_header_is_checked_as_sha512() -> None:
    body = b"{}"
    headers = waha_headers(body)
    del headers["X-Webhook-Hmac-Algorithm"]
    waha.verify_signature(WAHA_KEY, body, headers, now=NOW)


@pytest.mark.parametrize("stamp", ["1750000000000", "1750000000", str(int(NOW * 1000) - 299_000)])
def test_a_fresh_waha_timestamp_in_milliseconds_or_seconds_is_accepted(stamp: str) -> None:
    body = b"{}"
    waha.verify_signature(
        WAHA_KEY, body, waha_headers(body, **{"X-Webhook-Timestamp": stamp}), now=NOW
    )


@pytest.mark.parametrize(
    "stamp",
    [str(int(NOW * 1000) - 301_000), str(int(NOW) + 301), str(int(NOW * 1000) + 600_000), "soon"],
)
def test_a_stale_future_or_malformed_waha_timestamp_is_forbidden(stamp: str) -> None:
    body = b"{}"
    with rejected(403):
        waha.verify_signature(
            WAHA_KEY, body, waha_headers(body, **{"X-Webhook-Timestamp": stamp}), now=NOW
        )


def test_a_waha_message_from_a_contact_is_parsed() -> None:
    batch = waha.parse(waha_envelope("message", waha_message()))
    [parsed] = batch.messages
    assert parsed.provider_message_id == "false_5511987654321@c.us_3EB0C767D26A1D5B0F7D"
    assert parsed.from_phone == "5511987654321@c.us"
    assert (parsed.text, parsed.message_type) == ("Olá!", "text")
    assert parsed.sent_at == datetime.fromtimestamp(1_749_999_990, UTC)
    assert (batch.request_id, batch.session) == ("evt_01jb0sj5nkbvz4b1h4d4kh6gqd", "org-42")


@pytest.mark.parametrize(
    "payload",
    [
        waha_message(fromMe=True),
        waha_message(**{"from": "120363025246125486@g.us"}),
        waha_message(**{"from": "status@broadcast"}),
    ],
)
def test_own_and_group_waha_messages_are_skipped(payload: dict[str, Any]) -> None:
    assert waha.parse(waha_envelope("message", payload)).messages == []


@pytest.mark.parametrize(
    ("overrides", "kind", "text"),
    [
        (
            {
                "hasMedia": True,
                "body": "",
                "media": {"url": "http://waha/api/files/x.jpg", "mimetype": "image/jpeg"},
            },
            "image",
            "[image]",
        ),
        (
            {"hasMedia": True, "body": "see this", "media": {"mimetype": "video/mp4"}},
            "video",
            "see this",
        ),
        (
            {"hasMedia": True, "body": "", "media": {"mimetype": "audio/ogg; codecs=opus"}},
            "audio",
            "[audio]",
        ),
        (
            {
                "hasMedia": True,
                "body": "",
                "media": {"mimetype": "application/pdf", "filename": "a.pdf"},
            },
            "document",
            "[document]",
        ),
        ({"hasMedia": True, "body": "", "media": None}, "document", "[document]"),
        (
            {"body": "", "location": {"latitude": "-23.55", "longitude": "-46.63"}},
            "location",
            "[location] -23.55,-46.63",
        ),
        ({"body": "", "vCards": ["BEGIN:VCARD..."]}, "contacts", "[contacts]"),
        ({"body": ""}, "unsupported", "[unsupported]"),
    ],
)
def test_waha_non_text_messages_get_a_bracketed_label(
    overrides: dict, kind: str, text: str
) -> None:
    [parsed] = waha.parse(waha_envelope("message", waha_message(**overrides))).messages
    assert (parsed.message_type, parsed.text) == (kind, text)


@pytest.mark.parametrize(
    ("ack", "name", "expected"),
    [
        (-1, "ERROR", "failed"),
        (1, "SERVER", "sent"),
        (2, "DEVICE", "delivered"),
        (3, "READ", "read"),
        (4, "PLAYED", "read"),
    ],
)
def test_waha_acks_map_to_message_statuses(ack: int, name: str, expected: str) -> None:
    payload = {
        "id": "true_5511987654321@c.us_3EB0AAAA",
        "from": "5511900000000@c.us",
        "to": "5511987654321@c.us",
        "fromMe": True,
        "ack": ack,
        "ackName": name,
    }
    [update] = waha.parse(waha_envelope("message.ack", payload)).statuses
    assert (update.provider_message_id, update.status) == (
        "true_5511987654321@c.us_3EB0AAAA",
        expected,
    )
    assert update.at == datetime.fromtimestamp(1_750_000_000.123, UTC)
    assert update.recipient == "5511987654321@c.us"


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "m", "fromMe": True, "ack": 0, "ackName": "PENDING"},
        {"id": "m", "fromMe": False, "ack": 3},
        {"id": "m", "ack": 9},
    ],
)
def test_pending_unknown_and_incoming_waha_acks_are_skipped(payload: dict[str, Any]) -> None:
    assert waha.parse(waha_envelope("message.ack", payload)).statuses == []


# WAHA's own example of `message.ack` (docs/site/content/en/docs/how-to/webhooks/index.md in
# devlikeapro/waha, "the minimum amount that all engines send"): no `to`, no envelope id/time;
# the NOWEB engine sends one-to-one acks in this shape (`from` = the chat, i.e. the contact)
WAHA_DOCUMENTED_ACK = b"""{
  "event": "message.ack",
  "session": "default",
  "engine": "WEBJS",
  "payload": {
    "id":"true_11111111111@c.us_4CC5EDD64BC22EBA6D639F2AF571346C",
    "from":"11111111111@c.us",
    "participant": null,
    "fromMe":true,
    "ack":3,
    "ackName":"READ"
  }
}"""


def test_the_ack_waha_documents_without_to_is_read_by_its_id_and_contact() -> None:
    clock = datetime(2026, 12, 7, tzinfo=UTC)
    batch = waha.parse(WAHA_DOCUMENTED_ACK, request_id="req-7", received_at=clock)
    [update] = batch.statuses
    assert update.provider_message_id == "true_11111111111@c.us_4CC5EDD64BC22EBA6D639F2AF571346C"
    assert (update.status, update.recipient, update.at) == ("read", "11111111111@c.us", clock)
    assert (batch.session, batch.request_id) == ("default", "req-7")


@pytest.mark.parametrize(
    ("fields", "recipient"),
    [
        # WEBJS: the whole message; `from` is our own number, `to` the contact
        ({"from": "5511900000000@c.us", "to": "5511987654321@c.us"}, "5511987654321@c.us"),
        # NOWEB one-to-one: no `to`, the contact in `from`
        ({"from": "5511987654321@c.us"}, "5511987654321@c.us"),
        ({"from": "5511987654321@c.us", "participant": None}, "5511987654321@c.us"),
        # no address at all: the chat named by the serialized id
        ({}, "5511987654321@c.us"),
        # NOWEB's internal form of the same account
        ({"from": "5511987654321@s.whatsapp.net"}, "5511987654321@s.whatsapp.net"),
    ],
)
def test_a_waha_ack_of_our_message_finds_its_contact_with_or_without_to(
    fields: dict[str, Any], recipient: str
) -> None:
    payload = {"id": "true_5511987654321@c.us_3EB0AAAA", "fromMe": True, "ack": 2} | fields
    [update] = waha.parse(waha_envelope("message.ack", payload)).statuses
    assert (update.provider_message_id, update.status) == (
        "true_5511987654321@c.us_3EB0AAAA",
        "delivered",
    )
    assert update.recipient == recipient


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ({"ackName": "ERROR"}, "failed"),
        ({"ackName": "SERVER"}, "sent"),
        ({"ackName": "DEVICE"}, "delivered"),
        ({"ackName": "READ"}, "read"),
        ({"ackName": "PLAYED"}, "read"),
        ({"ack": -1}, "failed"),
        ({"ack": 4, "ackName": "PLAYED"}, "read"),
        ({"ackName": "PENDING"}, None),
        ({"ack": 0}, None),
        ({"ackName": "SOMETHING_NEW"}, None),
    ],
)
def test_every_waha_ack_level_without_to_maps_like_the_others(
    levels: dict[str, Any], expected: str | None
) -> None:
    payload = {"id": "true_5511987654321@c.us_3EB0AAAA", "from": "5511987654321@c.us"}
    statuses = waha.parse(waha_envelope("message.ack", payload | {"fromMe": True} | levels))
    assert [s.status for s in statuses.statuses] == ([expected] if expected else [])


@pytest.mark.parametrize(
    "payload",
    [
        # NOWEB group receipt: `from` and `to` are the group, the reader in `participant`
        {
            "id": "true_120363025246125486@g.us_3EB0BBBB",
            "from": "120363025246125486@g.us",
            "to": "120363025246125486@g.us",
            "participant": "5511987654321@c.us",
            "fromMe": True,
            "ack": 3,
            "ackName": "READ",
        },
        # WEBJS group message: `to` is the group
        {
            "id": "true_120363025246125486@g.us_3EB0BBBB_5511900000000@c.us",
            "from": "5511900000000@c.us",
            "to": "120363025246125486@g.us",
            "fromMe": True,
            "ack": 2,
        },
        # a group ack without `to`
        {
            "id": "true_120363025246125486@g.us_3EB0BBBB",
            "from": "120363025246125486@g.us",
            "fromMe": True,
            "ack": 3,
        },
        # a status broadcast and a channel
        {"id": "true_status@broadcast_3EB0", "from": "status@broadcast", "fromMe": True, "ack": 2},
        {"id": "true_1203@newsletter_9", "from": "1203@newsletter", "fromMe": True, "ack": 2},
        # @lid: WhatsApp's hidden user id (WAHA: "not a phone number"); these digits would
        # otherwise read as +1 415 555 2671
        {
            "id": "true_14155552671@lid_3EB0CCCC",
            "from": "14155552671@lid",
            "fromMe": True,
            "ack": 3,
        },
        {"id": "true_14155552671@lid_3EB0CCCC", "fromMe": True, "ack": 3},
        # the ack of a message the contact sent us, with and without `fromMe`
        {"id": "false_5511987654321@c.us_3EB0DDDD", "from": "5511987654321@c.us", "ack": 3},
        {
            "id": "false_5511987654321@c.us_3EB0DDDD",
            "from": "5511987654321@c.us",
            "fromMe": False,
            "ack": 3,
        },
        # nothing names a contact
        {"id": "3EB0EEEE", "fromMe": True, "ack": 3},
    ],
)
def test_waha_acks_not_of_a_one_to_one_chat_of_ours_give_no_status(
    payload: dict[str, Any],
) -> None:
    assert waha.parse(waha_envelope("message.ack", payload)).statuses == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("STOPPED", "stopped"),
        ("STARTING", "connecting"),
        ("SCAN_QR_CODE", "qr_required"),
        ("WORKING", "connected"),
        ("FAILED", "failed"),
    ],
)
def test_waha_session_statuses_map_to_bridge_statuses(raw: str, expected: str) -> None:
    body = waha_envelope(
        "session.status",
        {"name": "org-42", "status": raw, "statuses": [{"status": raw, "timestamp": 1}]},
    )
    [update] = waha.parse(body).sessions
    assert (update.session, update.status) == ("org-42", expected)


def test_an_untracked_waha_event_gives_an_empty_batch() -> None:
    batch = waha.parse(waha_envelope("presence.update", {"id": "x", "presences": []}))
    assert (batch.messages, batch.statuses, batch.sessions) == ([], [], [])


def test_an_older_waha_envelope_without_id_uses_the_request_id_header_and_clock() -> None:
    body = json.dumps(
        {"event": "session.status", "session": "s1", "payload": {"status": "WORKING"}}
    ).encode()
    clock = datetime(2025, 1, 1, tzinfo=UTC)
    batch = waha.parse(body, request_id="req-1", received_at=clock)
    assert batch.request_id == "req-1"
    assert batch.sessions[0].at == clock
    assert batch.sessions[0].session == "s1"


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"payload": {}}',
        waha_envelope("message", {"body": "no id"}),
        waha_envelope("message.ack", {"id": "m", "ack": "x"}),
    ],
)
def test_a_malformed_waha_body_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        waha.parse(body)


# Twilio

TWILIO_TOKEN = "twilio-auth-token"
STATUS_URL = "https://crm.example.com/webhooks/twilio/voice/status?org=42"


def twilio_params(**overrides: str) -> dict[str, str]:
    return {
        "CallSid": "CA5e3c2f1b9d",
        "AccountSid": "AC0000",
        "From": "+5511900000000",
        "To": "+5511987654321",
        "Direction": "outbound-api",
        "CallStatus": "completed",
        "CallDuration": "42",
        "Timestamp": "Tue, 12 Nov 2024 14:02:11 +0000",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "3",
        "ApiVersion": "2010-04-01",
    } | overrides


def test_twilio_params_signed_with_the_auth_token_are_accepted() -> None:
    params = twilio_params()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(STATUS_URL, params)
    twilio.verify_signature(TWILIO_TOKEN, STATUS_URL, params, signature)


def test_twilio_params_with_extra_unknown_parameters_still_verify() -> None:
    params = twilio_params(ParentCallSid="CA99", StirVerstat="TN-Validation-Passed-A", NewThing="é")
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(STATUS_URL, params)
    twilio.verify_signature(TWILIO_TOKEN, STATUS_URL, params, signature)


def test_twilio_params_given_as_pairs_verify_like_a_mapping() -> None:
    params = twilio_params()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(STATUS_URL, params)
    twilio.verify_signature(TWILIO_TOKEN, STATUS_URL, list(params.items()), signature)


def test_twilio_signature_settings_select_hmac_sha256() -> None:
    params = twilio_params()
    signature = RequestValidator("shared-key").compute_signature(STATUS_URL, params, "HMAC_SHA256")
    settings_header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    twilio.verify_signature("shared-key", STATUS_URL, params, signature, settings_header)
    with rejected(403):
        twilio.verify_signature("shared-key", STATUS_URL, params, signature)


@pytest.mark.parametrize(
    ("token", "url", "params"),
    [
        ("other-token", STATUS_URL, twilio_params()),
        (TWILIO_TOKEN, STATUS_URL, twilio_params(CallStatus="busy")),
        (TWILIO_TOKEN, STATUS_URL, twilio_params() | {"Injected": "1"}),
        (TWILIO_TOKEN, STATUS_URL.replace("org=42", "org=43"), twilio_params()),
        (TWILIO_TOKEN, STATUS_URL.replace("https", "http"), twilio_params()),
    ],
)
def test_a_twilio_request_not_matching_its_signature_is_forbidden(
    token: str, url: str, params: dict
) -> None:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(STATUS_URL, twilio_params())
    with rejected(403):
        twilio.verify_signature(token, url, params, signature)


@pytest.mark.parametrize("signature", [None, ""])
def test_a_twilio_request_without_signature_is_unauthorized(signature: str | None) -> None:
    with rejected(401):
        twilio.verify_signature(TWILIO_TOKEN, STATUS_URL, twilio_params(), signature)


@pytest.mark.parametrize(
    ("call_status", "status", "outcome"),
    [
        ("queued", "initiated", None),
        ("initiated", "initiated", None),
        ("ringing", "ringing", None),
        ("in-progress", "answered", None),
        ("completed", "ended", "completed"),
        ("busy", "ended", "busy"),
        ("failed", "ended", "failed"),
        ("no-answer", "ended", "no_answer"),
        ("canceled", "ended", "canceled"),
    ],
)
def test_twilio_call_statuses_map_to_call_updates(
    call_status: str, status: str, outcome: str | None
) -> None:
    update = twilio.parse_status(twilio_params(CallStatus=call_status), None)
    assert (update.status, update.outcome) == (status, outcome)


def test_a_completed_twilio_call_carries_duration_recording_and_time() -> None:
    params = twilio_params(
        RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/AC0000/Recordings/RE1",
        RecordingSid="RE1",
        RecordingDuration="40",
    )
    update = twilio.parse_status(params, None)
    assert update.provider_call_id == "CA5e3c2f1b9d"
    assert (update.duration_seconds, update.recording_duration) == (42, 40)
    assert update.recording_url and update.recording_url.endswith("/Recordings/RE1")
    assert update.at == datetime(2024, 11, 12, 14, 2, 11, tzinfo=UTC)
    assert (update.direction, update.from_number, update.to_number) == (
        "outbound",
        "+5511900000000",
        "+5511987654321",
    )


def test_a_twilio_event_id_is_the_idempotency_token_or_sid_status_and_sequence() -> None:
    assert twilio.parse_status(twilio_params(), "tok-123").event_id == "tok-123"
    assert twilio.parse_status(twilio_params(), None).event_id == "CA5e3c2f1b9d:completed:3"


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("inbound", "inbound"),
        ("outbound-api", "outbound"),
        ("outbound-dial", "outbound"),
        ("sideways", None),
    ],
)
def test_twilio_directions_are_normalised(direction: str, expected: str | None) -> None:
    assert twilio.parse_status(twilio_params(Direction=direction), None).direction == expected


def test_a_machine_answered_twilio_call_ends_as_voicemail() -> None:
    assert (
        twilio.parse_status(twilio_params(AnsweredBy="machine_end_beep"), None).outcome
        == "voicemail"
    )


@pytest.mark.parametrize(
    "params",
    [
        twilio_params(CallSid=""),
        {"CallStatus": "completed"},
        twilio_params(CallStatus="teleported"),
        twilio_params(Timestamp="yesterday"),
    ],
)
def test_a_malformed_twilio_status_callback_is_a_bad_payload(params: dict[str, str]) -> None:
    with pytest.raises(BadPayload):
        twilio.parse_status(params, None)


def test_the_twilio_incoming_call_webhook_is_an_inbound_ringing_call() -> None:
    params = {
        "CallSid": "CA1",
        "From": "+5511987654321",
        "To": "+5511900000000",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "Caller": "+5511987654321",
    }
    clock = datetime(2025, 1, 1, tzinfo=UTC)
    update = twilio.parse_voice(params, now=clock)
    assert (update.status, update.direction, update.at, update.event_id) == (
        "ringing",
        "inbound",
        clock,
        "CA1:incoming",
    )
    assert (update.from_number, update.to_number) == ("+5511987654321", "+5511900000000")


def test_the_twilio_incoming_call_webhook_without_call_sid_is_a_bad_payload() -> None:
    with pytest.raises(BadPayload):
        twilio.parse_voice({"CallStatus": "ringing"})


@pytest.mark.parametrize("say", [None, "Olá! Esta chamada pode ser gravada & <ouvida>."])
def test_the_twiml_response_is_a_valid_response_document(say: str | None) -> None:
    root = ElementTree.fromstring(twilio.twiml_response(say))
    assert root.tag == "Response"
    assert [el.text for el in root.iter("Say")] == ([say] if say else [])


# Telnyx

SIGNING_KEY = SigningKey.generate()
PUBLIC_KEY = base64.b64encode(bytes(SIGNING_KEY.verify_key)).decode()


def telnyx_headers(
    body: bytes, stamp: int = int(NOW), key: SigningKey = SIGNING_KEY
) -> dict[str, str]:
    signature = key.sign(f"{stamp}|".encode() + body).signature
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": str(stamp),
    }


def telnyx_event(event_type: str, **payload: Any) -> bytes:
    base = {
        "call_control_id": "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg",
        "call_leg_id": "428c31b6-7af4-4bcb-b7f5-5013ef9657c1",
        "call_session_id": "428c31b6-abf4-4bcb-b7f5-5013ef9657c1",
        "connection_id": "7267xxxxxxxxxxxxxx",
        "from": "+5511987654321",
        "to": "+5511900000000",
        "direction": "incoming",
        "state": "parked",
    }
    data = {
        "record_type": "event",
        "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
        "event_type": event_type,
        "occurred_at": "2018-02-02T22:25:27.521992Z",
        "payload": base | payload,
    }
    return json.dumps({"data": data, "meta": {"attempt": 1, "delivered_to": "https://x"}}).encode()


def test_a_telnyx_body_signed_with_the_account_key_is_accepted() -> None:
    body = telnyx_event("call.initiated")
    telnyx.verify_signature(PUBLIC_KEY, body, telnyx_headers(body), now=NOW)


def test_telnyx_headers_are_matched_case_insensitively() -> None:
    body = telnyx_event("call.initiated")
    headers = {
        "Telnyx-Signature-Ed25519": telnyx_headers(body)["telnyx-signature-ed25519"],
        "Telnyx-Timestamp": str(int(NOW)),
    }
    telnyx.verify_signature(PUBLIC_KEY, body, headers, now=NOW)


def test_a_telnyx_body_that_is_not_utf8_is_still_verified_on_its_bytes() -> None:
    body = b'{"data": "\xff\xfe"}'
    telnyx.verify_signature(PUBLIC_KEY, body, telnyx_headers(body), now=NOW)


def test_a_tampered_telnyx_body_is_forbidden() -> None:
    body = telnyx_event("call.hangup", hangup_cause="normal_clearing")
    with rejected(403):
        telnyx.verify_signature(
            PUBLIC_KEY,
            body.replace(b"normal_clearing", b"user_busy"),
            telnyx_headers(body),
            now=NOW,
        )


def test_a_telnyx_body_signed_with_another_key_is_forbidden() -> None:
    body = telnyx_event("call.initiated")
    with rejected(403):
        telnyx.verify_signature(
            PUBLIC_KEY, body, telnyx_headers(body, key=SigningKey.generate()), now=NOW
        )


def test_a_telnyx_signature_moved_to_another_timestamp_is_forbidden() -> None:
    body = telnyx_event("call.initiated")
    headers = telnyx_headers(body) | {"telnyx-timestamp": str(int(NOW) + 1)}
    with rejected(403):
        telnyx.verify_signature(PUBLIC_KEY, body, headers, now=NOW)


@pytest.mark.parametrize("missing", ["telnyx-signature-ed25519", "telnyx-timestamp"])
def test_a_telnyx_body_without_signature_headers_is_unauthorized(missing: str) -> None:
    body = telnyx_event("call.initiated")
    headers = telnyx_headers(body)
    del headers[missing]
    with rejected(401):
        telnyx.verify_signature(PUBLIC_KEY, body, headers, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_a_stale_or_future_telnyx_timestamp_is_forbidden(offset: int) -> None:
    body = telnyx_event("call.initiated")
    with rejected(403):
        telnyx.verify_signature(PUBLIC_KEY, body, telnyx_headers(body, int(NOW) + offset), now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_telnyx_timestamp_within_the_tolerance_is_accepted(offset: int) -> None:
    body = telnyx_event("call.initiated")
    telnyx.verify_signature(PUBLIC_KEY, body, telnyx_headers(body, int(NOW) + offset), now=NOW)


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        ("not base64!", None),
        (base64.b64encode(b"short").decode(), None),
        (PUBLIC_KEY, "AAAA"),
        (PUBLIC_KEY, "***"),
    ],
)
def test_a_malformed_telnyx_key_or_signature_is_forbidden(
    public_key: str, signature: str | None
) -> None:
    body = telnyx_event("call.initiated")
    headers = telnyx_headers(body)
    if signature is not None:
        headers["telnyx-signature-ed25519"] = signature
    with rejected(403):
        telnyx.verify_signature(public_key, body, headers, now=NOW)


def test_a_telnyx_call_initiated_event_is_an_initiated_call() -> None:
    update = telnyx.parse(telnyx_event("call.initiated"))
    assert update is not None
    assert update.provider_call_id.startswith("v3:")
    assert (update.status, update.direction, update.event_id) == (
        "initiated",
        "inbound",
        "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
    )
    assert update.at == datetime(2018, 2, 2, 22, 25, 27, 521992, tzinfo=UTC)
    assert (update.from_number, update.to_number) == ("+5511987654321", "+5511900000000")


def test_a_telnyx_call_answered_event_is_an_answered_outbound_call() -> None:
    update = telnyx.parse(telnyx_event("call.answered", direction="outgoing", state="answered"))
    assert update is not None
    assert (update.status, update.direction) == ("answered", "outbound")


@pytest.mark.parametrize(
    ("cause", "source", "outcome"),
    [
        ("normal_clearing", "caller", "completed"),
        ("time_limit", "unknown", "completed"),
        ("user_busy", "callee", "busy"),
        ("no_answer", "callee", "no_answer"),
        ("timeout", "unknown", "no_answer"),
        ("originator_cancel", "caller", "canceled"),
        ("call_rejected", "callee", "busy"),
        ("call_rejected", "unknown", "failed"),
        ("not_found", "unknown", "failed"),
        ("unspecified", "unknown", "failed"),
    ],
)
def test_telnyx_hangup_causes_map_to_outcomes(cause: str, source: str, outcome: str) -> None:
    update = telnyx.parse(
        telnyx_event("call.hangup", hangup_cause=cause, hangup_source=source, state="hangup")
    )
    assert update is not None
    assert (update.status, update.outcome) == ("ended", outcome)


def test_a_completed_telnyx_hangup_has_a_duration_from_start_to_end() -> None:
    body = telnyx_event(
        "call.hangup",
        hangup_cause="normal_clearing",
        start_time="2018-02-02T22:20:27.521992Z",
        end_time="2018-02-02T22:22:00.000000Z",
    )
    update = telnyx.parse(body)
    assert update is not None and update.duration_seconds == 92


def test_a_telnyx_hangup_without_end_time_measures_to_the_event_time() -> None:
    body = telnyx_event(
        "call.hangup", hangup_cause="normal_clearing", start_time="2018-02-02T22:24:27.521992Z"
    )
    update = telnyx.parse(body)
    assert update is not None and update.duration_seconds == 60


def test_an_unanswered_telnyx_hangup_has_no_duration() -> None:
    body = telnyx_event(
        "call.hangup",
        hangup_cause="no_answer",
        start_time="2018-02-02T22:20:27Z",
        end_time="2018-02-02T22:21:27Z",
    )
    update = telnyx.parse(body)
    assert update is not None and update.duration_seconds is None


def test_a_telnyx_saved_recording_gives_its_mp3_url_and_duration() -> None:
    body = telnyx_event(
        "call.recording.saved",
        recording_started_at="2018-02-02T22:20:27.521992Z",
        recording_ended_at="2018-02-02T22:21:02.521992Z",
        channels="single",
        recording_urls={
            "mp3": "https://s3.amazonaws.com/telnyx/r.mp3?sig=1",
            "wav": "https://s3.amazonaws.com/telnyx/r.wav",
        },
    )
    update = telnyx.parse(body)
    assert update is not None
    assert (update.status, update.outcome) == ("recording", None)
    assert update.recording_url == "https://s3.amazonaws.com/telnyx/r.mp3?sig=1"
    assert update.recording_duration == 35


def test_a_telnyx_recording_without_call_control_id_falls_back_to_the_leg_id() -> None:
    raw = json.loads(
        telnyx_event("call.recording.saved", recording_urls={"mp3": "https://x/r.mp3"})
    )
    del raw["data"]["payload"]["call_control_id"]
    update = telnyx.parse(json.dumps(raw).encode())
    assert update is not None and update.provider_call_id == "428c31b6-7af4-4bcb-b7f5-5013ef9657c1"


@pytest.mark.parametrize(
    "event_type", ["call.bridged", "call.machine.detection.ended", "call.dtmf.received"]
)
def test_untracked_telnyx_events_give_none(event_type: str) -> None:
    assert telnyx.parse(telnyx_event(event_type)) is None


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"{}",
        b'{"data": {"event_type": "call.hangup"}}',
        b'{"data": {"id": "e", "event_type": "call.hangup", "payload": {}}}',
        b'{"data": {"id": "e", "event_type": "call.hangup", "occurred_at": "tuesday", "payload": {"call_control_id": "c"}}}',
    ],
)
def test_a_malformed_telnyx_body_is_a_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        telnyx.parse(body)
