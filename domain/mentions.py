"""@-mentions in a note's text: `@[Display name](member-uuid)`, the form a web app's member
picker writes (the label is for people; only the id counts).

Parsing only finds candidate ids; whether each names a member of the note's organization is
decided by the use case, which drops any that do not (they stay plain text, nobody is told).
"""

from __future__ import annotations

import re
from uuid import UUID

MAX_MENTIONS = 50

_MENTION = re.compile(
    r"@\[[^\]\n]{1,200}\]\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)"
)


def mentioned_ids(text: str) -> list[UUID]:
    """The ids mentioned in `text`, each once, in order of first mention (at most 50)."""
    found: dict[UUID, None] = {}
    for match in _MENTION.finditer(text):
        found.setdefault(UUID(match.group(1)), None)
        if len(found) >= MAX_MENTIONS:
            break
    return list(found)
