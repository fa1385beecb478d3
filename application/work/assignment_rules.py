"""Assignment rules: listed by every member, edited by admins and managers (`work:configure`).

The list is read from the organization's rules aggregate (a small configuration, like the work
settings), so an edit reads back at once. Members a rule names must be members of the caller's
organization: any other id is not found here, whoever it is elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from uuid import UUID, uuid4

import msgspec

from application.context import Ctx, Written
from application.store import CrmApplication
from application.work.assignment import retried, rules_of
from domain.assignment import AssignmentRules, Rule, RuleNotFoundError, RuleSpec
from domain.errors import NotFoundError
from domain.organization import Organization

Strategy = Literal["member", "round_robin", "least_open"]


class RuleConditions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """All must hold for the rule to apply; one left empty holds for every lead."""

    #: the lead's source is one of these (compared without case)
    sources: list[str] = msgspec.field(default_factory=list)
    #: each custom field equals its value
    custom_fields: dict[str, str | int | bool] = msgspec.field(default_factory=dict)
    #: the country of the lead's phone (ISO 3166 alpha-2, from its +country code)
    countries: list[str] = msgspec.field(default_factory=list)
    #: the lead arrives inside or outside the organization's business hours
    business_hours: Literal["inside", "outside"] | None = None


class RuleBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`member`: the one member named; `round_robin`: the members in turn; `least_open`: the
    member with the fewest open leads (ties in turn)."""

    name: str
    strategy: Strategy
    members: list[UUID]
    enabled: bool = True
    conditions: RuleConditions = msgspec.field(default_factory=RuleConditions)


class RuleOrder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: every rule id once, first match first
    rule_ids: list[UUID]


class RuleView(msgspec.Struct, frozen=True):
    id: UUID
    #: 1 for the rule tried first
    position: int
    name: str
    enabled: bool
    conditions: RuleConditions
    strategy: str
    members: list[UUID]
    #: who the rule assigned last (the rotation's pointer) and how many leads it routed
    last_assigned_id: UUID | None
    routed: int


class RulesView(msgspec.Struct, frozen=True):
    items: list[RuleView]
    version: int


def _view(rule: Rule, position: int) -> RuleView:
    spec = rule.spec
    conditions = spec.conditions
    return RuleView(
        id=rule.id,
        position=position,
        name=spec.name,
        enabled=spec.enabled,
        conditions=RuleConditions(
            sources=list(conditions.sources),
            custom_fields=dict(conditions.custom_fields),
            countries=list(conditions.countries),
            business_hours=conditions.business_hours,  # type: ignore[arg-type]
        ),
        strategy=spec.strategy,
        members=list(spec.members),
        last_assigned_id=rule.last_user_id,
        routed=rule.routed,
    )


def list_rules(app: CrmApplication, ctx: Ctx) -> RulesView:
    rules = rules_of(app, ctx.organization_id)
    if rules is None:
        return RulesView(items=[], version=0)
    items = [_view(rule, i) for i, rule in enumerate(rules.ordered(), start=1)]
    return RulesView(items=items, version=rules.version)


def get_rule(app: CrmApplication, rule_id: UUID, ctx: Ctx) -> RuleView:
    rules = rules_of(app, ctx.organization_id)
    if rules is None:
        raise RuleNotFoundError(rule_id)
    rules.rule(rule_id)
    return _view(rules.rules[rule_id], rules.order.index(rule_id) + 1)


def _spec(app: CrmApplication, body: RuleBody, ctx: Ctx) -> RuleSpec:
    spec = RuleSpec.parse(
        name=body.name,
        enabled=body.enabled,
        conditions=msgspec.to_builtins(body.conditions),
        strategy=body.strategy,
        members=body.members,
    )
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    for member in spec.members:
        if org.role_of(member) is None:  # whoever they are elsewhere, not found here
            raise NotFoundError("member", member)
    return spec


def _editable(app: CrmApplication, ctx: Ctx) -> AssignmentRules:
    return rules_of(app, ctx.organization_id) or AssignmentRules.start(
        ctx.organization_id, actor=ctx.actor
    )


def _edit(app: CrmApplication, ctx: Ctx, change: Callable[[AssignmentRules], UUID]) -> Written:
    """Apply an edit to the latest rules and commit; lost races with routed leads are retried
    (the edit does not depend on the rotation)."""

    def attempt() -> Written:
        rules = _editable(app, ctx)  # an unknown rule is refused before anything is saved
        answer_id = change(rules)
        return Written(id=answer_id, version=rules.version, position=app.commit(rules))

    return retried(ctx.organization_id, attempt)


def add_rule(app: CrmApplication, body: RuleBody, ctx: Ctx) -> Written:
    """Append a rule: it is tried after every existing one."""
    spec = _spec(app, body, ctx)
    rule_id = uuid4()  # the same id on every attempt
    return _edit(app, ctx, lambda rules: rules.add(spec, actor=ctx.actor, rule_id=rule_id))


def change_rule(app: CrmApplication, rule_id: UUID, body: RuleBody, ctx: Ctx) -> Written:
    _editable(app, ctx).rule(rule_id)  # an unknown rule is 404 before a bad body is 422
    spec = _spec(app, body, ctx)

    def change(rules: AssignmentRules) -> UUID:
        rules.change(rule_id, spec, actor=ctx.actor)
        return rule_id

    return _edit(app, ctx, change)


def remove_rule(app: CrmApplication, rule_id: UUID, ctx: Ctx) -> Written:
    def remove(rules: AssignmentRules) -> UUID:
        rules.remove(rule_id, actor=ctx.actor)
        return rule_id

    return _edit(app, ctx, remove)


def reorder_rules(app: CrmApplication, body: RuleOrder, ctx: Ctx) -> Written:
    def reorder(rules: AssignmentRules) -> UUID:
        rules.reorder(body.rule_ids, actor=ctx.actor)
        return rules.id

    return _edit(app, ctx, reorder)
