"""Account handlers against real storage: refresh families under concurrency, single-use
tokens, preferences rules, deactivation as one organization-wide decision."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from application.identity import accounts
from application.ports import UserRecord
from domain.errors import InvalidValueError, LastAdminError
from domain.organization import Organization
from domain.values import Actor, Role
from interfaces.services import Services

ACTOR = Actor("user", "test", "127.0.0.1", "pytest")


class Mails:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, text: str) -> None:
        self.sent.append((to, subject, text))


def link(purpose: str, token: str) -> str:
    return f"https://crm.example/{purpose}?token={token}"


def new_user(services: Services) -> UserRecord:
    user = UserRecord(uuid4(), f"{uuid4().hex[:10]}@example.com", "U", "hash", datetime.now(UTC))
    services.users.add(user)
    return user


def test_a_refresh_token_used_twice_at_once_yields_one_successor(services: Services) -> None:
    user = new_user(services)
    store = services.account_tokens
    token, _ = accounts.start_session(store, user.id, uuid4())

    def use() -> str:
        try:
            return accounts.rotate(services.app, store, services.users, token, ACTOR)[1]
        except accounts.InvalidRefreshTokenError:
            return ""

    with ThreadPoolExecutor(4) as pool:
        successors = [s for s in pool.map(lambda _: use(), range(4)) if s]
    assert len(successors) <= 1
    for successor in successors:  # the reuse revoked the family, successor included
        with pytest.raises(accounts.InvalidRefreshTokenError):
            accounts.rotate(services.app, store, services.users, successor, ACTOR)


def test_only_digests_of_tokens_are_stored(services: Services) -> None:
    user = new_user(services)
    token, _ = accounts.start_session(services.account_tokens, user.id, uuid4())
    assert services.account_tokens.refresh(token) is None
    assert services.account_tokens.refresh(accounts.digest(token)) is not None


def test_a_reset_token_is_consumed_once_even_when_raced(services: Services) -> None:
    user = new_user(services)
    mails = Mails()
    accounts.request_password_reset(
        services.account_tokens, services.users, mails, user.email, link
    )
    token = mails.sent[0][2].split("token=")[1].split()[0]

    def reset(n: int) -> bool:
        try:
            accounts.reset_password(
                services.account_tokens, services.users, services.hasher, token, f"password-{n}"
            )
        except accounts.InvalidAccountTokenError:
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(reset, range(4))) == 1


@pytest.mark.parametrize(
    "prefs",
    [
        {"timezone": "Nowhere/City"},
        {"language": 3},
        {"x": float("nan")},
        {"ok": "\x00"},
        {"_type_": 1},
    ],
)
def test_preferences_refuse_what_they_cannot_keep(prefs: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        accounts.preferences(prefs)


def test_leaving_is_refused_everywhere_when_one_organization_would_lose_its_last_admin(
    services: Services,
) -> None:
    cmd = accounts.Register(f"{uuid4().hex[:8]}@example.com", "long enough pw", "Owner", "Solo")
    mine = accounts.register(services.app, services.users, services.hasher, cmd)
    other = accounts.Register(f"{uuid4().hex[:8]}@example.com", "long enough pw", "B", "Other")
    theirs = accounts.register(services.app, services.users, services.hasher, other)
    org = services.app.load(Organization, theirs.organization_id, theirs.organization_id)
    org.add_member(mine.user_id, Role.SALES, actor=ACTOR)
    services.app.commit(org)
    orgs = [theirs.organization_id, mine.organization_id]
    with pytest.raises(LastAdminError):
        accounts.deactivate(
            services.app, services.users, services.account_tokens, mine.user_id, orgs, ACTOR
        )
    org = services.app.load(Organization, theirs.organization_id, theirs.organization_id)
    assert org.role_of(mine.user_id) is Role.SALES
    user = services.users.by_id(mine.user_id)
    assert user is not None and user.deactivated_at is None
