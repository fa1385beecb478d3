"""The Organization aggregate: the tenant, its members and their roles.

Invariant: an organization always keeps at least one active admin.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import (
    InvalidValueError,
    LastAdminError,
    NotFoundError,
    RuleViolationError,
)
from domain.values import Actor, Role


class Organization(TenantAggregate):
    """A customer company using the CRM; its id is the tenant id of everything it owns."""

    name: str
    members: dict[UUID, Role]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Registered(TenantAggregate.Created):
        name: str
        owner_user_id: UUID

        def apply(self, org: Organization) -> None:
            org.organization_id = self.organization_id
            org.name = self.name
            org.members = {self.owner_user_id: Role.ADMIN}

    class MemberAdded(TenantAggregate.Event):
        user_id: UUID
        role: str

        def apply(self, org: Organization) -> None:
            org.members[self.user_id] = Role(self.role)

    class MemberRoleChanged(TenantAggregate.Event):
        user_id: UUID
        role: str
        previous_role: str

        def apply(self, org: Organization) -> None:
            org.members[self.user_id] = Role(self.role)

    class MemberRemoved(TenantAggregate.Event):
        user_id: UUID
        previous_role: str

        def apply(self, org: Organization) -> None:
            del org.members[self.user_id]

    @classmethod
    def register(
        cls, *, name: str, owner_user_id: UUID, actor: Actor, id: UUID | None = None
    ) -> Organization:
        org_id = id or uuid4()
        return cls._create(
            cls.Registered,
            id=org_id,
            organization_id=org_id,
            actor=actor,
            name=v.text("organization_name", name, max_length=200),
            owner_user_id=owner_user_id,
        )

    def role_of(self, user_id: UUID) -> Role | None:
        return self.members.get(user_id)

    def add_member(self, user_id: UUID, role: Role, *, actor: Actor) -> None:
        if user_id in self.members:
            raise RuleViolationError(f"user {user_id} is already a member")
        self.trigger_event(self.MemberAdded, user_id=user_id, role=str(role), actor=actor)

    def change_role(self, user_id: UUID, role: Role, *, actor: Actor) -> None:
        previous = self._member(user_id)
        if previous is role:
            return
        if previous is Role.ADMIN:
            self._check_other_admin(user_id)
        self.trigger_event(
            self.MemberRoleChanged,
            user_id=user_id,
            role=str(role),
            previous_role=str(previous),
            actor=actor,
        )

    def remove_member(self, user_id: UUID, *, actor: Actor) -> None:
        previous = self._member(user_id)
        if previous is Role.ADMIN:
            self._check_other_admin(user_id)
        self.trigger_event(
            self.MemberRemoved,
            user_id=user_id,
            previous_role=str(previous),
            actor=actor,
        )

    def _member(self, user_id: UUID) -> Role:
        role = self.members.get(user_id)
        if role is None:
            raise NotFoundError("member", user_id)
        return role

    def _check_other_admin(self, user_id: UUID) -> None:
        if not any(r is Role.ADMIN for u, r in self.members.items() if u != user_id):
            raise LastAdminError("the last admin can be neither removed nor demoted")


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidValueError("role", f"must be one of {allowed}") from None


__all__ = ["Organization", "parse_role"]
