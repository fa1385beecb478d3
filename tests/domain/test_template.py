"""The Template aggregate: variables checked when saved, variants taken in turn, deletion final."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidValueError
from domain.template import Template, TemplateDeletedError, render, variables_of
from domain.values import Actor

ACTOR = Actor(kind="user", id="u1")


def template(**details: object) -> Template:
    fields = {"name": "Greeting", "body": "Hi {{lead.full_name}}"} | details
    return Template.create(organization_id=uuid4(), details=fields, actor=ACTOR)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("Hi {{lead.email}}", "{{lead.email}}"),
        ("{{ lead.full_name }} {{user.password}}", "{{user.password}}"),
        ("{{lead.custom.}}", "{{lead.custom.}}"),
        ("{{}}", "{{}}"),
        ("{{lead.full_name.__class__}}", "{{lead.full_name.__class__}}"),
    ],
)
def test_an_unknown_variable_is_refused_naming_it(body: str, named: str) -> None:
    with pytest.raises(InvalidValueError) as refused:
        template(body=body)
    assert refused.value.field == "body"
    assert named in refused.value.message


def test_known_variables_with_spaces_inside_the_braces_are_accepted() -> None:
    body = "{{ lead.full_name }}, {{lead.company}} {{lead.custom.plan_2-b}} {{organization.name}}"
    assert variables_of(template(body=body).body) == [
        "lead.full_name",
        "lead.company",
        "lead.custom.plan_2-b",
        "organization.name",
    ]


def test_a_whatsapp_link_needs_both_a_name_and_a_language() -> None:
    with pytest.raises(InvalidValueError):
        template(whatsapp_template_name="hello")
    linked = template(whatsapp_template_name="hello", whatsapp_template_language="pt_BR")
    with pytest.raises(InvalidValueError):
        linked.change({"whatsapp_template_language": None}, actor=ACTOR)
    linked.change({"whatsapp_template_name": None, "whatsapp_template_language": None}, actor=ACTOR)
    assert linked.whatsapp_template_name is None


def test_uses_take_the_variants_in_turn() -> None:
    t = template(variants=["Hello {{lead.full_name}}", "Hey"])
    lead = uuid4()
    taken = []
    for _ in range(7):
        label, _body = t.next_variant()
        t.record_use(lead_id=lead, actor=ACTOR)
        taken.append(label)
    assert taken == ["A", "B", "C", "A", "B", "C", "A"]
    assert [e.variant for e in t.collect_events() if isinstance(e, Template.Used)] == taken


def test_a_change_records_only_what_differs_and_a_deleted_template_takes_nothing() -> None:
    t = template(tags=["nurture"])
    t.collect_events()
    t.change({"name": "Greeting", "tags": ["nurture", "nurture"]}, actor=ACTOR)
    assert t.collect_events() == []
    t.change({"name": "Welcome"}, actor=ACTOR)
    (changed,) = t.collect_events()
    assert (changed.changes, changed.previous) == ({"name": "Welcome"}, {"name": "Greeting"})
    t.delete(actor=ACTOR)
    for act in (
        lambda: t.delete(actor=ACTOR),
        lambda: t.change({"name": "x"}, actor=ACTOR),
        lambda: t.record_use(lead_id=uuid4(), actor=ACTOR),
    ):
        with pytest.raises(TemplateDeletedError):
            act()


def test_rendering_fills_missing_values_with_nothing_and_leaves_lone_braces_alone() -> None:
    assert render("{ {{lead.company}} }} {{", {}) == "{  }} {{"
    assert render("{{lead.full_name}}", {"lead.full_name": r"\1 \g<0>"}) == r"\1 \g<0>"
