"""Assignment rules of one organization: an ordered list in which the first match wins.

One aggregate per organization (`assignment_rules_id`). The order is a single fact, and each
routing of a new lead is recorded here (`LeadRouted`) in the same commit as the lead's
assignment: concurrent captures contend on this aggregate's version, the loser retries with
the advanced rotation, so N captures over k members of a round-robin differ by at most one.

Invariants: rule ids are unique and the order is a permutation of them; a rule names at least
one member (exactly one for the `member` strategy); a member who leaves the organization leaves
every rule (`MemberLeft`), and a rule left without members is disabled until edited.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4, uuid5

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, NotFoundError
from domain.values import Actor

_NAMESPACE = UUID("0b5c2f0e-3f4e-4a57-a1a6-7d2c1e9b4a20")
STRATEGIES = ("member", "round_robin", "least_open")
BUSINESS_HOURS = ("inside", "outside")
MAX_RULES = 100
MAX_MEMBERS = 100
MAX_VALUES = 50
_COUNTRY = re.compile(r"^[A-Z]{2}$")

#: open-lead counts of the given members (a read model's, so it may lag a little)
OpenLeads = Callable[[Sequence[UUID]], Mapping[UUID, int]]


def assignment_rules_id(organization_id: UUID) -> UUID:
    return uuid5(_NAMESPACE, f"assignment-rules:{organization_id}")


class RuleNotFoundError(NotFoundError):
    def __init__(self, rule_id: UUID) -> None:
        super().__init__("assignment_rule", rule_id)


@dataclass(frozen=True)
class Arrival:
    """What the rules look at in a new lead; the caller works out its phone's country (ISO
    3166 alpha-2, None when unknown) and whether it arrived inside business hours."""

    source: str | None
    custom_fields: Mapping[str, Any]
    country: str | None
    in_business_hours: bool


@dataclass(frozen=True)
class Conditions:
    """All must hold; an empty one holds for every lead."""

    sources: tuple[str, ...] = ()
    custom_fields: tuple[tuple[str, Any], ...] = ()
    countries: tuple[str, ...] = ()
    business_hours: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Conditions:
        sources = _texts("conditions.sources", data.get("sources") or [], 100)
        countries = _texts("conditions.countries", data.get("countries") or [], 2)
        countries = [c.upper() for c in countries]
        if any(not _COUNTRY.fullmatch(c) for c in countries):
            raise InvalidValueError("conditions.countries", "must be ISO 3166 alpha-2 codes")
        fields = data.get("custom_fields") or {}
        if not isinstance(fields, Mapping) or len(fields) > MAX_VALUES:
            raise InvalidValueError("conditions.custom_fields", "must be an object of values")
        pairs = []
        for key, value in fields.items():
            name = v.text("conditions.custom_fields", str(key), max_length=100)
            if not isinstance(value, str | int):  # booleans are ints
                raise InvalidValueError(
                    "conditions.custom_fields", "values must be text, whole numbers or booleans"
                )
            if isinstance(value, str):
                value = v.text("conditions.custom_fields", value, max_length=500, required=False)
            pairs.append((name, value))
        hours = data.get("business_hours")
        if hours is not None and hours not in BUSINESS_HOURS:
            raise InvalidValueError("conditions.business_hours", "must be inside or outside")
        return cls(
            sources=tuple(dict.fromkeys(s.casefold() for s in sources)),
            custom_fields=tuple(sorted(pairs)),
            countries=tuple(dict.fromkeys(countries)),
            business_hours=hours,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": list(self.sources),
            "custom_fields": dict(self.custom_fields),
            "countries": list(self.countries),
            "business_hours": self.business_hours,
        }

    def hold_for(self, arrival: Arrival) -> bool:
        if self.sources and (arrival.source or "").casefold() not in self.sources:
            return False
        for key, value in self.custom_fields:
            if not _same(arrival.custom_fields.get(key), value):
                return False
        if self.countries and arrival.country not in self.countries:
            return False
        if self.business_hours is not None:
            return arrival.in_business_hours == (self.business_hours == "inside")
        return True


def _same(got: Any, wanted: Any) -> bool:
    # a number typed as text in a form still matches ("12" equals 12); booleans stay strict
    if isinstance(got, bool) or isinstance(wanted, bool):
        return got is wanted
    if isinstance(got, str | int) and isinstance(wanted, str | int):
        return str(got) == str(wanted)
    return False


def _texts(field: str, values: Any, max_length: int) -> list[str]:
    if not isinstance(values, list | tuple) or len(values) > MAX_VALUES:
        raise InvalidValueError(field, f"must be a list of at most {MAX_VALUES} values")
    if any(not isinstance(x, str) for x in values):
        raise InvalidValueError(field, "must be a list of text values")
    return [v.text(field, x, max_length=max_length) for x in values]


@dataclass(frozen=True)
class RuleSpec:
    """What an admin sets on a rule (validated)."""

    name: str
    enabled: bool
    conditions: Conditions
    strategy: str
    members: tuple[UUID, ...]

    @classmethod
    def parse(
        cls,
        *,
        name: str,
        enabled: bool,
        conditions: Mapping[str, Any],
        strategy: str,
        members: Sequence[UUID],
    ) -> RuleSpec:
        if strategy not in STRATEGIES:
            raise InvalidValueError("strategy", f"must be one of {', '.join(STRATEGIES)}")
        unique = tuple(dict.fromkeys(members))
        if not unique or len(unique) > MAX_MEMBERS:
            raise InvalidValueError("members", f"must name 1 to {MAX_MEMBERS} members")
        if strategy == "member" and len(unique) != 1:
            raise InvalidValueError("members", "the member strategy names exactly one member")
        return cls(
            name=v.text("name", name, max_length=100),
            enabled=bool(enabled),
            conditions=Conditions.parse(conditions),
            strategy=strategy,
            members=unique,
        )

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "conditions": self.conditions.as_dict(),
            "strategy": self.strategy,
            "members": list(self.members),
        }


@dataclass(frozen=True)
class Rule:
    id: UUID
    spec: RuleSpec
    #: the rotation pointer: who this rule assigned last
    last_user_id: UUID | None = None
    routed: int = 0

    def next_in_turn(self, candidates: Collection[UUID]) -> UUID | None:
        """The first candidate after the last one assigned, in the rule's member order."""
        members = self.spec.members
        start = members.index(self.last_user_id) + 1 if self.last_user_id in members else 0
        for i in range(len(members)):
            member = members[(start + i) % len(members)]
            if member in candidates:
                return member
        return None


