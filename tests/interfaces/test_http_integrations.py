"""Provider integrations over HTTP: admin only, secrets sealed and never shown, one active."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from domain.organization import Organization
from interfaces.services import Services
from tests.support.api import (  # noqa: F401
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

CLOUD = {
    "provider": "business_api",
    "phone_number_id": "106540352242922",
    "access_token": "EAAG-access-token-very-secret",
    "app_secret": "app-secret-very-secret",
    "verify_token": "verify-token-very-secret",
}
BRIDGE = {
    "provider": "web_bridge",
    "base_url": "http://127.0.0.1:3000",
    "session": "default",
    "api_key": "waha-api-key-very-secret",
    "hmac_key": "waha-hmac-key-very-secret",
}
TWILIO = {
    "provider": "twilio",
    "account_sid": "AC" + "1" * 32,
    "auth_token": "twilio-auth-token-very-secret",
    "numbers": ["+1 415 555 2671"],
}
SECRETS = [
    "EAAG-access-token-very-secret",
    "app-secret-very-secret",
    "verify-token-very-secret",
    "waha-api-key-very-secret",
    "waha-hmac-key-very-secret",
    "twilio-auth-token-very-secret",
]


def setup(tenant: Tenant, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = tenant.post(f"/integrations/{kind}/setup", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_an_admin_sets_up_whatsapp_and_sees_which_secrets_are_set_but_never_their_values(
    client: TestClient[Any], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    acme = register(client)
    with caplog.at_level(logging.DEBUG):
        result = setup(acme, "whatsapp", CLOUD)
        shown = acme.get("/integrations/whatsapp")
    assert shown.status_code == 200
    view = shown.json()
    assert view["active_provider"] == "business_api"
    (provider,) = view["providers"]
    assert provider["settings"] == {"phone_number_id": "106540352242922"}
    assert provider["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert provider["webhook_urls"]["webhook"].endswith(
        f"/webhooks/whatsapp/{acme.organization_id}"
    )
    assert result["integration"] == view
    everything = shown.text + str(result) + caplog.text
    assert not any(secret in everything for secret in SECRETS)


def test_secrets_are_stored_sealed_in_the_event_log(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    setup(acme, "whatsapp", CLOUD)
    org_id = UUID(acme.organization_id)
    stored = b"".join(e.state for e in services.app.recorder.select_events(org_id))
    assert b"very-secret" not in stored
    org = services.app.load(Organization, org_id, org_id)
    config = org.provider("whatsapp")
    assert config is not None
    sealed = config.sealed_secrets["access_token"]
    assert services.secret_box.open(org_id, "access_token", sealed) == CLOUD["access_token"]
    # a sealed value is bound to its organization and field: it does not open elsewhere
    with pytest.raises(ValueError):
        services.secret_box.open(org_id, "app_secret", sealed)


def test_a_second_provider_waits_until_switched_to_and_history_of_both_is_kept(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    setup(acme, "whatsapp", CLOUD)
    result = setup(acme, "whatsapp", BRIDGE | {"activate": False})
    assert result["integration"]["active_provider"] == "business_api"
    bridge = next(
        p for p in result["integration"]["providers"] if p["provider_type"] == "web_bridge"
    )
    assert "ban" in bridge["warning"]
    switched = acme.put("/integrations/whatsapp/switch", json={"provider": "web_bridge"})
    assert switched.status_code == 200, switched.text
    assert switched.json()["integration"]["active_provider"] == "web_bridge"
    assert {p["provider_type"] for p in switched.json()["integration"]["providers"]} == {
        "business_api",
        "web_bridge",
    }


def test_changing_one_secret_keeps_the_others(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    setup(acme, "whatsapp", CLOUD)
    setup(acme, "whatsapp", {"provider": "business_api", "access_token": "rotated-token-0001"})
    org_id = UUID(acme.organization_id)
    from application.conversations.integrations import credentials

    creds = credentials(services.app, services.secret_box, org_id, "whatsapp")
    assert creds is not None
    assert creds.secrets["access_token"] == "rotated-token-0001"
    assert creds.secrets["app_secret"] == CLOUD["app_secret"]
    assert "rotated" not in repr(creds)


def test_voip_setup_takes_international_numbers_only(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    result = setup(acme, "voip", TWILIO)
    (twilio,) = result["integration"]["providers"]
    assert twilio["numbers"] == ["+14155552671"]  # kept as providers dial it
    assert set(twilio["webhook_urls"]) == {"voice", "status"}
    for bad in (["call me"], ["(11) 98765-4321"]):
        answer = acme.post("/integrations/voip/setup", json=TWILIO | {"numbers": bad})
        assert assert_problem(answer, 422)["errors"][0]["field"] == "phone"


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("whatsapp", {"provider": "carrier_pigeon"}, "provider"),
        ("whatsapp", {k: v for k, v in CLOUD.items() if k != "app_secret"}, "app_secret"),
        ("whatsapp", CLOUD | {"session": "x"}, "session"),
        ("whatsapp", BRIDGE | {"base_url": "ftp://bridge"}, "base_url"),
        ("voip", {k: v for k, v in TWILIO.items() if k != "numbers"}, "numbers"),
        ("voip", {"provider": "telnyx", "api_key": "k", "connection_id": "c"}, "public_key"),
    ],
)
def test_a_bad_setup_is_refused_with_the_field_named_and_nothing_recorded(
    client: TestClient[Any], kind: str, body: dict[str, Any], field: str
) -> None:
    acme = register(client)
    problem = assert_problem(acme.post(f"/integrations/{kind}/setup", json=body), 422)
    assert problem["errors"][0]["field"] == field
    assert acme.get(f"/integrations/{kind}").json()["providers"] == []


def test_malformed_bodies_answer_400(client: TestClient[Any]) -> None:
    acme = register(client)
    assert_problem(acme.post("/integrations/whatsapp/setup", json={"nope": 1}), 400)
    assert_problem(acme.post("/integrations/voip/setup", content=b"{"), 400)
    assert_problem(acme.put("/integrations/voip/switch", json={}), 400)


def test_switching_to_a_provider_that_is_not_set_up_is_a_conflict(client: TestClient[Any]) -> None:
    acme = register(client)
    setup(acme, "voip", TWILIO)
    assert_problem(acme.put("/integrations/voip/switch", json={"provider": "telnyx"}), 409)
    assert_problem(acme.put("/integrations/voip/switch", json={"provider": "skype"}), 422)


@pytest.mark.parametrize("role", ["manager", "sales", "viewer"])
def test_only_admins_manage_integrations(
    client: TestClient[Any], services: Services, role: str
) -> None:
    acme = register(client)
    member = add_member(services, acme, role)
    for method, path, body in [
        ("GET", "/integrations/whatsapp", None),
        ("POST", "/integrations/whatsapp/setup", CLOUD),
        ("PUT", "/integrations/whatsapp/switch", {"provider": "business_api"}),
        ("POST", "/integrations/whatsapp/qr-code", None),
        ("GET", "/integrations/voip", None),
        ("POST", "/integrations/voip/setup", TWILIO),
        ("PUT", "/integrations/voip/switch", {"provider": "twilio"}),
    ]:
        assert_problem(member.call(method, path, json=body), 403)


def test_another_organizations_integrations_are_out_of_reach(client: TestClient[Any]) -> None:
    acme = register(client)
    other = register(client, "Other")
    setup(acme, "whatsapp", CLOUD)
    # other's admin with acme's organization header: not a member there
    response = other.get("/integrations/whatsapp", headers={"X-Org-Id": acme.organization_id})
    assert_problem(response, 403)
    assert other.get("/integrations/whatsapp").json()["providers"] == []


def test_the_qr_code_needs_a_web_bridge(client: TestClient[Any]) -> None:
    acme = register(client)
    setup(acme, "whatsapp", CLOUD)
    assert_problem(acme.post("/integrations/whatsapp/qr-code"), 409)


def test_the_qr_code_starts_the_bridge_session_with_our_signed_webhook(
    client: TestClient[Any], services: Services
) -> None:
    from tests.support.provider_servers import WahaServer

    acme = register(client)
    with WahaServer(api_key="waha-api-key-very-secret", sessions={}) as waha:
        setup(acme, "whatsapp", BRIDGE | {"base_url": waha.url, "session": "sales"})
        response = acme.post("/integrations/whatsapp/qr-code")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["qr"]) == ("qr_required", waha.qr_value)
        webhook = f"{services.settings.public_url}/webhooks/whatsapp-web/{acme.organization_id}"
        assert body["webhook_url"] == webhook
        assert "ban" in body["warning"]
        created = next(r for r in waha.requests if r.method == "POST" and r.path == "/api/sessions")
        (hook,) = created.json["config"]["webhooks"]
        assert hook["url"] == webhook
        assert hook["hmac"] == {"key": "waha-hmac-key-very-secret"}
        assert set(hook["events"]) >= {"message", "message.ack", "session.status"}
    # the bridge is gone: the provider's failure is a 503 problem, not a 500
    assert_problem(acme.post("/integrations/whatsapp/qr-code"), 503)


def test_a_provider_url_into_the_servers_own_network_is_refused(
    database_url: str,
) -> None:
    from interfaces.http.app import create_app
    from interfaces.services import build_services
    from tests.conftest import settings_for

    services = build_services(settings_for(database_url, CRM_PROVIDER_PRIVATE_URLS="off"))
    services.hasher = __import__("tests.support.api", fromlist=["CheapHasher"]).CheapHasher()
    try:
        with TestClient(create_app(services, own_services=False)) as client:
            acme = register(client)
            for url in (
                "http://127.0.0.1:3000",
                "http://169.254.169.254/latest",
                "http://10.0.0.7",
            ):
                body = BRIDGE | {"base_url": url}
                problem = assert_problem(acme.post("/integrations/whatsapp/setup", json=body), 422)
                assert problem["errors"][0]["field"] == "base_url"
            # a name that resolved elsewhere at setup is checked again before every request
            from application.conversations.providers import Credentials, ProviderError

            creds = Credentials(
                organization_id=UUID(acme.organization_id),
                kind="whatsapp",
                provider_type="web_bridge",
                settings={"base_url": "http://localhost:3000", "session": "s"},
                secrets={"api_key": "k", "hmac_key": "h"},
            )
            with pytest.raises(ProviderError) as refused:
                services.providers.bridge_sessions(creds)
            assert refused.value.code == "destination_refused" and not refused.value.retryable
    finally:
        services.close()
