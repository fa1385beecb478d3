"""The outbox dispatcher: delivers recorded sends through each organization's provider.

A send is first recorded as an event (`Conversation.MessageSent`, an outbound `Call.Started`);
the outbox projector turns it into a row, and `Dispatcher.run_once` claims due rows one by one
and delivers them with the item's id as the idempotency key.

Guarantees: a recorded send is never lost (the row comes from the log; a worker that dies
mid-send loses its lease and the row is claimed again). Before every attempt the aggregate is
read: an item it shows as handled (the message left `queued`, the call was dialed or ended) is
settled without a request, so a crash after the provider's answer was recorded never sends
twice. The only double send left is a crash after the provider accepted and before anything
was recorded — not knowing, the outbox sends again with the same idempotency key, which the
providers that honour one (Telnyx `command_id`) deduplicate. An acceptance whose recording
fails is kept on the row (`provider_ref`) and recorded on the next claim, never re-sent.
Retryable failures back off exponentially with jitter up to `max_attempts`; a refusal, an
unconfigured provider or an item older than `max_age` fails at once and is recorded as failed.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from application.conversations.calls import mark_call_failed, mark_dialed
from application.conversations.integrations import credentials
from application.conversations.messages import mark_failed, mark_sent
from application.conversations.providers import (
    TELNYX,
    TWILIO,
    Credentials,
    OutboundCall,
    OutboundMessage,
    ProviderError,
    ProviderFactory,
    SecretBox,
)
from application.store import CrmApplication
from domain.call import Call
from domain.conversation import Conversation
from domain.errors import VersionConflictError
from domain.integrations import VOIP, WHATSAPP
from domain.lead import Lead
from domain.privacy import ERASED
from domain.values import Actor
from projections.outbox import DONE, FAILED, MESSAGE, PENDING, OutboxItem, claim_next, settle

log = logging.getLogger(__name__)

OUTBOX_ACTOR = Actor(kind="system", id="outbox")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How long a claim lasts, how often and how long an item is tried."""

    max_attempts: int = 8
    lease: timedelta = timedelta(seconds=120)  # well above the adapters' 10 s timeouts
    first_delay: float = 2.0
    max_delay: float = 300.0
    #: an item not delivered by then fails (a message queued a day ago is stale, and free text
    #: is outside WhatsApp's window by then)
    max_age: timedelta = timedelta(hours=24)

    def backoff(self, attempts: int, draw: float) -> timedelta:
        """2^n seconds capped at `max_delay`, with jitter: half fixed, half `draw` ∈ [0, 1)."""
        ceiling = min(self.max_delay, self.first_delay * 2 ** max(0, attempts - 1))
        return timedelta(seconds=ceiling / 2 + ceiling / 2 * draw)


class GiveUpError(Exception):
    """The item cannot be delivered; retrying would not help."""


