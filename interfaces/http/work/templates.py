"""Message template routes: the list, create, change, delete, statistics, use, suggestions."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from application.context import Written
from application.permissions import Permission
from application.work import template_queries as queries
from application.work import templates as cmds
from interfaces.http.common import answer, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.TEMPLATES_READ}
WRITE = {"permission": Permission.TEMPLATES_WRITE}
# a use may send a message to the lead: the lead's owner's act (own-lead rule in the use case)
USE = {"permission": Permission.LEADS_WRITE}
Label = Annotated[str | None, QueryParameter(max_length=100)]


class TemplateController(Controller):
    path = "/crm/templates"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["templates"]  # noqa: RUF012

    @get("/", opt=READ, sync_to_thread=True, operation_id="listTemplates")
    def list(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        category: Label = None,
        tag: Label = None,
        stage_id: FromQuery[UUID | None] = None,
    ) -> Response[list[queries.TemplateView]]:
        """The organization's message templates by name, optionally of a category, with a
        tag, or suited to a stage (a template naming no stage suits every stage)."""
        headers = read_after(services, request, "templates")
        with services.reading(ctx.organization_id) as conn:
            found = queries.list_templates(
                conn, ctx.organization_id, category=category, tag=tag, stage_id=stage_id
            )
        return answer(found, headers)

    @post("/", opt=WRITE, sync_to_thread=True, operation_id="createTemplate")
    def create(
        self, data: JSONBody[cmds.CreateTemplate], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Create a template. Variables: `{{lead.full_name}}`, `{{lead.company}}`,
        `{{lead.custom.KEY}}`, `{{user.full_name}}`, `{{organization.name}}`; any other is
        refused (422 naming it). `variants` are A/B alternatives to `body` (variant A)."""
        return cmds.create_template(services.app, data, ctx)

    @put("/{template_id:uuid}", opt=WRITE, sync_to_thread=True, operation_id="changeTemplate")
    def change(
        self,
        template_id: FromPath[UUID],
        data: JSONBody[cmds.ChangeTemplate],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Change some of a template's fields; `expected_version` guards against lost updates."""
        return cmds.change_template(services.app, template_id, data, ctx)

    @delete(
        "/{template_id:uuid}",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="deleteTemplate",
    )
    def remove(self, template_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Delete a template: it is no longer listed nor used; its statistics stay."""
        return cmds.delete_template(services.app, template_id, ctx)

    @get("/{template_id:uuid}/stats", opt=READ, sync_to_thread=True, operation_id="templateStats")
    def stats(
        self,
        request: Request[Any, Any, Any],
        template_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Response[queries.TemplateStats]:
        """Uses, replies within 24 hours, reply rate and leads won after a use, per variant."""
        headers = read_after(services, request, "templates")
        with services.reading(ctx.organization_id) as conn:
            found = queries.template_stats(conn, ctx.organization_id, template_id)
        return answer(found, headers)

    @post(
        "/{template_id:uuid}/use",
        opt=USE,
        sync_to_thread=True,
        status_code=200,
        operation_id="useTemplate",
    )
    def use(
        self,
        template_id: FromPath[UUID],
        data: JSONBody[cmds.UseTemplate],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> cmds.TemplateUsed:
        """Render the template's next A/B variant for a lead; with `send: true` also send it on
        WhatsApp: free text inside the 24-hour window, the linked approved WhatsApp template
        outside it (422 if the template has none, as for free text). Sales: own leads only."""
        now = datetime.now(UTC)
        return cmds.use_template(services.app, services.users, template_id, data, ctx, now=now)

    @get("/suggestions", opt=READ, sync_to_thread=True, operation_id="suggestTemplates")
    def suggestions(
        self,
        request: Request[Any, Any, Any],
        lead_id: FromQuery[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        tag: Label = None,
    ) -> Response[builtins.list[queries.Suggestion]]:
        """Templates suited to the lead's current stage (optionally only those with a tag, e.g.
        `nurture`), the best reply rate first."""
        headers = read_after(services, request, "templates", "leads")
        with services.reading(ctx.organization_id) as conn:
            found = queries.suggestions(conn, ctx.organization_id, lead_id, tag=tag)
        return answer(found, headers)
