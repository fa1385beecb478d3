"""Personal data inside events: which values are a person's, and what erasing them leaves.

Each event class that carries personal data names the attribute holding its **subject** (the
person the data is about: a lead's id, an invitation's id) and the paths of its personal values.
The event store seals those values with the subject's own data key before they are stored and
opens them when events are read, so aggregates and projectors see plain values and never
ciphertext. Erasing a person destroys the subject's key (crypto-shredding): the stored events
stay as they are, and every sealed value of that subject then reads as `ERASED`.

A path is a tuple of attribute/key names; `"*"` stands for every key of a dictionary (custom
fields and template variables may each hold personal data, so all of their values are sealed;
their keys - the field names - are not personal and stay readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import RuleViolationError

ERASED = "[erased]"

Path = tuple[str, ...]


def erased(value: Any) -> Any:
    """What a personal value reads as once its subject is erased (None stays None)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: erased(item) for k, item in value.items()}
    return ERASED


@dataclass(frozen=True)
class PersonalFields:
    """Where an event class keeps personal values, and whose they are."""

    subject: str
    paths: tuple[Path, ...]


_LEAD_DETAILS: tuple[Path, ...] = (
    ("full_name",),
    ("email",),
    ("phone",),
    ("custom_fields", "*"),
)


def _under(prefix: str, paths: tuple[Path, ...]) -> tuple[Path, ...]:
    return tuple((prefix, *p) for p in paths)


#: event class qualname -> where its personal values are
PERSONAL_DATA: dict[str, PersonalFields] = {
    "Lead.Captured": PersonalFields("originator_id", _LEAD_DETAILS),
    "Lead.DetailsChanged": PersonalFields(
        "originator_id", _under("changes", _LEAD_DETAILS) + _under("previous", _LEAD_DETAILS)
    ),
    "Lead.NoteAdded": PersonalFields("originator_id", (("text",),)),
    "Conversation.Started": PersonalFields("lead_id", (("contact",),)),
    "Conversation.Resumed": PersonalFields("lead_id", (("contact",),)),
    "Conversation.MessageReceived": PersonalFields("lead_id", (("text",), ("contact_name",))),
    "Conversation.MessageSent": PersonalFields("lead_id", (("text",), ("template_variables", "*"))),
    "Conversation.MessageAnalysed": PersonalFields("lead_id", (("summary",),)),
    "Call.Started": PersonalFields("lead_id", (("from_number",), ("to_number",))),
    "Organization.InvitationSent": PersonalFields("invitation_id", (("email",),)),
    # a failed login names the email tried (a user's, or nobody's): sealed per incident
    "SecurityIncident.Recorded": PersonalFields("originator_id", (("details", "email"),)),
}


class PersonalDataErasedError(RuleViolationError):
    """The person's data was erased: nothing personal can be recorded about them again."""