@dataclass(frozen=True)
class Routing:
    rule_id: UUID
    user_id: UUID

    @property
    def actor(self) -> Actor:
        """Who the lead's assignment is recorded as: the rule itself."""
        return Actor(kind="rule", id=str(self.rule_id))


def _spec(event: Any) -> RuleSpec:
    """The rule an added or changed event describes (validated when it was recorded)."""
    return RuleSpec(
        name=event.name,
        enabled=event.enabled,
        conditions=Conditions.parse(event.conditions),
        strategy=event.strategy,
        members=tuple(event.members),
    )


class AssignmentRules(TenantAggregate):
    """The organization's ordered assignment rules and their rotation pointers."""

    rules: dict[UUID, Rule]
    order: list[UUID]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Started(TenantAggregate.Created):
        def apply(self, a: AssignmentRules) -> None:
            a.organization_id = self.organization_id
            a.rules = {}
            a.order = []

    class RuleAdded(TenantAggregate.Event):
        rule_id: UUID
        name: str
        enabled: bool
        conditions: dict[str, Any]
        strategy: str
        members: list[UUID]

        def apply(self, a: AssignmentRules) -> None:
            a.rules[self.rule_id] = Rule(self.rule_id, _spec(self))
            a.order.append(self.rule_id)

    class RuleChanged(TenantAggregate.Event):
        rule_id: UUID
        name: str
        enabled: bool
        conditions: dict[str, Any]
        strategy: str
        members: list[UUID]

        def apply(self, a: AssignmentRules) -> None:
            a.rules[self.rule_id] = replace(a.rules[self.rule_id], spec=_spec(self))

    class RuleRemoved(TenantAggregate.Event):
        rule_id: UUID

        def apply(self, a: AssignmentRules) -> None:
            del a.rules[self.rule_id]
            a.order.remove(self.rule_id)

    class Reordered(TenantAggregate.Event):
        rule_ids: list[UUID]
        previous_rule_ids: list[UUID]

        def apply(self, a: AssignmentRules) -> None:
            a.order = list(self.rule_ids)

    class MemberLeft(TenantAggregate.Event):
        """A member left the organization: they leave every rule; emptied rules are disabled."""

        user_id: UUID
        rule_ids: list[UUID]

        def apply(self, a: AssignmentRules) -> None:
            for rule_id in self.rule_ids:
                rule = a.rules[rule_id]
                members = tuple(m for m in rule.spec.members if m != self.user_id)
                spec = replace(
                    rule.spec, members=members, enabled=rule.spec.enabled and bool(members)
                )
                a.rules[rule_id] = replace(rule, spec=spec)

    class LeadRouted(TenantAggregate.Event):
        """A rule chose who a new lead goes to: the rotation pointer advances."""

        rule_id: UUID
        lead_id: UUID
        user_id: UUID

        def apply(self, a: AssignmentRules) -> None:
            rule = a.rules[self.rule_id]
            a.rules[self.rule_id] = replace(rule, last_user_id=self.user_id, routed=rule.routed + 1)

    @classmethod
    def start(cls, organization_id: UUID, *, actor: Actor) -> AssignmentRules:
        return cls._create(
            cls.Started,
            id=assignment_rules_id(organization_id),
            organization_id=organization_id,
            actor=actor,
        )

    def ordered(self) -> list[Rule]:
        return [self.rules[rule_id] for rule_id in self.order]

    def rule(self, rule_id: UUID) -> Rule:
        if rule_id not in self.rules:
            raise RuleNotFoundError(rule_id)
        return self.rules[rule_id]

    def add(self, spec: RuleSpec, *, actor: Actor, rule_id: UUID | None = None) -> UUID:
        if len(self.rules) >= MAX_RULES:
            raise InvalidValueError("rules", f"an organization has at most {MAX_RULES} rules")
        rule_id = rule_id or uuid4()
        self.trigger_event(self.RuleAdded, rule_id=rule_id, actor=actor, **spec.fields())
        return rule_id

    def change(self, rule_id: UUID, spec: RuleSpec, *, actor: Actor) -> None:
        if self.rule(rule_id).spec != spec:
            self.trigger_event(self.RuleChanged, rule_id=rule_id, actor=actor, **spec.fields())

    def remove(self, rule_id: UUID, *, actor: Actor) -> None:
        self.rule(rule_id)
        self.trigger_event(self.RuleRemoved, rule_id=rule_id, actor=actor)

    def reorder(self, rule_ids: Sequence[UUID], *, actor: Actor) -> None:
        if len(rule_ids) != len(self.order) or set(rule_ids) != set(self.order):
            raise InvalidValueError("rule_ids", "must list every rule id exactly once")
        if list(rule_ids) != self.order:
            self.trigger_event(
                self.Reordered,
                rule_ids=list(rule_ids),
                previous_rule_ids=list(self.order),
                actor=actor,
            )

    def member_left(self, user_id: UUID, *, actor: Actor) -> None:
        naming = [r.id for r in self.ordered() if user_id in r.spec.members]
        if naming:
            self.trigger_event(self.MemberLeft, user_id=user_id, rule_ids=naming, actor=actor)

    def needs_business_hours(self) -> bool:
        return any(r.spec.enabled and r.spec.conditions.business_hours for r in self.ordered())

    def route(
        self,
        lead_id: UUID,
        arrival: Arrival,
        *,
        members: Collection[UUID],
        open_leads: OpenLeads,
        actor: Actor,
    ) -> Routing | None:
        """Who a new unassigned lead goes to: the first enabled rule whose conditions hold and
        that names a current member (`members`: the organization's); None when none does.

        Round-robin takes the next member after the rule's last; least-open the members with
        the fewest open leads, ties broken by the same rotation (so a burst of captures read
        against a lagging count still spreads).
        """
        for rule in self.ordered():
            spec = rule.spec
            if not spec.enabled or not spec.conditions.hold_for(arrival):
                continue
            candidates = [m for m in spec.members if m in members]
            if not candidates:
                continue  # every member it names left: skipped (MemberLeft disables it too)
            if spec.strategy == "least_open":
                counts = open_leads(candidates)
                fewest = min(counts.get(m, 0) for m in candidates)
                candidates = [m for m in candidates if counts.get(m, 0) == fewest]
            chosen = rule.next_in_turn(candidates)
            if chosen is None:  # pragma: no cover - candidates is never empty here
                continue
            self.trigger_event(
                self.LeadRouted, rule_id=rule.id, lead_id=lead_id, user_id=chosen, actor=actor
            )
            return Routing(rule.id, chosen)
        return None
