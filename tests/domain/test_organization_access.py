"""Settings, invitations and API keys of an organization: each change is one event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper

from domain.errors import InvalidValueError, NotFoundError, RuleViolationError
from domain.organization import (
    InvitationExpiredError,
    InvitationUsedError,
    Organization,
)
from domain.values import Role
from tests.domain.builders import ACTOR, attempt, replay, through_the_event_store

OWNER = uuid4()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def org() -> Organization:
    org = Organization.register(name="Loved", owner_user_id=OWNER, actor=ACTOR)
    org.collect_events()
    return org


def invite(org: Organization, role: Role = Role.SALES) -> UUID:
    invitation_id = uuid4()
    org.invite(
        invitation_id=invitation_id,
        email=" New@Example.com ",
        role=role,
        token_hash="ab" * 32,
        now=NOW,
        actor=ACTOR,
    )
    return invitation_id


def key(org: Organization, scopes: list[str] | None = None) -> UUID:
    key_id = uuid4()
    org.create_api_key(
        key_id=key_id,
        name=" CI ",
        scopes=scopes or ["leads:read"],
        prefix="lcrm_…abc",
        secret_hash="cd" * 32,
        created_by=OWNER,
        actor=ACTOR,
    )
    return key_id


def test_a_new_organization_is_in_utc_with_no_invitations_or_keys(org: Organization) -> None:
    assert (org.timezone, org.invitations, org.api_keys) == ("UTC", {}, {})


def test_renaming_and_changing_the_timezone_record_the_previous_values(org: Organization) -> None:
    org.rename(" Loved Ltd ", actor=ACTOR)
    org.change_timezone("America/Sao_Paulo", actor=ACTOR)
    org.change_timezone("America/Sao_Paulo", actor=ACTOR)
    renamed, moved = org.collect_events()
    assert isinstance(renamed, Organization.Renamed)
    assert (renamed.name, renamed.previous_name) == ("Loved Ltd", "Loved")
    assert isinstance(moved, Organization.TimezoneChanged)
    assert (moved.timezone, moved.previous_timezone) == ("America/Sao_Paulo", "UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "utc "])
def test_a_timezone_must_be_an_iana_name(org: Organization, zone: str) -> None:
    refusal = attempt(org, lambda: org.change_timezone(zone, actor=ACTOR))
    assert isinstance(refusal, InvalidValueError) and refusal.field == "timezone"


def test_an_invitation_expires_after_seven_days_and_stores_only_a_hash(
    org: Organization,
) -> None:
    invitation = org.invitation(invite(org))
    (sent,) = org.collect_events()
    assert isinstance(sent, Organization.InvitationSent)
    assert (sent.email, sent.role, sent.token_hash) == ("new@example.com", "sales", "ab" * 32)
    assert invitation.expires_at == NOW + timedelta(days=7)


def test_accepting_an_invitation_adds_the_member_with_its_role_once(org: Organization) -> None:
    invitation_id = invite(org, Role.MANAGER)
    user = uuid4()
    org.accept_invitation(invitation_id, user, now=NOW + timedelta(days=6), actor=ACTOR)
    _, accepted, added = org.collect_events()
    assert isinstance(accepted, Organization.InvitationAccepted)
    assert isinstance(added, Organization.MemberAdded) and added.role == "manager"
    assert org.role_of(user) is Role.MANAGER
    again = attempt(
        org, lambda: org.accept_invitation(invitation_id, uuid4(), now=NOW, actor=ACTOR)
    )
    assert isinstance(again, InvitationUsedError)


def test_an_expired_invitation_is_refused(org: Organization) -> None:
    invitation_id = invite(org)
    org.collect_events()
    late = NOW + timedelta(days=7)
    refusal = attempt(
        org, lambda: org.accept_invitation(invitation_id, uuid4(), now=late, actor=ACTOR)
    )
    assert isinstance(refusal, InvitationExpiredError)


def test_a_member_cannot_accept_an_invitation_to_join_again(org: Organization) -> None:
    invitation_id = invite(org)
    org.collect_events()
    refusal = attempt(
        org, lambda: org.accept_invitation(invitation_id, OWNER, now=NOW, actor=ACTOR)
    )
    assert isinstance(refusal, RuleViolationError)
    assert org.invitation(invitation_id).accepted_by is None


def test_an_unknown_invitation_is_not_found(org: Organization) -> None:
    refusal = attempt(org, lambda: org.accept_invitation(uuid4(), uuid4(), now=NOW, actor=ACTOR))
    assert isinstance(refusal, NotFoundError) and refusal.kind == "invitation"


def test_an_api_key_is_created_rescoped_and_revoked(org: Organization) -> None:
    key_id = key(org, ["leads:write", "leads:read", "leads:read"])
    org.change_api_key_scopes(key_id, ["audit:read"], actor=ACTOR)
    org.revoke_api_key(key_id, actor=ACTOR)
    org.revoke_api_key(key_id, actor=ACTOR)
    created, changed, revoked = org.collect_events()
    assert isinstance(created, Organization.ApiKeyCreated)
    assert (created.name, created.scopes) == ("CI", ["leads:read", "leads:write"])
    assert isinstance(changed, Organization.ApiKeyScopesChanged)
    assert changed.previous_scopes == ["leads:read", "leads:write"]
    assert isinstance(revoked, Organization.ApiKeyRevoked)
    assert org.api_key(key_id).revoked and org.api_key(key_id).scopes == ("audit:read",)


def test_a_revoked_key_takes_no_new_scopes(org: Organization) -> None:
    key_id = key(org)
    org.revoke_api_key(key_id, actor=ACTOR)
    org.collect_events()
    refusal = attempt(org, lambda: org.change_api_key_scopes(key_id, ["leads:write"], actor=ACTOR))
    assert isinstance(refusal, RuleViolationError)


def test_a_key_needs_a_scope_and_an_unknown_key_is_not_found(org: Organization) -> None:
    refusal = attempt(
        org,
        lambda: org.create_api_key(
            key_id=uuid4(),
            name="x",
            scopes=[],
            prefix="p",
            secret_hash="h",
            created_by=OWNER,
            actor=ACTOR,
        ),
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "scopes"
    missing = attempt(org, lambda: org.revoke_api_key(uuid4(), actor=ACTOR))
    assert isinstance(missing, NotFoundError) and missing.kind == "api_key"


def test_the_new_events_survive_the_event_store(
    org: Organization, event_mapper: Mapper[UUID]
) -> None:
    fresh = Organization.register(name="Loved", owner_user_id=OWNER, actor=ACTOR)
    invitation_id = invite(fresh)
    fresh.accept_invitation(invitation_id, uuid4(), now=NOW, actor=ACTOR)
    key_id = key(fresh)
    fresh.change_api_key_scopes(key_id, ["leads:write"], actor=ACTOR)
    fresh.revoke_api_key(key_id, actor=ACTOR)
    fresh.rename("Other", actor=ACTOR)
    fresh.change_timezone("Asia/Tokyo", actor=ACTOR)
    events = fresh.collect_events()
    assert replay(through_the_event_store(event_mapper, events)) == fresh
