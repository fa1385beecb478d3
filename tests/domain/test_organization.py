"""Organizations, their members and roles: there is always at least one admin."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidValueError, LastAdminError, NotFoundError, RuleViolationError
from domain.organization import Organization, parse_role
from domain.values import Role
from tests.domain.builders import ACTOR, attempt

OWNER = uuid4()


@pytest.fixture
def org() -> Organization:
    org = Organization.register(name="  Loved Ltd ", owner_user_id=OWNER, actor=ACTOR)
    org.collect_events()
    return org


def test_the_owner_of_a_new_organization_is_its_admin() -> None:
    given = uuid4()
    org = Organization.register(name="Loved", owner_user_id=OWNER, actor=ACTOR, id=given)
    (registered,) = org.collect_events()
    assert isinstance(registered, Organization.Registered) and registered.actor == ACTOR
    assert org.id == org.organization_id == registered.organization_id == given
    assert org.members == {OWNER: Role.ADMIN}
    assert org.role_of(OWNER) is Role.ADMIN and org.role_of(uuid4()) is None


def test_an_organization_name_is_cleaned_and_required(org: Organization) -> None:
    assert org.name == "Loved Ltd"
    with pytest.raises(InvalidValueError) as refusal:
        Organization.register(name="  ", owner_user_id=OWNER, actor=ACTOR)
    assert refusal.value.field == "organization_name"


def test_a_member_is_added_with_a_role_once(org: Organization) -> None:
    user = uuid4()
    org.add_member(user, Role.SALES, actor=ACTOR)
    (added,) = org.collect_events()
    assert isinstance(added, Organization.MemberAdded)
    assert (added.user_id, added.role, added.organization_id) == (user, "sales", org.id)
    assert org.role_of(user) is Role.SALES
    assert isinstance(
        attempt(org, lambda: org.add_member(user, Role.VIEWER, actor=ACTOR)), RuleViolationError
    )


def test_changing_a_role_records_the_previous_one(org: Organization) -> None:
    user = uuid4()
    org.add_member(user, Role.SALES, actor=ACTOR)
    org.change_role(user, Role.MANAGER, actor=ACTOR)
    org.change_role(user, Role.MANAGER, actor=ACTOR)
    _, changed = org.collect_events()
    assert isinstance(changed, Organization.MemberRoleChanged)
    assert (changed.role, changed.previous_role) == ("manager", "sales")
    assert org.role_of(user) is Role.MANAGER


def test_an_admin_is_demoted_or_removed_while_another_admin_remains(org: Organization) -> None:
    other = uuid4()
    org.add_member(other, Role.ADMIN, actor=ACTOR)
    org.change_role(OWNER, Role.VIEWER, actor=ACTOR)
    assert org.members == {OWNER: Role.VIEWER, other: Role.ADMIN}
    org.change_role(OWNER, Role.ADMIN, actor=ACTOR)
    org.remove_member(other, actor=ACTOR)
    removed = org.collect_events()[-1]
    assert isinstance(removed, Organization.MemberRemoved)
    assert (removed.user_id, removed.previous_role) == (other, "admin")
    assert org.members == {OWNER: Role.ADMIN}


@pytest.mark.parametrize("role", [Role.MANAGER, Role.SALES, Role.VIEWER])
def test_the_last_admin_can_be_neither_demoted_nor_removed(org: Organization, role: Role) -> None:
    org.add_member(uuid4(), Role.MANAGER, actor=ACTOR)
    org.collect_events()
    demoted = attempt(org, lambda: org.change_role(OWNER, role, actor=ACTOR))
    removed = attempt(org, lambda: org.remove_member(OWNER, actor=ACTOR))
    assert isinstance(demoted, LastAdminError) and isinstance(removed, LastAdminError)


def test_the_last_admin_may_be_given_the_admin_role_again(org: Organization) -> None:
    org.change_role(OWNER, Role.ADMIN, actor=ACTOR)
    assert org.collect_events() == []


def test_removing_a_member_forgets_their_role(org: Organization) -> None:
    user = uuid4()
    org.add_member(user, Role.VIEWER, actor=ACTOR)
    org.remove_member(user, actor=ACTOR)
    assert org.role_of(user) is None


def test_someone_who_is_not_a_member_is_not_found(org: Organization) -> None:
    stranger = uuid4()
    for command in (
        lambda: org.change_role(stranger, Role.SALES, actor=ACTOR),
        lambda: org.remove_member(stranger, actor=ACTOR),
    ):
        refusal = attempt(org, command)
        assert isinstance(refusal, NotFoundError) and refusal.kind == "member"


def test_a_role_is_parsed_from_its_name() -> None:
    assert parse_role("manager") is Role.MANAGER
    with pytest.raises(InvalidValueError) as refusal:
        parse_role("owner")
    assert refusal.value.field == "role"
