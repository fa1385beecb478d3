"""The audit trail has exactly one row per stored event — whatever commands ran in whichever
organizations, and however the projector's batches fell — on both backends."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from application.audit import export as audit
from application.audit.chain import ChainBrokenError, verify
from application.context import Ctx
from application.identity import organizations
from application.identity.accounts import Register, register
from application.leads import commands as leads
from application.leads import pipelines
from domain.errors import DomainError
from domain.pipeline import Pipeline, default_pipeline_id
from domain.values import Actor, Role
from interfaces.services import Services
from projections.audit import AuditProjector, rm_audit_events
from tests.projections import test_runner
from tests.projections.test_runner import runner_for
from tests.support.api import CheapHasher

fresh = test_runner.fresh  # services on a database of their own, on each backend

LEAD_STEPS = ("capture", "move", "assign", "note", "details", "win", "lose", "reopen", "archive")
#: a step: what, which organization (or batch size), which lead or stage; lead steps weigh most
KINDS = (*LEAD_STEPS, *LEAD_STEPS, "register", "project", "rename", "timezone")
step = st.tuples(st.sampled_from(KINDS), st.integers(0, 99), st.integers(0, 99))


@dataclass
class World:
    """The organizations and leads the commands so far made (examples share one database)."""

    services: Services
    tenants: list[Ctx] = field(default_factory=list)
    leads: dict[UUID, list[UUID]] = field(default_factory=dict)

    def register(self) -> None:
        cmd = Register(f"{uuid4().hex}@audit.example", "correct horse battery", "Owner", "Org")
        app, users = self.services.app, self.services.users
        done = register(app, users, CheapHasher(), cmd, ip="10.1.2.3", user_agent="hypothesis")
        actor = Actor(kind="user", id=str(done.user_id), ip="10.1.2.3")
        self.tenants.append(Ctx(done.organization_id, done.user_id, Role.ADMIN, actor))
        self.leads[done.organization_id] = []

    def run(self, kind: str, which: int, choice: int) -> None:
        if kind == "register" or not self.tenants:
            self.register()
        elif kind == "project":
            runner_for(self.services, [AuditProjector()], batch=1 + which % 30).catch_up()
        elif kind in ("rename", "timezone"):
            ctx = self.tenants[which % len(self.tenants)]
            zone = ["UTC", "America/Sao_Paulo", "Asia/Tokyo"][choice % 3]
            cmd = (
                organizations.ChangeOrganization(name=f"Org {choice}")
                if kind == "rename"
                else organizations.ChangeOrganization(timezone=zone)
            )
            organizations.change_organization(self.services.app, cmd, ctx)
        else:
            self.lead_step(kind, which, choice)

    def lead_step(self, kind: str, which: int, choice: int) -> None:
        app = self.services.app
        ctx = self.tenants[which % len(self.tenants)]
        mine = self.leads[ctx.organization_id]
        if kind == "capture" or not mine:
            cmd = leads.CaptureLead(f"Lead {choice}", estimated_value=Decimal(choice))
            mine.append(leads.capture_lead(app, cmd, ctx).id)
            return
        lead = mine[choice % len(mine)]
        stages = app.view(Pipeline, default_pipeline_id(ctx.organization_id), ctx.organization_id)
        try:
            if kind == "move":
                stage = stages.stages[choice % len(stages.stages)].id
                leads.move_lead_to_stage(app, lead, stage, None, ctx)
            elif kind == "assign":
                leads.assign_lead(app, lead, ctx.user_id if choice % 2 else None, ctx)
            elif kind == "note":
                leads.add_note(app, lead, f"note {choice}", ctx)
            elif kind == "details":
                change = leads.ChangeLeadDetails(company=f"Co {choice}")
                leads.change_lead_details(app, lead, change, ctx)
            elif kind == "win":
                leads.win_lead(app, lead, ctx)
            elif kind == "lose":
                leads.lose_lead(app, lead, None, ctx)
            elif kind == "reopen":
                leads.reopen_lead(app, lead, None, ctx)
            elif choice % 3 == 0:  # archive rarely: an archived lead refuses most commands
                leads.archive_lead(app, lead, ctx)
            else:
                pipelines.add_stage(app, pipelines.AddStage(f"Stage {choice}", "#123456"), ctx)
        except DomainError:
            pass  # refused (a closed or archived lead): nothing was stored


def stored_events(world: World) -> set[tuple[UUID, int, UUID, int, str]]:
    """(organization, position, aggregate, version, type) of every stored event, read by the
    event store's organization column, organization by organization."""
    recorder: Any = world.services.app.recorder
    found = set()
    for ctx in world.tenants:
        org = ctx.organization_id
        for n in recorder.select_organization_notifications(org, limit=1_000_000):
            found.add((org, n.id, n.originator_id, n.originator_version, n.topic.split(":")[-1]))
    return found


def test_every_stored_event_has_exactly_one_audit_row(fresh: Services) -> None:
    world = World(fresh)
    columns = rm_audit_events.c

    @settings(max_examples=20, deadline=None)
    @given(
        steps=st.lists(step, min_size=3, max_size=30),
        batch=st.integers(1, 50),
        flip=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 255)),
    )
    def commands_then_projection(
        steps: list[tuple[str, int, int]], batch: int, flip: tuple[int, int, int]
    ) -> None:
        for kind, which, choice in steps:
            world.run(kind, which, choice)
        runner_for(fresh, [AuditProjector()], batch=batch).catch_up()

        expected = stored_events(world)
        every = fresh.app.recorder.select_notifications(start=1, limit=1_000_000)
        with fresh.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    columns.organization_id,
                    columns.position,
                    columns.resource_id,
                    columns.version,
                    columns.event_type,
                )
            ).all()
        assert {e[1] for e in expected} == {n.id for n in every}  # each event has a tenant
        assert len(expected) == len(every)
        positions = [r.position for r in rows]
        assert len(positions) == len(set(positions)), "an event has two audit rows"
        assert {tuple(r) for r in rows} == expected
        exported_then_verified(world, expected, flip)

    commands_then_projection()


def exported_then_verified(
    world: World, expected: set[tuple[UUID, int, UUID, int, str]], flip: tuple[int, int, int]
) -> None:
    """Each organization's hash-chained export verifies and holds its events up to where it
    started; one byte changed anywhere in one of them is named at its line."""
    for ctx in world.tenants:
        export = audit.start_export(
            world.services.app, ctx.organization_id, audit.parse_filters(), ctx.actor, channel="cli"
        )
        raw = b"".join(audit.ExportLines(world.services.app, export))
        verified = verify(io.BytesIO(raw))
        mine = [e for e in expected if e[0] == ctx.organization_id and e[1] <= export.up_to]
        assert verified.count >= len(mine)  # and the exports recorded meanwhile
    lines = raw.splitlines(keepends=True)
    number = flip[0] % len(lines)
    line = bytearray(lines[number])
    line[flip[1] % len(line)] ^= flip[2]
    altered = b"".join([*lines[:number], bytes(line), *lines[number + 1 :]])
    with pytest.raises(ChainBrokenError) as broken:
        verify(io.BytesIO(altered))
    assert broken.value.line == number + 1
