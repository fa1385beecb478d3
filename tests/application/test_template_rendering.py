"""Rendering is plain substitution: any lead data — template syntax included — appears exactly
as it is, and is never expanded as a template."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from application.work.templates import values_for
from domain.lead import Lead
from domain.pipeline import Pipeline
from domain.template import Template, render
from domain.values import Actor

ACTOR = Actor(kind="user", id="u1")
PIPELINE = Pipeline.create_default(organization_id=uuid4(), actor=ACTOR)

# data that looks like templates, or nearly: every variable, braces, regex replacement syntax
TRICKY = st.sampled_from(
    [
        "{{lead.full_name}}",
        "{{ organization.name }}",
        "{{lead.custom.plan}}",
        "{{",
        "}}",
        "{",
        "{{user.full_name",
        r"\1",
        r"\g<0>",
        "%s",
        "{0}",
        "${x}",
    ]
)
DATA = st.lists(st.one_of(TRICKY, st.text(max_size=8)), max_size=6).map("".join)
NAMED = DATA.filter(lambda s: s.strip() != "" and "\x00" not in s).map(str.strip)
FIELD = DATA.filter(lambda s: "\x00" not in s)
LITERAL = st.text(st.characters(blacklist_characters="{}\x00"), max_size=10)
VARIABLES = ["lead.full_name", "lead.company", "lead.custom.plan", "user.full_name"]
VARIABLES += ["organization.name"]


def lead_with(full_name: str, company: str | None, plan: str) -> Lead:
    return Lead.capture(
        organization_id=PIPELINE.organization_id,
        pipeline_id=PIPELINE.id,
        stage=PIPELINE.stages[0].ref,
        details={"full_name": full_name, "company": company, "custom_fields": {"plan": plan}},
        assignee_id=None,
        actor=ACTOR,
    )


@settings(max_examples=300, deadline=None)
@given(
    full_name=NAMED.filter(lambda s: len(s) <= 200),
    company=st.one_of(st.none(), NAMED.filter(lambda s: len(s) <= 200)),
    plan=FIELD,
    user=FIELD,
    organization=FIELD,
    parts=st.lists(st.tuples(LITERAL, st.sampled_from(VARIABLES)), min_size=1, max_size=6),
    tail=LITERAL,
)
def test_any_lead_data_renders_exactly_and_is_never_expanded(
    full_name: str,
    company: str | None,
    plan: str,
    user: str,
    organization: str,
    parts: list[tuple[str, str]],
    tail: str,
) -> None:
    lead = lead_with(full_name, company, plan)
    body = "".join(f"{text}{{{{{name}}}}}" for text, name in parts) + tail
    saved = Template.create(
        organization_id=lead.organization_id,
        details={"name": "T", "body": "x" + body + "x"},  # text around: nothing stripped
        actor=ACTOR,
    )
    values: dict[str, Any] = {
        "lead.full_name": lead.full_name,
        "lead.company": lead.company or "",
        "lead.custom.plan": plan,
        "user.full_name": user,
        "organization.name": organization,
    }
    expected = "x" + "".join(text + values[name] for text, name in parts) + tail + "x"
    assert render(saved.body, values_for(lead, user, organization)) == expected
