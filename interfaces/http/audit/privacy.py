"""A person's data rights (LGPD/GDPR): everything held about them, and erasure by
crypto-shredding. Admins only; both are recorded in the organization's history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import Provide
from litestar.params import JSONBody

from application.audit import privacy
from application.permissions import Permission
from interfaces.http.common import read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

MANAGE = {"permission": Permission.PRIVACY_MANAGE}
#: the read models a person is looked up in and exported from (X-Min-Position waits for them)
MODELS = ("leads", "conversations", "calls", "timeline", "audit", "outbox")


class PrivacyController(Controller):
    path = "/privacy"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["privacy"]  # noqa: RUF012

    @post("/export", opt=MANAGE, sync_to_thread=True, status_code=200, operation_id="privacyExport")
    def export(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[privacy.PersonQuery],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Response[dict[str, Any]]:
        """One JSON document of everything the organization holds about a person, found by
        exactly one of `lead_id`, `email` or `phone`: their leads, the stored events of those
        leads and of their conversations and calls (opened), and every read-model row about
        them. The export itself is recorded (who, how the person was matched, which leads)."""
        headers = read_after(services, request, *MODELS)
        document = privacy.export_person(services.app, services, ctx, data, now=datetime.now(UTC))
        return Response(document, headers=headers)

    @post("/erase", opt=MANAGE, sync_to_thread=True, status_code=200, operation_id="privacyErase")
    def erase(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[privacy.EraseCommand],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> privacy.Erased:
        """Erase a person (crypto-shredding): their data keys are destroyed, so every personal
        value stored about them - names, emails, phones, custom fields, notes, messages, call
        numbers - reads as "[erased]" in events, read models and rebuilds, while the log stays
        append-only. Recorded as `Lead.PersonalDataErased` with who, when and `legal_basis`.
        Repeating it is harmless; a later message from the same number starts a new person."""
        read_after(services, request, *MODELS)
        return privacy.erase_person(services.app, services, ctx, data)
