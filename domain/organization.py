"""The Organization aggregate: the tenant, its settings, members, invitations and API keys.

Invariants: an organization always keeps at least one active admin; an invitation is accepted
once and only before it expires; a revoked API key stays revoked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from uuid import UUID, uuid4
from zoneinfo import available_timezones

from domain import integrations
from domain import values as v
from domain.base import TenantAggregate
from domain.errors import (
    InvalidValueError,
    LastAdminError,
    NotFoundError,
    RuleViolationError,
)
from domain.values import Actor, Role

DEFAULT_TIMEZONE = "UTC"
INVITATION_LIFETIME = timedelta(days=7)


class InvitationExpiredError(InvalidValueError):
    """The invitation's acceptance window has passed."""

    def __init__(self) -> None:
        super().__init__("token", "the invitation has expired")


class InvitationUsedError(InvalidValueError):
    """An invitation admits one person once."""

    def __init__(self) -> None:
        super().__init__("token", "the invitation was already accepted")


@dataclass(frozen=True)
class Invitation:
    id: UUID
    email: str
    role: Role
    token_hash: str
    expires_at: datetime
    accepted_by: UUID | None = None


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    name: str
    scopes: tuple[str, ...]
    prefix: str
    secret_hash: str
    created_by: UUID
    revoked: bool = False


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_name(value: str) -> str:
    """An IANA time zone name such as "Europe/Lisbon"."""
    cleaned = v.text("timezone", value, max_length=64)
    if cleaned != "UTC" and cleaned not in _zones():
        raise InvalidValueError("timezone", "must be an IANA time zone name, e.g. Europe/Lisbon")
    return cleaned


