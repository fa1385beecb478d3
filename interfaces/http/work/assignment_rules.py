"""Assignment-rule routes: the organization's ordered rules for leads that arrive unassigned.

Every member reads them (viewers too); admins and managers edit them (`work:configure`).
"""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from application.context import Written
from application.permissions import Permission
from application.work import assignment_rules as cmds
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.ORGANIZATION_READ}
WRITE = {"permission": Permission.WORK_CONFIGURE}


class AssignmentRuleController(Controller):
    path = "/crm/assignment-rules"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["assignment rules"]  # noqa: RUF012

    @get("/", opt=READ, sync_to_thread=True, operation_id="listAssignmentRules")
    def list(self, ctx: CtxDep, services: ServicesDep) -> cmds.RulesView:
        """The rules in the order they are tried: the first enabled rule whose conditions all
        hold assigns a lead that arrives without an assignee."""
        return cmds.list_rules(services.app, ctx)

    @post("/", opt=WRITE, sync_to_thread=True, operation_id="addAssignmentRule")
    def add(self, data: JSONBody[cmds.RuleBody], ctx: CtxDep, services: ServicesDep) -> Written:
        """Add a rule at the end of the list; answers its id. Members must belong to the
        organization (another id: 404)."""
        return cmds.add_rule(services.app, data, ctx)

    @put("/order", opt=WRITE, sync_to_thread=True, operation_id="reorderAssignmentRules")
    def reorder(
        self, data: JSONBody[cmds.RuleOrder], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Set the order the rules are tried in: every rule id exactly once (else 422)."""
        return cmds.reorder_rules(services.app, data, ctx)

    @get("/{rule_id:uuid}", opt=READ, sync_to_thread=True, operation_id="getAssignmentRule")
    def read(self, rule_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> cmds.RuleView:
        """One rule, with its place in the order and its rotation pointer."""
        return cmds.get_rule(services.app, rule_id, ctx)

    @put("/{rule_id:uuid}", opt=WRITE, sync_to_thread=True, operation_id="updateAssignmentRule")
    def update(
        self,
        rule_id: FromPath[UUID],
        data: JSONBody[cmds.RuleBody],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Replace a rule's name, conditions, strategy, members and enabled flag; it keeps its
        place and its rotation pointer."""
        return cmds.change_rule(services.app, rule_id, data, ctx)

    @delete(
        "/{rule_id:uuid}",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="removeAssignmentRule",
    )
    def remove(self, rule_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Remove a rule; the others keep their order."""
        return cmds.remove_rule(services.app, rule_id, ctx)
