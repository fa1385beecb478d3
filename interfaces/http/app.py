"""The Litestar app factory: the HTTP composition root."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from interfaces.http.audit import AuditController
from interfaces.http.auth import AuthController
from interfaces.http.common import refuse_nul_characters
from interfaces.http.health import health
from interfaces.http.leads import LeadController
from interfaces.http.openapi import document_problems
from interfaces.http.pipeline import PipelineController
from interfaces.http.problems import EXCEPTION_HANDLERS
from interfaces.services import Services, build_services
from interfaces.settings import load_settings


def create_app(services: Services | None = None, *, own_services: bool | None = None) -> Litestar:
    """Build the app; without `services` they are built from the environment and owned."""
    owned = services is None if own_services is None else own_services
    svc = services or build_services(load_settings())

    async def on_startup(_: Litestar) -> None:
        # sync handlers, the guard's lookups and the projector waits share this pool
        pool = ThreadPoolExecutor(svc.settings.threads, "crm-worker")
        asyncio.get_running_loop().set_default_executor(pool)
        svc.start_projections()

    def on_shutdown(_: Litestar) -> None:
        if owned:
            svc.close()
        else:
            svc.stop_projections()

    app = Litestar(
        route_handlers=[
            AuthController,
            LeadController,
            PipelineController,
            AuditController,
            health,
        ],
        state=State({"services": svc}),
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=refuse_nul_characters,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(
            title="Loved CRM",
            version="0.1.0",
            path="/schema",
            use_handler_docstrings=True,
        ),
        request_max_body_size=1_048_576,
    )
    document_problems(app)
    return app


def asgi_factory() -> Any:
    return create_app()