class Dispatcher:
    """Delivers due outbox rows; safe to run in several threads and processes at once."""

    def __init__(
        self,
        app: CrmApplication,
        engine: Engine,
        box: SecretBox,
        providers: ProviderFactory,
        public_url: str,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.app = app
        self.engine = engine
        self.box = box
        self.providers = providers
        self.public_url = public_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.jitter = jitter

    def run_once(self, limit: int = 20) -> int:
        """Claim and handle up to `limit` due rows, one at a time (a claim's lease then covers
        one delivery only); returns how many were handled."""
        handled = 0
        while handled < limit:
            with self.engine.begin() as conn:
                item = claim_next(conn, self.clock(), self.policy.lease)
            if item is None:
                break
            self.handle(item)
            handled += 1
        return handled

    def handle(self, item: OutboxItem) -> None:
        try:
            contact = self._pending_contact(item)
            if contact is None:
                self._settle(item, DONE)
            elif item.provider_ref is not None:
                self._accepted(item, item.provider_ref)
            elif item.attempts > self.policy.max_attempts:
                self._give_up(item, item.last_error or "gave up after repeated failures")
            elif self.clock() - item.created_at > self.policy.max_age:
                self._give_up(item, f"not delivered within {self.policy.max_age}")
            else:
                self._accepted(item, self._send(item, contact))
        except GiveUpError as error:
            self._give_up(item, str(error))
        except ProviderError as error:
            self._failed_attempt(item, describe(error), retryable=error.retryable)
        except Exception as error:  # a bug or an outage of ours: logged, then tried again
            log.exception(
                "outbox: %s %s failed unexpectedly",
                item.kind,
                item.item_id,
                extra={"organization_id": str(item.organization_id)},
            )
            self._failed_attempt(item, f"{type(error).__name__}: {error}", retryable=True)

    def _pending_contact(self, item: OutboxItem) -> str | None:
        """Whom to send the item to, or None if the aggregate shows it handled already."""
        if ERASED in json.dumps(item.payload):
            raise GiveUpError("the contact's personal data was erased")
        if item.kind == MESSAGE:
            conversation = self.app.load(Conversation, item.aggregate_id, item.organization_id)
            if conversation.erased:
                raise GiveUpError("the contact's personal data was erased")
            queued = conversation.statuses.get(item.item_id) == "queued"
            return conversation.contact if queued else None
        call = self.app.load(Call, item.aggregate_id, item.organization_id)
        if self.app.view(Lead, call.lead_id, item.organization_id).erased:
            raise GiveUpError("the contact's personal data was erased")
        dialable = call.provider_call_id is None and call.status != "ended"
        return str(item.payload["to_number"]) if dialable else None

    def _credentials(self, item: OutboxItem, kind: str) -> Credentials:
        found = credentials(self.app, self.box, item.organization_id, kind, item.provider_type)
        if found is None:
            raise GiveUpError(f"the {item.provider_type} provider is no longer configured")
        return found

    def _send(self, item: OutboxItem, contact: str) -> str:
        try:
            if item.kind == MESSAGE:
                sender = self.providers.message_sender(self._credentials(item, WHATSAPP))
            else:
                placer = self.providers.call_placer(self._credentials(item, VOIP))
        except ValueError as error:  # no adapter for this provider type
            raise GiveUpError(str(error)) from error
        if item.kind == MESSAGE:
            return sender.send_message(self._message(item, contact)).provider_message_id
        return placer.place_call(self._call(item)).provider_call_id

    def _message(self, item: OutboxItem, contact: str) -> OutboundMessage:
        p = item.payload
        variables = p.get("template_variables") or {}
        return OutboundMessage(
            idempotency_key=str(item.item_id),
            to=contact,
            text=p.get("text"),
            template_name=p.get("template_name"),
            template_language=p.get("template_language") or "en_US",
            template_variables={str(k): str(v) for k, v in variables.items()},
        )

    def _call(self, item: OutboxItem) -> OutboundCall:
        return OutboundCall(
            idempotency_key=str(item.item_id),
            from_number=str(item.payload["from_number"]),
            to_number=str(item.payload["to_number"]),
            status_callback_url=self.status_callback_url(item),
            connect_to=item.payload.get("connect_to"),
        )

    def status_callback_url(self, item: OutboxItem) -> str:
        org, call = item.organization_id, item.item_id
        if item.provider_type == TWILIO:
            return f"{self.public_url}/webhooks/twilio/{org}/status?call_id={call}"
        if item.provider_type == TELNYX:
            return f"{self.public_url}/webhooks/telnyx/{org}?call_id={call}"
        raise GiveUpError(f"no status callback for provider {item.provider_type!r}")

    def _accepted(self, item: OutboxItem, provider_ref: str) -> None:
        try:
            self._record(item, provider_ref=provider_ref)
        except Exception:
            log.exception(
                "outbox: %s %s accepted as %s but not recorded; recording again later",
                item.kind,
                item.item_id,
                provider_ref,
                extra={"organization_id": str(item.organization_id)},
            )
            retry_at = self.clock() + self.policy.backoff(item.attempts, self.jitter())
            self._settle(item, PENDING, retry_at=retry_at, provider_ref=provider_ref)
            return
        self._settle(item, DONE)

    def _failed_attempt(self, item: OutboxItem, error: str, *, retryable: bool) -> None:
        if not retryable or item.attempts >= self.policy.max_attempts:
            self._give_up(item, error)
            return
        retry_at = self.clock() + self.policy.backoff(item.attempts, self.jitter())
        self._settle(item, PENDING, error=error, retry_at=retry_at)

    def _give_up(self, item: OutboxItem, error: str) -> None:
        try:
            self._record(item, error=error)
        except Exception:
            log.exception(
                "outbox: the failure of %s %s was not recorded; recording again later",
                item.kind,
                item.item_id,
                extra={"organization_id": str(item.organization_id)},
            )
            # attempts past the limit: the next claim records the failure, never sends
            retry_at = self.clock() + self.policy.backoff(item.attempts, self.jitter())
            attempts = max(item.attempts, self.policy.max_attempts)
            self._settle(item, PENDING, error=error, retry_at=retry_at, attempts=attempts)
            return
        log.warning(
            "outbox: %s %s failed: %s",
            item.kind,
            item.item_id,
            error,
            extra={"organization_id": str(item.organization_id)},
        )
        self._settle(item, FAILED, error=error)

    def _record(
        self, item: OutboxItem, *, provider_ref: str | None = None, error: str | None = None
    ) -> None:
        """Record the outcome on the aggregate, reloading it if a concurrent write won."""
        org, aggregate = item.organization_id, item.aggregate_id
        for attempt in range(5):
            try:
                if item.kind == MESSAGE and provider_ref is not None:
                    mark_sent(
                        self.app, org, aggregate, item.item_id, provider_ref, actor=OUTBOX_ACTOR
                    )
                elif item.kind == MESSAGE:
                    message = error or "failed"
                    mark_failed(self.app, org, aggregate, item.item_id, message, actor=OUTBOX_ACTOR)
                elif provider_ref is not None:
                    mark_dialed(self.app, org, aggregate, provider_ref, actor=OUTBOX_ACTOR)
                else:
                    mark_call_failed(self.app, org, aggregate, actor=OUTBOX_ACTOR)
                return
            except VersionConflictError:
                if attempt == 4:
                    raise

    def _settle(self, item: OutboxItem, status: str, **changes: Any) -> None:
        with self.engine.begin() as conn:
            kept = settle(conn, item, status, self.clock(), **changes)
        if not kept:
            log.warning(
                "outbox: the claim on %s %s expired before it was settled",
                item.kind,
                item.item_id,
                extra={"organization_id": str(item.organization_id)},
            )


def describe(error: ProviderError) -> str:
    return f"{error.code}: {error}" if error.code else str(error)
