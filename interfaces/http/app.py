"""The Litestar app factory: the HTTP composition root."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from interfaces.http.ai.analysis import AiAnalysisController
from interfaces.http.ai.settings import AiSettingsController
from interfaces.http.analytics.reports import AnalyticsController
from interfaces.http.audit.audit import AuditController
from interfaces.http.audit.privacy import PrivacyController
from interfaces.http.common import refuse_nul_characters
from interfaces.http.conversations.communications import (
    ConversationCommandController,
    LeadCommunicationController,
)
from interfaces.http.conversations.inbox import InboxController
from interfaces.http.conversations.integrations import IntegrationController
from interfaces.http.conversations.webhooks import WebhookController
from interfaces.http.headers import cors_config, security_headers
from interfaces.http.health import health
from interfaces.http.identity.api_keys import ApiKeyController
from interfaces.http.identity.auth import AuthController
from interfaces.http.identity.organizations import (
    OrganizationAccessController,
    OrganizationController,
)
from interfaces.http.identity.users import UserController
from interfaces.http.leads.leads import LeadController
from interfaces.http.leads.pipeline import PipelineController
from interfaces.http.leads.spreadsheets import LeadSpreadsheetController, document_spreadsheets
from interfaces.http.metrics import Metrics, RequestMetrics
from interfaces.http.openapi import document_problems
from interfaces.http.operations import OPERATIONS_HANDLERS, document_operations
from interfaces.http.problems import EXCEPTION_HANDLERS
from interfaces.http.ratelimit import RateLimiter
from interfaces.http.requestlog import RequestLog
from interfaces.http.stream import LiveController, live_socket
from interfaces.http.work.assignment_rules import AssignmentRuleController
from interfaces.http.work.notifications import NotificationController
from interfaces.http.work.settings import WorkSettingsController
from interfaces.http.work.tasks import TaskController
from interfaces.http.work.templates import TemplateController
from interfaces.logs import configure_logging
from interfaces.observability import init_sentry, sentry_asgi, shutdown_sentry
from interfaces.services import Services, build_services
from interfaces.settings import load_settings


def create_app(services: Services | None = None, *, own_services: bool | None = None) -> Litestar:
    """Build the app; without `services` they are built from the environment and owned."""
    owned = services is None if own_services is None else own_services
    svc = services or build_services(load_settings())
    limiter = RateLimiter(svc.settings, svc.redis)
    metrics = Metrics()
    # only with SENTRY_DSN; before the app is built, so that its ASGI wrapper sees the client
    reports = init_sentry(svc.settings)

    async def before_request(request: Request[Any, Any, Any]) -> None:
        # app-level before_request runs after every guard: the tenant guard has set the
        # organization the org limit counts against, and refused strangers before they count
        await limiter.check(request)
        await refuse_nul_characters(request)

    async def on_startup(_: Litestar) -> None:
        # sync handlers, the guard's lookups and the projector waits share this pool
        pool = ThreadPoolExecutor(svc.settings.threads, "crm-worker")
        asyncio.get_running_loop().set_default_executor(pool)
        # here, not at build time: uvicorn configures logging between the two
        configure_logging(svc.settings.log_level)
        await limiter.start()
        svc.start_projections()

    async def on_shutdown(_: Litestar) -> None:
        await limiter.close()
        if owned:
            svc.close()
        else:
            svc.stop_projections()
        metrics.process_ended()
        if reports:
            shutdown_sentry()

    app = Litestar(
        route_handlers=[
            AuthController,
            UserController,
            LeadController,
            LeadSpreadsheetController,
            InboxController,
            PipelineController,
            AuditController,
            PrivacyController,
            AnalyticsController,
            OrganizationController,
            OrganizationAccessController,
            ApiKeyController,
            IntegrationController,
            LeadCommunicationController,
            ConversationCommandController,
            WebhookController,
            TemplateController,
            TaskController,
            NotificationController,
            AssignmentRuleController,
            health,
            *OPERATIONS_HANDLERS,
            LiveController,
            live_socket,
            WorkSettingsController,
            AiSettingsController,
            AiAnalysisController,
        ],
        state=State({"services": svc, "metrics": metrics}),
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=before_request,
        before_send=[security_headers(svc.settings)],
        logging_config=None,  # interfaces.logs owns logging: JSON lines, once each
        cors_config=cors_config(svc.settings),
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
    document_operations(app)
    document_spreadsheets(app)
    # outermost, so routing's own 404/405 and CORS preflights are logged with a request id too,
    # and counted (by route template) in the metrics; inside them Sentry's scope per request
    handler = sentry_asgi(app.asgi_handler)
    handler = RequestMetrics(handler, metrics)
    app.asgi_handler = RequestLog(handler, trust_proxy=svc.settings.trust_proxy)
    return app


def asgi_factory() -> Any:
    return create_app()
