"""API key routes (admins only): list, create (the key is shown once), change scopes, revoke."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from application.context import Written
from application.identity import api_keys as cmds
from application.permissions import Permission
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

MANAGE: dict[str, Any] = {"permission": Permission.API_KEYS_MANAGE}


class ApiKeyController(Controller):
    path = "/api-keys"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["api keys"]  # noqa: RUF012

    @get("/", opt=MANAGE, sync_to_thread=True, operation_id="listApiKeys")
    def list(self, ctx: CtxDep, services: ServicesDep) -> list[cmds.ApiKeyView]:
        """The organization's keys (never their secrets), with when each was last used."""
        return cmds.list_api_keys(services.app, services.engine, ctx)

    @post("/", opt=MANAGE, sync_to_thread=True, operation_id="createApiKey")
    def create(
        self, data: JSONBody[cmds.CreateApiKey], ctx: CtxDep, services: ServicesDep
    ) -> cmds.CreatedApiKey:
        """Create a key with scopes (permission names); the key is in this answer only."""
        return cmds.create_api_key(services.app, data, ctx)

    @put(
        "/{key_id:uuid}/scopes", opt=MANAGE, sync_to_thread=True, operation_id="changeApiKeyScopes"
    )
    def scopes(
        self,
        key_id: FromPath[UUID],
        data: JSONBody[cmds.ChangeScopes],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        return cmds.change_api_key_scopes(services.app, key_id, data, ctx)

    @delete(
        "/{key_id:uuid}",
        opt=MANAGE,
        sync_to_thread=True,
        status_code=200,
        operation_id="revokeApiKey",
    )
    def revoke(self, key_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Revoke a key: it is refused from now on."""
        return cmds.revoke_api_key(services.app, key_id, ctx)
