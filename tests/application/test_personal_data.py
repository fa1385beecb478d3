"""The personal-data layer of the event store: values sealed per subject, opened on read, erased
for good when the subject's key is destroyed — on both backends, with the production keyring.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from application.leads.commands import (
    CaptureLead,
    ChangeLeadDetails,
    capture_lead,
    change_lead_details,
)
from application.personal_data import put_back, take_personal
from domain.conversation import Conversation
from domain.errors import VersionConflictError
from domain.lead import Lead
from domain.pipeline import Pipeline, default_pipeline_id
from domain.privacy import ERASED, PERSONAL_DATA, PersonalDataErasedError
from interfaces.privacy import LocalKeyWrapper, SubjectKeyring, keyring_for, subject_keys
from interfaces.services import Services, build_app
from tests.application.test_handlers import owner_of

MASTER = "a master key long enough for the tests"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False)
)
states = st.fixed_dictionaries(
    {
        "full_name": st.text(min_size=1, max_size=30),
        "email": st.one_of(st.none(), st.emails()),
        "phone": st.one_of(st.none(), st.text(max_size=16)),
        "company": st.one_of(st.none(), st.text(max_size=10)),
        "custom_fields": st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=5),
    }
)


@settings(max_examples=200, deadline=None)
@given(state=states)
def test_taking_the_personal_values_out_and_putting_them_back_gives_the_state_again(
    state: dict[str, Any],
) -> None:
    original = json.loads(json.dumps(state))
    working = dict(state)
    taken = take_personal(working, PERSONAL_DATA["Lead.Captured"].paths)
    assert state == original  # the event's own dictionaries are never changed
    assert all(value is not None for _, value in taken)
    assert working["company"] == state["company"]  # not personal: stays where it was
    for path, _ in taken:  # each taken value is gone from the state
        container: Any = working
        for key in path[:-1]:
            container = container[key]
        assert path[-1] not in container
    expected = {
        ("full_name",),
        *((k,) for k in ("email", "phone") if state[k] is not None),
        *(("custom_fields", k) for k, v in state["custom_fields"].items() if v is not None),
    }
    assert {path for path, _ in taken} == expected
    put_back(working, taken)
    assert working == original


def _stored(services: Services, aggregate_id: UUID) -> list[StoredEvent]:
    return list(services.app.recorder.select_events(aggregate_id))


def test_a_lead_is_stored_sealed_and_read_in_clear_until_its_key_is_destroyed(
    services: Services,
) -> None:
    ctx = owner_of(services)
    org = ctx.organization_id
    done = capture_lead(
        services.app,
        CaptureLead(
            full_name="Benedita Arruda",
            email="bene@exemplo.com",
            phone="+5521999990000",
            company="Arruda Ltda",
            custom_fields={"rg": "12.345.678-9", "tier": None},
        ),
        ctx,
    )
    change_lead_details(services.app, done.id, ChangeLeadDetails(email="b2@exemplo.com"), ctx)
    raw = b" ".join(e.state for e in _stored(services, done.id))
    for secret in (b"Benedita", b"bene@exemplo", b"5521999990000", b"12.345.678-9", b"b2@exemplo"):
        assert secret not in raw
    assert b"Arruda Ltda" in raw  # a company is not personal data
    assert b'"p":[["full_name"]' in raw  # which fields were sealed stays readable

    lead = services.app.load(Lead, done.id, org)
    assert (lead.full_name, lead.email, lead.custom_fields) == (
        "Benedita Arruda",
        "b2@exemplo.com",
        {"rg": "12.345.678-9", "tier": None},
    )
    changed = list(services.app.events.get(done.id))[1]
    assert changed.previous == {"email": "bene@exemplo.com"}  # type: ignore[attr-defined]

    keyring = services.app.personal_data.get()
    assert keyring.erase(org, done.id)
    assert not keyring.erase(org, done.id)  # once
    lead = services.app.load(Lead, done.id, org)
    assert (lead.full_name, lead.email, lead.phone, lead.company) == (
        ERASED,
        ERASED,
        ERASED,
        "Arruda Ltda",
    )
    assert lead.custom_fields == {"rg": ERASED, "tier": None}
    with pytest.raises(PersonalDataErasedError):
        keyring.seal(org, done.id, b"anything new")
    with services.engine.connect() as conn:
        row = conn.execute(
            sa.select(subject_keys).where(subject_keys.c.subject_id == done.id)
        ).one()
    assert row.wrapped_key is None and row.erased_at is not None


def test_keys_are_stored_wrapped_per_subject_and_bound_to_it(services: Services) -> None:
    ctx = owner_of(services)
    org = ctx.organization_id
    keyring = SubjectKeyring(services.engine, LocalKeyWrapper(MASTER))
    a, b = uuid4(), uuid4()
    token = keyring.seal(org, a, b"secret of a")
    keyring.seal(org, b, b"secret of b")
    assert keyring.open(org, a, token) == b"secret of a"
    with pytest.raises(ValueError, match="does not open"):
        keyring.open(org, b, token)  # a value copied under another subject
    with services.engine.connect() as conn:
        wrapped = conn.execute(
            sa.select(subject_keys.c.wrapped_key).where(subject_keys.c.subject_id == a)
        ).scalar_one()
    assert len(wrapped) == 12 + 32 + 16  # nonce, 256-bit key, tag
    with pytest.raises(ValueError, match="master key"):
        LocalKeyWrapper("another master key of enough length").unwrap(org, a, wrapped)
    # another process (its own cache) sees the erasure once its cached entry expires
    other = SubjectKeyring(services.engine, LocalKeyWrapper(MASTER), ttl=0)
    assert other.open(org, a, token) == b"secret of a"
    keyring.erase(org, a)
    assert other.open(org, a, token) is None
    assert other.is_erased(org, a) and not other.is_erased(org, b)


def test_events_stored_before_sealing_existed_are_read_as_they_were(services: Services) -> None:
    """A v1 message (no lead id, text in clear) is upcast and read; nothing is lost."""
    ctx = owner_of(services)
    conversation_id = uuid4()
    mapper = services.app.mapper
    started = Conversation.start(
        id=conversation_id,
        organization_id=ctx.organization_id,
        lead_id=uuid4(),
        channel="whatsapp",
        contact="+5511912345678",
        actor=ctx.actor,
    )
    [event] = started.collect_events()
    now = datetime.now(UTC)
    v1_state = {  # the shape of a v1 MessageReceived, encoded by the production transcoder
        "organization_id": ctx.organization_id,
        "actor": ctx.actor,
        "timestamp": now,
        "message_id": uuid4(),
        "provider_message_id": "wamid.old",
        "provider_type": "web_bridge",
        "text": "written before sealing",
        "contact_name": "Old Contact",
        "sent_at": now,
    }
    old = StoredEvent(
        originator_id=conversation_id,
        originator_version=2,
        topic="domain.conversation:Conversation.MessageReceived",
        state=mapper.transcoder.encode(v1_state),
    )
    decoded = mapper.to_domain_event(old)
    assert decoded.lead_id is None  # type: ignore[attr-defined]
    assert decoded.text == "written before sealing"  # type: ignore[attr-defined]
    # and a new one is stored sealed, naming its lead
    fresh = mapper.to_stored_event(event)
    assert b"5511912345678" not in fresh.state
    assert mapper.to_domain_event(fresh).contact == "+5511912345678"  # type: ignore[attr-defined]


def test_a_batch_of_events_gets_its_keys_in_one_lookup(services: Services) -> None:
    ctx = owner_of(services)
    leads = [
        capture_lead(services.app, CaptureLead(full_name=f"Pessoa {i}", email=f"p{i}@x.com"), ctx)
        for i in range(30)
    ]
    stored = [e for lead in leads for e in _stored(services, lead.id)]
    settings_ = services.settings
    # a fresh process: nothing cached
    services.app.personal_data.cipher = keyring_for(
        services.engine, settings_.master_key, settings_.secret_key
    )
    statements: list[str] = []

    me = threading.get_ident()  # the projectors of `services` read keys too, in their thread

    def count(*args: Any) -> None:
        if threading.get_ident() == me:
            statements.append(str(args[2]))

    sa.event.listen(services.engine, "before_cursor_execute", count)
    try:
        services.app.mapper.prefetch(stored)  # type: ignore[attr-defined]
        names = [services.app.mapper.to_domain_event(e).full_name for e in stored]  # type: ignore[attr-defined]
    finally:
        sa.event.remove(services.engine, "before_cursor_execute", count)
    assert names == [f"Pessoa {i}" for i in range(30)]
    assert len([s for s in statements if "privacy_subject_keys" in s]) == 1


def test_a_new_key_is_written_with_its_events_and_a_lost_race_leaves_no_second_key(
    services: Services,
) -> None:
    """Two processes capture the same new lead at once: one wins; there is one key, the
    winner's, and everyone (the loser included) reads the lead with it."""
    ctx = owner_of(services)
    org = ctx.organization_id
    pipeline = services.app.load(Pipeline, default_pipeline_id(org), org)
    lead_id = uuid4()
    apps = [build_app(services.settings, services.engine) for _ in range(2)]

    def capture(i: int) -> str:
        lead = Lead.capture(
            id=lead_id,
            organization_id=org,
            pipeline_id=pipeline.id,
            stage=pipeline.stages[0].ref,
            details={"full_name": f"Racer {i}", "email": f"r{i}@x.com"},
            assignee_id=None,
            actor=ctx.actor,
        )
        try:
            apps[i].commit(lead)
        except VersionConflictError:
            return "lost"
        return f"Racer {i}"

    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(capture, range(2)))
        [winner] = [o for o in outcomes if o != "lost"]
        with services.engine.connect() as conn:
            keys = conn.execute(
                sa.select(sa.func.count()).where(subject_keys.c.subject_id == lead_id)
            ).scalar_one()
        assert keys == 1
        for app in [*apps, build_app(services.settings, services.engine)]:
            assert app.load(Lead, lead_id, org).full_name == winner
    finally:
        for app in apps:
            app.close()


