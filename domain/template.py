"""The Template aggregate: a message a team reuses, with variables filled in for each lead.

Invariants: every `{{…}}` in a body names a known variable (checked when the template is
saved, so a use never meets an unknown one); a WhatsApp template link has both a name and a
language or neither; a deleted template takes no more changes nor uses. A/B variants: the
body is variant A, each extra body B, C, …; uses alternate between them by the template's own
use count, so two concurrent uses conflict on the version and the loser retries with the next
variant (fair under concurrency).

Rendering is one pass of a regular expression over the template's body: each variable is
replaced by its value verbatim, and values are never scanned again, so a lead whose name is
`{{organization.name}}` is greeted by that text, never by the organization's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, RuleViolationError
from domain.values import Actor

#: `{{ name }}`: anything between double braces is a variable reference, spaces around it ignored
VARIABLE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
FIXED_VARIABLES = frozenset(
    {"lead.full_name", "lead.company", "user.full_name", "organization.name"}
)
CUSTOM_PREFIX = "lead.custom."
_CUSTOM_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
BODY_MAX = 4096
MAX_VARIANTS = 4  # besides the body: A plus B…E
MAX_STAGES = 50
MAX_TAGS = 20
EDITABLE = (
    "name",
    "category",
    "stage_ids",
    "body",
    "variants",
    "whatsapp_template_name",
    "whatsapp_template_language",
    "tags",
)


class TemplateDeletedError(RuleViolationError):
    """A deleted template keeps its history and statistics but is no longer used or changed."""


def is_known(name: str) -> bool:
    if name in FIXED_VARIABLES:
        return True
    return name.startswith(CUSTOM_PREFIX) and bool(
        _CUSTOM_KEY.fullmatch(name[len(CUSTOM_PREFIX) :])
    )


def variables_of(body: str) -> list[str]:
    """The variables a body refers to, in order of appearance (repeats included)."""
    return [m.group(1) for m in VARIABLE.finditer(body)]


def check_variables(field: str, body: str) -> None:
    unknown = [name for name in variables_of(body) if not is_known(name)]
    if unknown:
        names = ", ".join(f"{{{{{n}}}}}" for n in dict.fromkeys(unknown))
        known = ", ".join(f"{{{{{n}}}}}" for n in sorted(FIXED_VARIABLES))
        raise InvalidValueError(
            field, f"unknown variable {names}; known: {known}, {{{{lead.custom.KEY}}}}"
        )


def render(body: str, values: Mapping[str, str]) -> str:
    """Fill in every variable of `body` in one pass; a missing value renders empty.

    `re.sub` with a function inserts what it returns as it is (no group references, no
    second scan): the data can never be taken for template syntax.
    """
    return VARIABLE.sub(lambda m: values.get(m.group(1), ""), body)


def variant_label(index: int) -> str:
    return chr(ord("A") + index)


def _body(field: str, value: str) -> str:
    cleaned = v.text(field, value, max_length=BODY_MAX)
    check_variables(field, cleaned)
    return cleaned


def _labels(field: str, values: list[str], *, limit: int, max_length: int) -> list[str]:
    if len(values) > limit:
        raise InvalidValueError(field, f"at most {limit} values")
    cleaned = [v.text(field, item, max_length=max_length) for item in values]
    return list(dict.fromkeys(cleaned))


def clean(details: dict[str, Any]) -> dict[str, Any]:
    """Validated template fields; unknown fields are an error."""
    out: dict[str, Any] = {}
    for field, value in details.items():
        if field == "name":
            out[field] = v.text("name", value, max_length=200)
        elif field == "category":
            out[field] = v.optional_text("category", value, max_length=100)
        elif field == "body":
            out[field] = _body("body", value)
        elif field == "variants":
            if len(value) > MAX_VARIANTS:
                raise InvalidValueError("variants", f"at most {MAX_VARIANTS} variants")
            out[field] = [_body(f"variants[{i}]", b) for i, b in enumerate(value)]
        elif field == "stage_ids":
            if len(value) > MAX_STAGES:
                raise InvalidValueError("stage_ids", f"at most {MAX_STAGES} stages")
            out[field] = list(dict.fromkeys(value))
        elif field == "tags":
            out[field] = _labels("tags", value, limit=MAX_TAGS, max_length=50)
        elif field == "whatsapp_template_name":
            out[field] = v.optional_text(field, value, max_length=200)
        elif field == "whatsapp_template_language":
            out[field] = v.optional_text(field, value, max_length=20)
        else:
            raise InvalidValueError(field, "is not a template field")
    return out


def _check_link(fields: Mapping[str, Any]) -> None:
    name = fields.get("whatsapp_template_name")
    language = fields.get("whatsapp_template_language")
    if (name is None) != (language is None):
        raise InvalidValueError(
            "whatsapp_template_language" if language is None else "whatsapp_template_name",
            "a WhatsApp template link needs both a name and a language",
        )


class Template(TenantAggregate):
    """A reusable message of one organization."""

    name: str
    category: str | None
    stage_ids: list[UUID]
    body: str
    variants: list[str]
    whatsapp_template_name: str | None
    whatsapp_template_language: str | None
    tags: list[str]
    deleted: bool
    uses: int

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Created(TenantAggregate.Created):
        name: str
        category: str | None
        stage_ids: list[UUID]
        body: str
        variants: list[str]
        whatsapp_template_name: str | None
        whatsapp_template_language: str | None
        tags: list[str]

        def apply(self, t: Template) -> None:
            t.organization_id = self.organization_id
            for field in EDITABLE:
                setattr(t, field, getattr(self, field))
            t.deleted = False
            t.uses = 0

    class DetailsChanged(TenantAggregate.Event):
        """Some fields changed (named like `Lead.DetailsChanged`: the audit trail shows each
        field's before and after)."""

        changes: dict[str, Any]
        previous: dict[str, Any]

        def apply(self, t: Template) -> None:
            for field, value in self.changes.items():
                setattr(t, field, value)

    class Deleted(TenantAggregate.Event):
        def apply(self, t: Template) -> None:
            t.deleted = True

    class Used(TenantAggregate.Event):
        """Rendered for a lead (and sent, when `message_id` is set). The rendered text is not
        kept here: it holds the lead's personal data; a sent one is sealed in its message."""

        lead_id: UUID
        variant: str
        sent_as: str | None  # "text", "whatsapp_template" or None (rendered only)
        conversation_id: UUID | None
        message_id: UUID | None

        def apply(self, t: Template) -> None:
            t.uses += 1

    @classmethod
    def create(
        cls, *, organization_id: UUID, details: dict[str, Any], actor: Actor, id: UUID | None = None
    ) -> Template:
        for required in ("name", "body"):
            if required not in details:
                raise InvalidValueError(required, "is required")
        fields: dict[str, Any] = {"category": None, "stage_ids": [], "variants": [], "tags": []}
        fields |= {"whatsapp_template_name": None, "whatsapp_template_language": None}
        fields |= clean(details)
        _check_link(fields)
        return cls._create(
            cls.Created, id=id or uuid4(), organization_id=organization_id, actor=actor, **fields
        )

    def change(self, details: dict[str, Any], *, actor: Actor) -> None:
        self._check_not_deleted()
        cleaned = clean(details)
        _check_link({f: getattr(self, f) for f in EDITABLE} | cleaned)
        changes = {k: val for k, val in cleaned.items() if getattr(self, k) != val}
        if changes:
            previous = {k: getattr(self, k) for k in changes}
            self.trigger_event(self.DetailsChanged, changes=changes, previous=previous, actor=actor)

    def delete(self, *, actor: Actor) -> None:
        self._check_not_deleted()
        self.trigger_event(self.Deleted, actor=actor)

    @property
    def bodies(self) -> list[str]:
        return [self.body, *self.variants]

    def next_variant(self) -> tuple[str, str]:
        """The variant the next use gets (label, body): round-robin by the use count."""
        index = self.uses % len(self.bodies)
        return variant_label(index), self.bodies[index]

    def record_use(
        self,
        *,
        lead_id: UUID,
        actor: Actor,
        sent_as: str | None = None,
        conversation_id: UUID | None = None,
        message_id: UUID | None = None,
    ) -> None:
        """Record a use of the variant `next_variant` gave (the use count moves it on)."""
        self._check_not_deleted()
        self.trigger_event(
            self.Used,
            lead_id=lead_id,
            variant=self.next_variant()[0],
            sent_as=sent_as,
            conversation_id=conversation_id,
            message_id=message_id,
            actor=actor,
        )

    def _check_not_deleted(self) -> None:
        if self.deleted:
            raise TemplateDeletedError(f"template {self.id} is deleted")
