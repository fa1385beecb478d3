"""Provider webhooks → commands: verified on the raw body with the organization's own secret.

Unsigned or badly signed calls answer 401/403 and leave nothing but a security incident in the
organization's audit trail. Verified ones are recorded item by item, idempotently (a provider's
message, status or call event id is recorded once), and answered 200 as soon as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, QueryParameter, RawBody

from application.conversations import calls
from application.conversations import messages as conversations
from application.conversations.integrations import credentials
from application.conversations.providers import Credentials
from application.identity.incidents import record_incident
from domain.errors import DomainError, NotFoundError, VersionConflictError
from domain.integrations import VOIP, WHATSAPP
from domain.security import PLATFORM
from domain.values import Actor
from interfaces.http.guard import client_ip
from interfaces.http.problems import problem
from interfaces.services import Services
from interfaces.webhooks import telnyx, twilio, waha, whatsapp_cloud
from interfaces.webhooks.errors import BadPayload, WebhookRejected

log = logging.getLogger("crm.webhooks")
MAX_BODY = 4 * 1024 * 1024  # Meta batches up to 3 MB
AnyRequest = Request[Any, Any, State]


class Rejected(Exception):
    """Answer with this problem; the incident (if any) is already recorded."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _services(request: AnyRequest) -> Services:
    services: Services = request.app.state.services
    return services


def _credentials(
    request: AnyRequest, organization_id: UUID, kind: str, provider_type: str
) -> Credentials:
    services = _services(request)
    try:
        found = credentials(services.app, services.secret_box, organization_id, kind, provider_type)
    except NotFoundError:
        found = None
    if found is None:
        owner = organization_id if _is_organization(services, organization_id) else PLATFORM
        _incident(request, owner, provider_type, "provider not configured")
        raise Rejected(404, f"no {provider_type} integration here")
    return found


def _is_organization(services: Services, organization_id: UUID) -> bool:
    return services.app.organization_of(organization_id) == organization_id


