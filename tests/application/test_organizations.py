"""Organization handlers against the real event store: invitations expire, accounts are undone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from application.context import Ctx
from application.identity import accounts, api_keys
from application.identity import organizations as orgs
from application.identity.organizations import AcceptInvitation, InviteMember
from domain.errors import InvalidValueError, NotFoundError, VersionConflictError
from domain.organization import InvitationExpiredError, Organization
from domain.values import Actor, Role
from interfaces.email import link_maker
from interfaces.services import Services
from tests.support import mailbox
from tests.support.api import CheapHasher


@pytest.fixture
def owner(services: Services) -> Ctx:
    services.hasher = CheapHasher()  # type: ignore[assignment]
    cmd = accounts.Register(f"{uuid4().hex[:8]}@example.com", "long enough pw", "Owner", "Acme")
    done = accounts.register(services.app, services.users, services.hasher, cmd)
    return Ctx(done.organization_id, done.user_id, Role.ADMIN, Actor("user", str(done.user_id)))


def invite(
    services: Services, owner: Ctx, email: str, role: str, now: datetime | None = None
) -> str:
    """Invite through the services' mailer (the test's mail directory); the mailed token."""
    link = link_maker(services.email)
    cmd = InviteMember(email, role)
    invited = orgs.invite_member(services.app, services.mailer, link, cmd, owner, now=now)
    assert invited.sent_to == email and invited.mail_sent
    return mailbox.link_token(services.email.mail_dir, email, "/accept-invitation")


def accept(services: Services, token: str, **kw: Any) -> orgs.Accepted:
    cmd = AcceptInvitation(token, full_name="New", password="long enough pw")
    return orgs.accept_invitation(services.app, services.users, services.hasher, cmd, **kw)


def test_an_invitation_accepted_after_seven_days_is_refused_and_no_account_is_left(
    services: Services, owner: Ctx
) -> None:
    sent = datetime.now(UTC) - timedelta(days=7, seconds=1)
    token = invite(services, owner, "late@example.com", "sales", now=sent)
    with pytest.raises(InvitationExpiredError):
        accept(services, token)
    assert services.users.by_email("late@example.com") is None
    org = services.app.load(Organization, owner.organization_id, owner.organization_id)
    assert list(org.members) == [owner.user_id]


def test_an_invitation_accepted_in_time_adds_the_member(services: Services, owner: Ctx) -> None:
    sent = datetime.now(UTC) - timedelta(days=6)
    token = invite(services, owner, "ok@example.com", "viewer", now=sent)
    done = accept(services, token, ip="10.0.0.1")
    assert orgs.role_in(services.app, owner.organization_id, done.user_id) is Role.VIEWER
    last = list(services.app.events.get(owner.organization_id))[-1]
    assert last.actor == Actor("user", str(done.user_id), "10.0.0.1", None)


def test_a_token_for_another_organization_does_not_open_this_one(
    services: Services, owner: Ctx
) -> None:
    token = invite(services, owner, "a@example.com", "sales")
    _, _, inv, secret = token.split("_", 3)
    other = f"linv_{uuid4().hex}_{inv}_{secret}"
    with pytest.raises(NotFoundError):
        accept(services, other)


def test_a_bad_role_or_email_writes_nothing(services: Services, owner: Ctx) -> None:
    link = link_maker(services.email)
    for cmd in (InviteMember("a@example.com", "owner"), InviteMember("not an email", "sales")):
        with pytest.raises(InvalidValueError):
            orgs.invite_member(services.app, services.mailer, link, cmd, owner)
    assert services.app.current_version(owner.organization_id) == 1
    assert not Path(services.email.mail_dir).exists()  # nothing mailed either


def test_a_stale_settings_change_is_a_conflict(services: Services, owner: Ctx) -> None:
    with pytest.raises(VersionConflictError):
        orgs.change_organization(
            services.app, orgs.ChangeOrganization(name="B", expected_version=0), owner
        )


def test_key_scopes_are_permissions_but_never_administration(
    services: Services, owner: Ctx
) -> None:
    for scopes in (["leads:read", "nope"], ["api_keys:manage"], ["members:write"], []):
        with pytest.raises(InvalidValueError):
            api_keys.create_api_key(services.app, api_keys.CreateApiKey("k", scopes), owner)
    made = api_keys.create_api_key(
        services.app, api_keys.CreateApiKey("k", ["leads:read", "audit:read"]), owner
    )
    org_id, key = api_keys.verify_key(services.app, made.key)
    assert (org_id, key.scopes) == (owner.organization_id, ("audit:read", "leads:read"))
    with pytest.raises(api_keys.InvalidApiKeyError):
        api_keys.verify_key(services.app, made.key + "x")