def test_no_key_is_left_behind_by_a_commit_that_failed(services: Services) -> None:
    ctx = owner_of(services)
    org = ctx.organization_id
    done = capture_lead(services.app, CaptureLead(full_name="Existing"), ctx)
    pipeline = services.app.load(Pipeline, default_pipeline_id(org), org)
    twin = Lead.capture(  # the same id again: the insert of its events fails
        id=done.id,
        organization_id=org,
        pipeline_id=pipeline.id,
        stage=pipeline.stages[0].ref,
        details={"full_name": "Twin"},
        assignee_id=None,
        actor=ctx.actor,
    )
    other = Lead.capture(
        organization_id=org,
        pipeline_id=pipeline.id,
        stage=pipeline.stages[0].ref,
        details={"full_name": "Other"},
        assignee_id=None,
        actor=ctx.actor,
    )
    with pytest.raises(VersionConflictError):
        services.app.commit(twin, other)  # one transaction: neither is stored
    with services.engine.connect() as conn:
        keys = conn.execute(
            sa.select(sa.func.count()).where(subject_keys.c.subject_id == other.id)
        ).scalar_one()
    assert keys == 0
    assert services.app.load(Lead, done.id, org).full_name == "Existing"


def test_a_commit_sealing_with_a_key_another_commit_made_writes_that_key_too(
    services: Services,
) -> None:
    """Two first messages from one number, in two threads: both seal the new lead with the key
    the first made. If only the first commit carried the key and lost the race to the second,
    the second's events would be stored sealed with a key no one stores - unreadable forever
    (and the projectors stuck on them). So each carries it; whichever commits first stores it."""
    keyring = services.app.personal_data.get()
    assert isinstance(keyring, SubjectKeyring)
    subject = (owner_of(services).organization_id, uuid4())

    first = keyring.prepare([subject], fresh=[subject])
    second = keyring.prepare([subject], fresh=[subject])

    assert len(first) == 1
    assert second == first  # the same wrapped key, for the second commit to write as well
    keyring.settle([subject], stored=False)  # the first lost its race...
    keyring.settle([subject], stored=True)  # ...the second stored the key: both agree on it
