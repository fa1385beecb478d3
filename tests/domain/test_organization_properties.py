"""Properties of any sequence of membership changes: an admin always remains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import Mapper
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from domain.organization import Organization
from domain.values import Role
from tests.domain.builders import ACTOR, attempt, replay, through_the_event_store

OWNER = uuid4()
USERS = st.sampled_from([OWNER, uuid4(), uuid4(), uuid4()])
ROLES = st.sampled_from(Role)


class MembershipChanges(RuleBasedStateMachine):
    """Random membership changes, each either applied or refused with a DomainError."""

    mapper: Mapper[UUID]

    def __init__(self) -> None:
        super().__init__()
        self.org = Organization.register(name="Loved", owner_user_id=OWNER, actor=ACTOR)
        self.events: list[Any] = list(self.org.collect_events())

    def run(self, command: Callable[[], object]) -> None:
        refusal = attempt(self.org, command)
        new = self.org.collect_events()
        assert refusal is None or new == []
        self.events.extend(new)

    @rule(user=USERS, role=ROLES)
    def add_member(self, user: UUID, role: Role) -> None:
        self.run(lambda: self.org.add_member(user, role, actor=ACTOR))

    @rule(user=USERS, role=ROLES)
    def change_role(self, user: UUID, role: Role) -> None:
        self.run(lambda: self.org.change_role(user, role, actor=ACTOR))

    @rule(user=USERS)
    def remove_member(self, user: UUID) -> None:
        self.run(lambda: self.org.remove_member(user, actor=ACTOR))

    @invariant()
    def an_admin_remains(self) -> None:
        assert Role.ADMIN in self.org.members.values()
        assert all(isinstance(role, Role) for role in self.org.members.values())
        assert self.org.version == len(self.events)

    def teardown(self) -> None:
        assert replay(self.events) == self.org
        assert replay(through_the_event_store(self.mapper, self.events)) == self.org


def test_any_sequence_of_membership_changes_keeps_an_admin(event_mapper: Mapper[UUID]) -> None:
    MembershipChanges.mapper = event_mapper
    run_state_machine_as_test(
        MembershipChanges,
        settings=settings(max_examples=150, stateful_step_count=20, deadline=None),
    )
