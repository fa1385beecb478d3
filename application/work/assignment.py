"""The assignment-rules engine: who a lead that arrives unassigned goes to.

Every capture path (the API, a webhook's new contact, an import) hands its new lead to
`route_new_lead` and saves the rules it answers with the lead, in one commit: the rule's
rotation pointer advances with the assignment or not at all. A version conflict on the rules
(a concurrent capture routed first) fails the whole save; the caller captures again
(`capture_routed` does it for the API and imports, the webhook's own retry for webhooks).

The phone's country (ISO 3166 alpha-2, from the E.164 number) and the business-hours clock are
worked out here, since the domain imports neither `phonenumbers` nor the settings.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TypeVar
from uuid import UUID

import phonenumbers
import sqlalchemy as sa

from application.ports import ReadModels
from application.store import CrmApplication
from application.work.settings import business_hours_of
from domain.assignment import Arrival, AssignmentRules, assignment_rules_id
from domain.errors import NotFoundError, VersionConflictError
from domain.lead import Lead
from domain.organization import Organization
from domain.values import Actor, LeadStatus
from projections.leads import rm_leads
from projections.phones import e164

T = TypeVar("T")

#: captures losing the race for the rules to concurrent ones: each loss is another's success
ATTEMPTS = 30


def rules_of(app: CrmApplication, organization_id: UUID) -> AssignmentRules | None:
    """A writable, up-to-date copy of the organization's rules; None before any was set.

    Copied from the process's cached view: the aggregate records one event per routed lead,
    and only the events newer than the cache are read.
    """
    try:
        view = app.view(AssignmentRules, assignment_rules_id(organization_id), organization_id)
    except NotFoundError:
        return None
    return copy.deepcopy(view)


def country_of(phone: str | None) -> str | None:
    """The ISO 3166 alpha-2 country of a phone number, None when it has none we can tell."""
    number = e164(phone)
    if number is None:
        return None
    region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    return region if region and region != "ZZ" else None


def open_leads(
    read_models: ReadModels | None, organization_id: UUID, members: Sequence[UUID]
) -> Mapping[UUID, int]:
    """Open, unarchived leads per member, from the leads read model (which may lag a few
    captures: least-open breaks ties by rotation, so a burst still spreads). Without read
    models every member counts zero."""
    if read_models is None or not members:
        return {}
    c = rm_leads.c
    query = (
        sa.select(c.assignee_id, sa.func.count())
        .where(
            c.organization_id == organization_id,
            c.assignee_id.in_(list(members)),
            c.status == str(LeadStatus.OPEN),
            c.archived.is_(False),
        )
        .group_by(c.assignee_id)
    )
    with read_models.reading(organization_id) as conn:
        return {row[0]: int(row[1]) for row in conn.execute(query)}


def route_new_lead(
    app: CrmApplication, read_models: ReadModels | None, lead: Lead, *, actor: Actor
) -> AssignmentRules | None:
    """Assign a new, unassigned lead by the first matching rule (`Lead.Assigned` with the rule
    as its actor) and answer the rules to commit with the lead; None when nothing matched."""
    if lead.assignee_id is not None:
        return None
    rules = rules_of(app, lead.organization_id)
    if rules is None or not rules.order:
        return None
    org_id = lead.organization_id
    org = app.view(Organization, org_id, org_id)
    in_hours = rules.needs_business_hours() and business_hours_of(app, org_id).contains(
        lead.created_on
    )
    arrival = Arrival(
        source=lead.source,
        custom_fields=lead.custom_fields,
        country=country_of(lead.phone),
        in_business_hours=in_hours,
    )
    routing = rules.route(
        lead.id,
        arrival,
        members=org.members.keys(),
        open_leads=partial(open_leads, read_models, org_id),
        actor=actor,
    )
    if routing is None:
        return None
    lead.assign(routing.user_id, actor=routing.actor)
    return rules


def retried(organization_id: UUID, attempt: Callable[[], T]) -> T:
    """Run a load–change–commit that includes the organization's rules again when it lost the
    race for them (every routed lead advances their version): an admin's edit or a member's
    removal does not depend on the rotation it raced with."""
    rules_id = assignment_rules_id(organization_id)
    for tried in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except VersionConflictError as conflict:
            if conflict.aggregate_id != rules_id or tried == ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.002 * tried))
    raise AssertionError("unreachable")  # pragma: no cover


def capture_routed(
    app: CrmApplication, read_models: ReadModels | None, lead: Lead, *, actor: Actor
) -> tuple[Lead, int]:
    """Save a just-captured lead without an assignee through the rules; answers the saved lead
    (assigned or not) and the log position. Each attempt routes a fresh copy of `lead` (with
    its pending Captured event) against the latest rotation."""

    def attempt() -> tuple[Lead, int]:
        fresh = copy.deepcopy(lead)
        rules = route_new_lead(app, read_models, fresh, actor=actor)
        return fresh, app.commit(fresh, *([rules] if rules else []))

    return retried(lead.organization_id, attempt)


def member_left(
    app: CrmApplication, organization_id: UUID, user_id: UUID, *, actor: Actor
) -> list[AssignmentRules]:
    """The rules to commit with a member's removal: they leave every rule naming them."""
    rules = rules_of(app, organization_id)
    if rules is None:
        return []
    rules.member_left(user_id, actor=actor)
    return [rules] if rules.pending_events else []