class _Recent:
    """Rejected webhooks cost no audit record each: one per (organization, provider, reason)
    a minute per process — an unsigned flood must not grow the event log without bound."""

    window = 60.0

    def __init__(self) -> None:
        self._seen: dict[tuple[UUID, str, str], float] = {}
        self._lock = threading.Lock()

    def first(self, key: tuple[UUID, str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window}
            if now - self._seen.get(key, -self.window) < self.window:
                return False
            self._seen[key] = now
            return True


_RECENT = _Recent()


def _incident(request: AnyRequest, organization_id: UUID, provider: str, reason: str) -> None:
    if not _RECENT.first((organization_id, provider, reason)):
        return
    actor = Actor(
        kind="provider",
        id=provider,
        ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
    )
    try:
        record_incident(
            _services(request).app,
            {organization_id},
            "webhook_rejected",
            actor,
            provider=provider,
            reason=reason,
            path=request.url.path,
        )
    except Exception:
        log.exception("could not record a rejected webhook for %s", organization_id)


def _verified(
    request: AnyRequest, organization_id: UUID, provider: str, check: Callable[[], None]
) -> None:
    try:
        check()
    except WebhookRejected as rejected:
        log.warning(
            "webhook rejected organization_id=%s provider=%s reason=%s",
            organization_id,
            provider,
            rejected.reason,
        )
        _incident(request, organization_id, provider, rejected.reason)
        raise Rejected(rejected.status, f"webhook rejected: {rejected.reason}") from None


def _each(items: list[Any], record: Callable[[Any], object], what: str, org: UUID) -> int:
    """Record every item; one the domain refuses (e.g. no phone) is skipped, not fatal.

    A lost race that survived its retries is not a refusal: it escapes, the provider gets an
    error and redelivers, and what was recorded already is recognised by its id.
    """
    done = 0
    for item in items:
        try:
            if record(item) is not None:
                done += 1
        except VersionConflictError:
            raise
        except DomainError as refused:
            log.error("webhook %s skipped organization_id=%s: %s", what, org, refused)
    return done


def _answer(request: AnyRequest, run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Rejected as rejected:
        return problem(request, rejected.status, rejected.detail)
    except BadPayload as bad:
        return problem(request, 400, f"malformed payload: {bad}")


def _form(body: RawBody) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def _public_url(request: AnyRequest) -> str:
    """The URL as the provider requested it: Twilio signs the public one (behind proxies)."""
    query = request.scope.get("query_string", b"").decode()
    path = _services(request).settings.public_url + request.url.path
    return f"{path}?{query}" if query else path


def _call_id(raw: str | None) -> UUID | None:
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise BadPayload("call_id is not a UUID") from None


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]  # noqa: RUF012
    include_in_schema = True

    @get(
        "/whatsapp/{organization_id:uuid}",
        sync_to_thread=True,
        media_type="text/plain",
        operation_id="whatsAppVerify",
    )
    def whatsapp_verify(
        self,
        request: AnyRequest,
        organization_id: FromPath[UUID],
        mode: Annotated[str | None, QueryParameter(name="hub.mode")] = None,
        token: Annotated[str | None, QueryParameter(name="hub.verify_token")] = None,
        challenge: Annotated[str | None, QueryParameter(name="hub.challenge")] = None,
    ) -> Any:
        """Meta's subscription handshake: echo `hub.challenge` if the verify token matches."""

        def run() -> Response[str]:
            creds = _credentials(request, organization_id, WHATSAPP, "business_api")
            verify_token = creds.secrets.get("verify_token", "")
            answer: list[str] = []
            _verified(
                request,
                organization_id,
                "business_api",
                lambda: answer.append(
                    whatsapp_cloud.verify_handshake(mode, token, challenge, verify_token)
                ),
            )
            return Response(answer[0], media_type="text/plain")

        return _answer(request, run)

    @post(
        "/whatsapp/{organization_id:uuid}",
        sync_to_thread=True,
        status_code=200,
        request_max_body_size=MAX_BODY,
        operation_id="whatsAppWebhook",
    )
    def whatsapp(self, request: AnyRequest, organization_id: FromPath[UUID], body: RawBody) -> Any:
        """WhatsApp Cloud API notifications (`X-Hub-Signature-256`): messages and statuses."""

        def run() -> dict[str, int]:
            creds = _credentials(request, organization_id, WHATSAPP, "business_api")
            header = request.headers.get("x-hub-signature-256")
            secret = creds.secrets.get("app_secret", "")
            _verified(
                request,
                organization_id,
                "business_api",
                lambda: whatsapp_cloud.verify_signature(secret, body, header),
            )
            batch = whatsapp_cloud.parse(body)
            ours = creds.settings.get("phone_number_id")

            def mine(item_id: str) -> bool:
                number = batch.number_of.get(item_id)
                return number is None or number == ours

            messages = [m for m in batch.messages if mine(m.provider_message_id)]
            statuses = [s for s in batch.statuses if mine(s.provider_message_id)]
            return _record_messages(request, organization_id, "business_api", messages, statuses)

        return _answer(request, run)

    @post(
        "/whatsapp-web/{organization_id:uuid}",
        sync_to_thread=True,
        status_code=200,
        request_max_body_size=MAX_BODY,
        operation_id="whatsAppWebWebhook",
    )
    def whatsapp_web(
        self, request: AnyRequest, organization_id: FromPath[UUID], body: RawBody
    ) -> Any:
        """WhatsApp Web bridge (WAHA) events, signed `X-Webhook-Hmac` (HMAC-SHA512)."""

        def run() -> dict[str, int]:
            creds = _credentials(request, organization_id, WHATSAPP, "web_bridge")
            headers: Mapping[str, str] = request.headers
            key = creds.secrets.get("hmac_key", "")
            _verified(
                request,
                organization_id,
                "web_bridge",
                lambda: waha.verify_signature(key, body, headers),
            )
            batch = waha.parse(body, request_id=request.headers.get("x-webhook-request-id"))
            if batch.session is not None and batch.session != creds.settings.get("session"):
                return {"messages": 0, "statuses": 0}
            for update in batch.sessions:
                log.info(
                    "bridge session organization_id=%s session=%s status=%s",
                    organization_id,
                    update.session,
                    update.status,
                )
            return _record_messages(
                request, organization_id, "web_bridge", batch.messages, batch.statuses
            )

        return _answer(request, run)

    @post(
        "/twilio/{organization_id:uuid}/voice",
        sync_to_thread=True,
        status_code=200,
        operation_id="twilioVoice",
    )
    def twilio_voice(
        self, request: AnyRequest, organization_id: FromPath[UUID], body: RawBody
    ) -> Any:
        """Twilio's incoming-call webhook (`X-Twilio-Signature`): logs the call, answers TwiML."""

        def run() -> Response[str]:
            params, creds = _signed_twilio(request, organization_id, body)
            _record_call(request, organization_id, "twilio", twilio.parse_voice(params), None)
            forward = creds.settings.get("forward_to")
            say = None if forward else "Thank you for calling. We will call you back shortly."
            twiml = twilio.twiml_response(say=say, dial=forward)
            return Response(twiml, media_type="application/xml")

        return _answer(request, run)

    @post(
        "/twilio/{organization_id:uuid}/status",
        sync_to_thread=True,
        status_code=200,
        operation_id="twilioStatus",
    )
    def twilio_status(
        self,
        request: AnyRequest,
        organization_id: FromPath[UUID],
        body: RawBody,
        call_id: FromQuery[str | None] = None,
    ) -> Any:
        """Twilio voice status callbacks: ringing, answered, completed (+ recording)."""

        def run() -> dict[str, int]:
            params, _ = _signed_twilio(request, organization_id, body)
            token = request.headers.get("i-twilio-idempotency-token")
            update = twilio.parse_status(params, token)
            ours = _call_id(call_id)
            return {"calls": _record_call(request, organization_id, "twilio", update, ours)}

        return _answer(request, run)

    @post(
        "/telnyx/{organization_id:uuid}",
        sync_to_thread=True,
        status_code=200,
        operation_id="telnyxWebhook",
    )
    def telnyx_events(
        self,
        request: AnyRequest,
        organization_id: FromPath[UUID],
        body: RawBody,
        call_id: FromQuery[str | None] = None,
    ) -> Any:
        """Telnyx call-control events, signed with ed25519 over `timestamp|body`."""

        def run() -> dict[str, int]:
            creds = _credentials(request, organization_id, VOIP, "telnyx")
            headers: Mapping[str, str] = request.headers
            key = creds.settings.get("public_key", "")
            _verified(
                request,
                organization_id,
                "telnyx",
                lambda: telnyx.verify_signature(key, body, headers),
            )
            update = telnyx.parse(body)
            if update is None:
                return {"calls": 0}
            ours = _call_id(call_id)
            return {"calls": _record_call(request, organization_id, "telnyx", update, ours)}

        return _answer(request, run)


def _signed_twilio(
    request: AnyRequest, organization_id: UUID, body: RawBody
) -> tuple[list[tuple[str, str]], Credentials]:
    creds = _credentials(request, organization_id, VOIP, "twilio")
    params = _form(body)
    token = creds.secrets.get("auth_token", "")
    signature = request.headers.get("x-twilio-signature")
    settings = request.headers.get("x-twilio-webhooks-signature-settings")
    url = _public_url(request)
    _verified(
        request,
        organization_id,
        "twilio",
        lambda: twilio.verify_signature(token, url, params, signature, settings),
    )
    return params, creds


def _record_messages(
    request: AnyRequest,
    organization_id: UUID,
    provider_type: str,
    messages: list[Any],
    statuses: list[Any],
) -> dict[str, int]:
    services = _services(request)
    actor = conversations.provider_actor(provider_type, client_ip(request))
    received = _each(
        messages,
        lambda m: conversations.receive_message(
            services.app,
            services,
            organization_id,
            provider_type,
            m,
            actor=actor,
        ),
        "message",
        organization_id,
    )
    changed = _each(
        statuses,
        lambda s: conversations.record_status(services.app, organization_id, s, actor=actor),
        "status",
        organization_id,
    )
    return {"messages": received, "statuses": changed}


def _record_call(
    request: AnyRequest,
    organization_id: UUID,
    provider_type: str,
    update: Any,
    call_id: UUID | None,
) -> int:
    services = _services(request)
    actor = conversations.provider_actor(provider_type, client_ip(request))
    return _each(
        [update],
        lambda u: calls.record_call_update(
            services.app,
            services,
            organization_id,
            provider_type,
            u,
            actor=actor,
            call_id=call_id,
        ),
        "call",
        organization_id,
    )
