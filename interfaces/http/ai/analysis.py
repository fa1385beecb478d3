"""`POST /ai/analyze/sentiment`: analyse a text as an inbound message would be — sentiment,
urgency, intent, a summary — with the organization's model (the offline analyzer without a
key). Nothing is stored."""

from __future__ import annotations

import msgspec
from litestar import Controller, post
from litestar.di import Provide
from litestar.params import JSONBody

from application.ai.models import analyzer_for
from application.ai.ports import MessageAnalysis
from application.permissions import Permission
from domain import values as v
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard


class AnalyzeText(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: str


class AiAnalysisController(Controller):
    path = "/ai/analyze"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["ai"]  # noqa: RUF012

    @post(
        "/sentiment",
        opt={"permission": Permission.LEADS_READ},
        sync_to_thread=True,
        status_code=200,
        operation_id="analyzeSentiment",
    )
    def sentiment(
        self, data: JSONBody[AnalyzeText], ctx: CtxDep, services: ServicesDep
    ) -> MessageAnalysis:
        """Sentiment (−1..1), confidence, urgency (0–100), intent, a one-sentence summary and
        the language of `text` (1 to 4,096 characters), and which model read it."""
        text = v.text("text", data.text, max_length=4096)
        models = analyzer_for(
            services.app, services.secret_box, services.models, ctx.organization_id
        )
        return models.analyse(text)
