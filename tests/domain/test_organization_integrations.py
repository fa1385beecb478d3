"""Provider integrations on the Organization: one active provider per kind, secrets kept sealed."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidValueError, RuleViolationError
from domain.integrations import SCHEMAS
from domain.organization import Organization
from tests.domain.builders import ACTOR, attempt, replay, through_the_event_store

CLOUD = {"phone_number_id": "1065"}
CLOUD_SECRETS = {"access_token": "s:a", "app_secret": "s:b", "verify_token": "s:c"}
BRIDGE = {"base_url": "https://bridge.example", "session": "default"}
BRIDGE_SECRETS = {"api_key": "s:k", "hmac_key": "s:h"}


@pytest.fixture
def org() -> Organization:
    org = Organization.register(name="Loved", owner_user_id=uuid4(), actor=ACTOR)
    org.collect_events()
    return org


def configure(org: Organization, provider: str, activate: bool = True, **kw: Any) -> None:
    settings_, secrets, numbers = {
        "business_api": (CLOUD, CLOUD_SECRETS, []),
        "web_bridge": (BRIDGE, BRIDGE_SECRETS, []),
        "twilio": ({"account_sid": "AC1"}, {"auth_token": "s:t"}, ["+14155552671"]),
        "telnyx": (
            {"connection_id": "c", "public_key": "pk"},
            {"api_key": "s:k"},
            ["+14155552671"],
        ),
    }[provider]
    kind = "whatsapp" if provider in SCHEMAS["whatsapp"] else "voip"
    org.configure_provider(
        kind,
        provider,
        settings=kw.get("settings", settings_),
        sealed_secrets=kw.get("secrets", secrets),
        numbers=kw.get("numbers", numbers),
        activate=activate,
        actor=ACTOR,
    )


def test_the_first_provider_of_a_kind_becomes_active_even_when_not_asked(
    org: Organization,
) -> None:
    configure(org, "business_api", activate=False)
    assert org.active_providers == {"whatsapp": "business_api"}
    config = org.provider("whatsapp")
    assert config is not None and config.sealed_secrets == CLOUD_SECRETS
    assert "s:a" not in str(config.public())


def test_a_second_provider_is_active_only_once_switched_to(org: Organization) -> None:
    configure(org, "business_api")
    configure(org, "web_bridge", activate=False)
    assert org.active_providers["whatsapp"] == "business_api"
    org.switch_provider("whatsapp", "web_bridge", actor=ACTOR)
    assert org.active_providers["whatsapp"] == "web_bridge"
    assert set(org.providers["whatsapp"]) == {"business_api", "web_bridge"}
    switched = org.collect_events()[-1]
    assert isinstance(switched, Organization.ProviderSwitched)
    assert switched.previous_provider_type == "business_api"


def test_a_reconfiguration_without_a_secret_keeps_the_sealed_one(org: Organization) -> None:
    configure(org, "business_api")
    configure(org, "business_api", secrets={"access_token": "s:new"})
    config = org.provider("whatsapp")
    assert config is not None
    assert config.sealed_secrets == CLOUD_SECRETS | {"access_token": "s:new"}


def test_the_same_configuration_again_records_nothing(org: Organization) -> None:
    configure(org, "business_api")
    org.collect_events()
    configure(org, "business_api")
    assert org.collect_events() == []


@pytest.mark.parametrize(
    ("provider", "change", "field"),
    [
        ("business_api", {"secrets": {"access_token": "s:a"}}, "app_secret"),
        ("business_api", {"settings": {}}, "phone_number_id"),
        ("business_api", {"settings": CLOUD | {"session": "x"}}, "session"),
        ("business_api", {"numbers": ["+14155552671"]}, "numbers"),
        ("web_bridge", {"settings": BRIDGE | {"base_url": "file:///etc"}}, "base_url"),
        ("twilio", {"numbers": []}, "numbers"),
        ("twilio", {"numbers": ["not a phone"]}, "phone"),
    ],
)
def test_an_incomplete_or_foreign_setting_is_refused_and_changes_nothing(
    org: Organization, provider: str, change: dict[str, Any], field: str
) -> None:
    refusal = attempt(org, lambda: configure(org, provider, **change))
    assert isinstance(refusal, InvalidValueError) and refusal.field == field
    assert org.collect_events() == []


def test_switching_to_an_unconfigured_or_unknown_provider_is_refused(org: Organization) -> None:
    configure(org, "twilio")
    assert isinstance(
        attempt(org, lambda: org.switch_provider("voip", "telnyx", actor=ACTOR)), RuleViolationError
    )
    assert isinstance(
        attempt(org, lambda: org.switch_provider("voip", "skype", actor=ACTOR)), InvalidValueError
    )
    assert isinstance(
        attempt(org, lambda: org.switch_provider("fax", "twilio", actor=ACTOR)), InvalidValueError
    )


PROVIDERS = ["business_api", "web_bridge", "twilio", "telnyx"]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["configure", "switch"]), st.sampled_from(PROVIDERS), st.booleans()
        ),
        max_size=12,
    )
)
def test_any_sequence_keeps_one_configured_active_provider_per_kind_and_replays_equal(
    steps: list[tuple[str, str, bool]], event_mapper: Mapper[UUID]
) -> None:
    org = Organization.register(name="Loved", owner_user_id=uuid4(), actor=ACTOR)
    for action, provider, activate in steps:
        kind = "whatsapp" if provider in SCHEMAS["whatsapp"] else "voip"
        if action == "configure":
            configure(org, provider, activate=activate)
        else:
            attempt(org, lambda k=kind, p=provider: org.switch_provider(k, p, actor=ACTOR))
        for k, active in org.active_providers.items():
            assert active in org.providers[k]  # the active one is always configured
        for k, configured in org.providers.items():
            assert k in org.active_providers  # a kind with a provider always has an active one
            assert configured
    events = org.collect_events()
    rebuilt = replay(through_the_event_store(event_mapper, events))
    assert isinstance(rebuilt, Organization)
    assert (rebuilt.providers, rebuilt.active_providers) == (org.providers, org.active_providers)
