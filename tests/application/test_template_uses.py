"""Uses of one template from many threads at once: each is recorded once, and the variants
alternate strictly in the template's own order (fair, through version conflicts and retries)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from application.leads import commands as leads
from application.work import templates as cmds
from domain.template import Template
from interfaces.services import Services
from tests.application.test_handlers import owner_of


def test_concurrent_uses_alternate_between_variants_fairly(services: Services) -> None:
    ctx = owner_of(services)
    app = services.app
    created = cmds.create_template(
        app, cmds.CreateTemplate(name="T", body="A {{lead.full_name}}", variants=["B"]), ctx
    )
    lead = leads.capture_lead(app, leads.CaptureLead(full_name="Ana"), ctx).id
    use = cmds.UseTemplate(lead_id=lead)

    def one(_: int) -> str:
        now = datetime.now(UTC)
        return cmds.use_template(app, services.users, created.id, use, ctx, now=now).variant

    with ThreadPoolExecutor(8) as pool:
        answered = list(pool.map(one, range(24)))
    template = app.load(Template, created.id, ctx.organization_id)
    recorded = [e.variant for e in app.events.get(created.id) if isinstance(e, Template.Used)]
    assert template.uses == 24
    assert recorded == ["A", "B"] * 12
    assert sorted(answered) == sorted(recorded)