class Organization(TenantAggregate):
    """A customer company using the CRM; its id is the tenant id of everything it owns."""

    name: str
    timezone: str
    members: dict[UUID, Role]
    invitations: dict[UUID, Invitation]
    api_keys: dict[UUID, ApiKey]
    providers: dict[str, dict[str, integrations.ProviderConfig]]
    active_providers: dict[str, str]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Registered(TenantAggregate.Created):
        name: str
        owner_user_id: UUID

        def apply(self, org: Organization) -> None:
            org.organization_id = self.organization_id
            org.name = self.name
            org.timezone = DEFAULT_TIMEZONE
            org.members = {self.owner_user_id: Role.ADMIN}
            org.invitations = {}
            org.api_keys = {}
            org.providers = {}
            org.active_providers = {}

    class Renamed(TenantAggregate.Event):
        name: str
        previous_name: str

        def apply(self, org: Organization) -> None:
            org.name = self.name

    class TimezoneChanged(TenantAggregate.Event):
        timezone: str
        previous_timezone: str

        def apply(self, org: Organization) -> None:
            org.timezone = self.timezone

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

    class InvitationSent(TenantAggregate.Event):
        invitation_id: UUID
        email: str
        role: str
        token_hash: str
        expires_at: datetime

        def apply(self, org: Organization) -> None:
            org.invitations[self.invitation_id] = Invitation(
                self.invitation_id, self.email, Role(self.role), self.token_hash, self.expires_at
            )

    class InvitationAccepted(TenantAggregate.Event):
        invitation_id: UUID
        user_id: UUID

        def apply(self, org: Organization) -> None:
            invitation = org.invitations[self.invitation_id]
            org.invitations[self.invitation_id] = replace(invitation, accepted_by=self.user_id)

    class ApiKeyCreated(TenantAggregate.Event):
        key_id: UUID
        name: str
        scopes: list[str]
        prefix: str
        secret_hash: str
        created_by: UUID

        def apply(self, org: Organization) -> None:
            org.api_keys[self.key_id] = ApiKey(
                self.key_id,
                self.name,
                tuple(self.scopes),
                self.prefix,
                self.secret_hash,
                self.created_by,
            )

    class ApiKeyScopesChanged(TenantAggregate.Event):
        key_id: UUID
        scopes: list[str]
        previous_scopes: list[str]

        def apply(self, org: Organization) -> None:
            key = org.api_keys[self.key_id]
            org.api_keys[self.key_id] = replace(key, scopes=tuple(self.scopes))

    class ApiKeyRevoked(TenantAggregate.Event):
        key_id: UUID

        def apply(self, org: Organization) -> None:
            org.api_keys[self.key_id] = replace(org.api_keys[self.key_id], revoked=True)

    class ProviderConfigured(TenantAggregate.Event):
        """A provider's settings were set or changed; secrets are sealed, never plain."""

        kind: str
        provider_type: str
        settings: dict[str, str]
        sealed_secrets: dict[str, str]
        numbers: list[str]
        activated: bool

        def apply(self, org: Organization) -> None:
            org.providers.setdefault(self.kind, {})[self.provider_type] = (
                integrations.ProviderConfig(
                    self.kind,
                    self.provider_type,
                    dict(self.settings),
                    dict(self.sealed_secrets),
                    tuple(self.numbers),
                )
            )
            if self.activated:
                org.active_providers[self.kind] = self.provider_type

    class ProviderSwitched(TenantAggregate.Event):
        """The active provider of a kind changed (hot swap; history stays one)."""

        kind: str
        provider_type: str
        previous_provider_type: str | None

        def apply(self, org: Organization) -> None:
            org.active_providers[self.kind] = self.provider_type

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

    # settings

    def rename(self, name: str, *, actor: Actor) -> None:
        cleaned = v.text("name", name, max_length=200)
        if cleaned != self.name:
            self.trigger_event(self.Renamed, name=cleaned, previous_name=self.name, actor=actor)

    def change_timezone(self, timezone: str, *, actor: Actor) -> None:
        cleaned = timezone_name(timezone)
        if cleaned != self.timezone:
            self.trigger_event(
                self.TimezoneChanged,
                timezone=cleaned,
                previous_timezone=self.timezone,
                actor=actor,
            )

    # members

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

    # invitations

    def invite(
        self,
        *,
        invitation_id: UUID,
        email: str,
        role: Role,
        token_hash: str,
        now: datetime,
        actor: Actor,
    ) -> Invitation:
        address = v.email(email)
        if address is None:
            raise InvalidValueError("email", "is required")
        self.trigger_event(
            self.InvitationSent,
            invitation_id=invitation_id,
            email=address,
            role=str(role),
            token_hash=token_hash,
            expires_at=now + INVITATION_LIFETIME,
            actor=actor,
        )
        return self.invitations[invitation_id]

    def invitation(self, invitation_id: UUID) -> Invitation:
        found = self.invitations.get(invitation_id)
        if found is None:
            raise NotFoundError("invitation", invitation_id)
        return found

    def accept_invitation(
        self, invitation_id: UUID, user_id: UUID, *, now: datetime, actor: Actor
    ) -> None:
        """The invited person joins with the invitation's role: once, before it expires."""
        invitation = self.invitation(invitation_id)
        if invitation.accepted_by is not None:
            raise InvitationUsedError()
        if now >= invitation.expires_at:
            raise InvitationExpiredError()
        if user_id in self.members:
            raise RuleViolationError(f"user {user_id} is already a member")
        self.trigger_event(
            self.InvitationAccepted, invitation_id=invitation_id, user_id=user_id, actor=actor
        )
        self.add_member(user_id, invitation.role, actor=actor)

    # API keys

    def create_api_key(
        self,
        *,
        key_id: UUID,
        name: str,
        scopes: list[str],
        prefix: str,
        secret_hash: str,
        actor: Actor,
        created_by: UUID,
    ) -> ApiKey:
        if key_id in self.api_keys:
            raise RuleViolationError(f"API key {key_id} already exists")
        self.trigger_event(
            self.ApiKeyCreated,
            key_id=key_id,
            name=v.text("name", name, max_length=100),
            scopes=_scopes(scopes),
            prefix=prefix,
            secret_hash=secret_hash,
            created_by=created_by,
            actor=actor,
        )
        return self.api_keys[key_id]

    def api_key(self, key_id: UUID) -> ApiKey:
        found = self.api_keys.get(key_id)
        if found is None:
            raise NotFoundError("api_key", key_id)
        return found

    def change_api_key_scopes(self, key_id: UUID, scopes: list[str], *, actor: Actor) -> None:
        key = self._active_key(key_id)
        wanted = _scopes(scopes)
        if tuple(wanted) != key.scopes:
            self.trigger_event(
                self.ApiKeyScopesChanged,
                key_id=key_id,
                scopes=wanted,
                previous_scopes=list(key.scopes),
                actor=actor,
            )

    def revoke_api_key(self, key_id: UUID, *, actor: Actor) -> None:
        if not self.api_key(key_id).revoked:
            self.trigger_event(self.ApiKeyRevoked, key_id=key_id, actor=actor)

    # provider integrations

    def configure_provider(
        self,
        kind: str,
        provider_type: str,
        *,
        settings: dict[str, str],
        sealed_secrets: dict[str, str],
        numbers: list[str],
        actor: Actor,
        activate: bool = True,
    ) -> None:
        """Set a provider's settings; the first one of a kind becomes active either way."""
        previous = self.providers.get(kind, {}).get(provider_type)
        clean, secrets, phones = integrations.check_settings(
            kind, provider_type, settings, sealed_secrets, numbers, previous
        )
        activated = (activate or kind not in self.active_providers) and (
            self.active_providers.get(kind) != provider_type
        )
        if previous is not None and not activated:
            same = (previous.settings, previous.sealed_secrets, previous.numbers)
            if same == (clean, secrets, phones):
                return
        self.trigger_event(
            self.ProviderConfigured,
            kind=kind,
            provider_type=provider_type,
            settings=clean,
            sealed_secrets=secrets,
            numbers=list(phones),
            activated=activated,
            actor=actor,
        )

    def switch_provider(self, kind: str, provider_type: str, *, actor: Actor) -> None:
        integrations.schema(kind, provider_type)
        if provider_type not in self.providers.get(kind, {}):
            raise RuleViolationError(
                f"{provider_type} is not configured: set it up before switching to it"
            )
        current = self.active_providers.get(kind)
        if current != provider_type:
            self.trigger_event(
                self.ProviderSwitched,
                kind=kind,
                provider_type=provider_type,
                previous_provider_type=current,
                actor=actor,
            )

    def provider(
        self, kind: str, provider_type: str | None = None
    ) -> integrations.ProviderConfig | None:
        """A configured provider of a kind (the active one when no type is given)."""
        name = provider_type or self.active_providers.get(kind)
        if name is None:
            return None
        return self.providers.get(kind, {}).get(name)

    def _active_key(self, key_id: UUID) -> ApiKey:
        key = self.api_key(key_id)
        if key.revoked:
            raise RuleViolationError(f"API key {key_id} is revoked")
        return key

    def _member(self, user_id: UUID) -> Role:
        role = self.members.get(user_id)
        if role is None:
            raise NotFoundError("member", user_id)
        return role

    def _check_other_admin(self, user_id: UUID) -> None:
        if not any(r is Role.ADMIN for u, r in self.members.items() if u != user_id):
            raise LastAdminError("the last admin can be neither removed nor demoted")


def _scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidValueError("scopes", "at least one scope is required")
    return sorted(set(scopes))


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidValueError("role", f"must be one of {allowed}") from None


__all__ = [
    "ApiKey",
    "Invitation",
    "InvitationExpiredError",
    "InvitationUsedError",
    "Organization",
    "parse_role",
    "timezone_name",
]
