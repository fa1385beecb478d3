"""Assignment-rules read model: which organization a rule id belongs to, and its name.

The rules themselves are read from their aggregate (a small configuration, read back at once
after an edit); this table answers the platform's question when someone asks for a rule id
their organization does not hold — whose it is, so that organization's trail records the
attempt (`application/identity/incidents.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.assignment import AssignmentRules
from projections.base import Envelope, Projector, metadata

rm_assignment_rules = sa.Table(
    "rm_assignment_rules",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("rule_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    # no index from the rule id: the lookup across organizations is rare (an attempt on an id
    # not one's own) and the table small (at most 100 rules an organization)
)


class AssignmentRulesProjector(Projector):
    name = "assignment_rules"
    tables = (rm_assignment_rules,)
    handles = frozenset(f"AssignmentRules.{n}" for n in ("RuleAdded", "RuleChanged", "RuleRemoved"))

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        c = rm_assignment_rules.c
        for env in batch:
            e = env.event
            key = (c.organization_id == e.organization_id, c.rule_id == e.rule_id)
            if isinstance(e, AssignmentRules.RuleAdded):
                conn.execute(
                    rm_assignment_rules.insert().values(
                        organization_id=e.organization_id, rule_id=e.rule_id, name=e.name
                    )
                )
            elif isinstance(e, AssignmentRules.RuleChanged):
                conn.execute(rm_assignment_rules.update().where(*key).values(name=e.name))
            elif isinstance(e, AssignmentRules.RuleRemoved):
                conn.execute(rm_assignment_rules.delete().where(*key))
