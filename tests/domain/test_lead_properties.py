"""Properties of any sequence of lead commands: invariants hold, and events rebuild the lead."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import Mapper
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from domain.errors import LeadArchivedError
from domain.values import STATUS_OF_STAGE_TYPE
from tests.domain.builders import (
    ACTOR,
    attempt,
    default_pipeline,
    new_lead,
    replay,
    through_the_event_store,
)

PIPELINE = default_pipeline()
STAGES = st.sampled_from([s.ref for s in PIPELINE.stages])
USERS = st.sampled_from([None, uuid4(), uuid4()])
CUSTOM = st.dictionaries(
    st.sampled_from(["tier", "seats", "plan", "region"]),
    st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=4), st.floats(-1e6, 1e6)),
    max_size=2,
)
GOOD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "full_name": st.sampled_from(["Ada", " Grace Hopper "]),
    "email": st.sampled_from([None, "", "ada@example.com", "GRACE@Example.org"]),
    "phone": st.sampled_from([None, "+44 20 7946 0000", "555-0100"]),
    "company": st.sampled_from([None, "", "Acme", " Initech "]),
    "source": st.sampled_from([None, "web", "referral"]),
    "estimated_value": st.one_of(
        st.none(),
        st.decimals(min_value=0, max_value=10**6, places=2),
        st.integers(0, 10**6),
        st.just("12.345"),
    ),
    "custom_fields": st.none() | CUSTOM,
}
BAD_VALUES = st.sampled_from(
    [
        ("full_name", None),
        ("full_name", " "),
        ("email", "nope"),
        ("phone", "12"),
        ("source", "x" * 101),
        ("estimated_value", "-1"),
        ("estimated_value", "NaN"),
        ("custom_fields", {"bad": [1]}),
        ("stage_id", uuid4()),  # not a lead field
    ]
)
DETAILS = st.lists(st.sampled_from(sorted(GOOD_VALUES)), max_size=3, unique=True).flatmap(
    lambda fields: st.fixed_dictionaries({f: GOOD_VALUES[f] for f in fields})
)
TEXT = st.text(st.sampled_from("ab \n"), max_size=6)


class LeadCommands(RuleBasedStateMachine):
    """Random commands on one lead, each either applied or refused with a DomainError.

    At the end, the recorded events (as they are and as read back from the store's mapper)
    rebuild a lead equal to the one the commands produced.
    """

    mapper: Mapper[UUID]

    def __init__(self) -> None:
        super().__init__()
        self.lead = new_lead(PIPELINE, custom_fields={"tier": 1})
        self.events: list[Any] = list(self.lead.collect_events())

    def run(self, command: Callable[[], object]) -> None:
        was_archived, version = self.lead.archived, self.lead.version
        refusal = attempt(self.lead, command)
        new = self.lead.collect_events()
        if was_archived:
            assert isinstance(refusal, LeadArchivedError) and self.lead.version == version
        if refusal is not None:
            assert new == []
        self.events.extend(new)

    @rule(stage=STAGES, reason=st.none() | TEXT)
    def move_to(self, stage: Any, reason: str | None) -> None:
        self.run(lambda: self.lead.move_to(stage, actor=ACTOR, reason=reason))

    @rule()
    def win(self) -> None:
        self.run(lambda: self.lead.win(PIPELINE.stages[4].ref, actor=ACTOR))

    @rule(reason=st.none() | TEXT | st.just("x" * 501))
    def lose(self, reason: str | None) -> None:
        self.run(lambda: self.lead.lose(PIPELINE.stages[5].ref, reason=reason, actor=ACTOR))

    @rule(index=st.integers(0, 3))
    def reopen(self, index: int) -> None:
        self.run(lambda: self.lead.reopen(PIPELINE.stages[index].ref, actor=ACTOR))

    @rule(user=USERS)
    def assign(self, user: UUID | None) -> None:
        self.run(lambda: self.lead.assign(user, actor=ACTOR))

    @rule(text=TEXT)
    def add_note(self, text: str) -> None:
        self.run(lambda: self.lead.add_note(text, actor=ACTOR))

    @rule(details=DETAILS)
    def change_details(self, details: dict[str, Any]) -> None:
        self.run(lambda: self.lead.change_details(details, actor=ACTOR))

    @rule(details=DETAILS, bad=BAD_VALUES)
    def change_details_with_a_bad_value(self, details: dict[str, Any], bad: Any) -> None:
        field, value = bad
        self.run(lambda: self.lead.change_details({**details, field: value}, actor=ACTOR))

    @rule(dice=st.integers(0, 5))
    def archive(self, dice: int) -> None:
        if dice == 0:  # rarely, so that most sequences stay long enough to be interesting
            self.run(lambda: self.lead.archive(actor=ACTOR))

    @invariant()
    def status_follows_the_type_of_the_stage(self) -> None:
        stage = PIPELINE.stage(self.lead.stage_id)
        assert self.lead.status is STATUS_OF_STAGE_TYPE[stage.stage_type]

    @invariant()
    def version_counts_the_recorded_events(self) -> None:
        assert self.lead.version == len(self.events)
        assert [e.originator_version for e in self.events] == list(range(1, len(self.events) + 1))

    @invariant()
    def details_stay_clean(self) -> None:
        assert self.lead.full_name and self.lead.full_name == self.lead.full_name.strip()
        value = self.lead.estimated_value
        assert value is None or (isinstance(value, Decimal) and value >= 0)

    def teardown(self) -> None:
        assert replay(self.events) == self.lead
        assert replay(through_the_event_store(self.mapper, self.events)) == self.lead


SETTINGS = settings(max_examples=200, stateful_step_count=25, deadline=None)


def test_any_sequence_of_lead_commands_keeps_the_invariants_and_replays_to_an_equal_lead(
    event_mapper: Mapper[UUID],
) -> None:
    LeadCommands.mapper = event_mapper
    run_state_machine_as_test(LeadCommands, settings=SETTINGS)
