"""The Conversation aggregate: one organization's messages with one contact on one channel.

Invariants: a provider's message id is recorded once (webhook retries are no-ops); delivery
statuses only move forward (a `read` arriving before `delivered` is fine, a late `delivered`
after `read` changes nothing); free text goes out only inside the 24-hour window opened by the
contact's last inbound message, a template otherwise; a closed conversation takes no outbound
messages until the contact writes again, which reopens it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, NotFoundError, RuleViolationError
from domain.privacy import ERASED, PersonalDataErasedError
from domain.values import Actor

WINDOW = timedelta(hours=24)
CHANNELS = frozenset({"whatsapp"})
#: forward order of delivery statuses; `failed` ends a message that was never delivered
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


class WindowClosedError(RuleViolationError):
    """Free text outside the 24-hour customer-service window: a template is required."""


class ConversationClosedError(RuleViolationError):
    """A closed conversation takes no more messages."""


class Conversation(TenantAggregate):
    """Messages exchanged with one contact, whatever provider carried them."""

    lead_id: UUID
    channel: str
    contact: str
    last_inbound_at: datetime | None
    statuses: dict[UUID, str]
    provider_ids: dict[str, UUID]
    handled_by: UUID | None
    closed: bool
    erased: bool
    #: the first inbound message not answered yet (None: nothing waits for a reply)
    awaiting_reply_to: UUID | None
    #: the waiting message whose SLA breach is recorded
    breached_for: UUID | None
    #: inbound messages whose analysis is recorded
    analysed: set[UUID]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Started(TenantAggregate.Created):
        lead_id: UUID
        channel: str
        contact: str

        def apply(self, c: Conversation) -> None:
            c.organization_id = self.organization_id
            c.lead_id = self.lead_id
            c.channel = self.channel
            c.contact = self.contact
            c.last_inbound_at = None
            c.statuses = {}
            c.provider_ids = {}
            c.handled_by = None
            c.closed = False
            c.erased = False
            c.awaiting_reply_to = None
            c.breached_for = None
            c.analysed = set()

    class MessageReceived(TenantAggregate.Event):
        # v2 names the lead (the subject of the sealed text); v1 events were stored in clear
        class_version = 2
        lead_id: UUID | None
        message_id: UUID
        provider_message_id: str
        provider_type: str
        text: str
        contact_name: str | None
        sent_at: datetime

        def apply(self, c: Conversation) -> None:
            c.provider_ids[self.provider_message_id] = self.message_id
            c.statuses[self.message_id] = "received"
            c.last_inbound_at = max(self.sent_at, c.last_inbound_at or self.sent_at)
            c.closed = False  # the contact writing again reopens the conversation
            if getattr(c, "awaiting_reply_to", None) is None:
                c.awaiting_reply_to = self.message_id

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lead_id"] = None

    class MessageSent(TenantAggregate.Event):
        """An outbound message is recorded first; an outbox delivers it (status `queued`)."""

        class_version = 2
        lead_id: UUID | None
        message_id: UUID
        provider_type: str
        text: str | None
        template_name: str | None
        template_language: str | None
        template_variables: dict[str, Any]

        def apply(self, c: Conversation) -> None:
            c.statuses[self.message_id] = "queued"
            c.awaiting_reply_to = None  # any reply ends the wait for a first response

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["lead_id"] = None

    class MessageStatusChanged(TenantAggregate.Event):
        message_id: UUID
        status: str
        previous_status: str
        provider_message_id: str | None
        error: str | None

        def apply(self, c: Conversation) -> None:
            c.statuses[self.message_id] = self.status
            if self.provider_message_id:
                c.provider_ids[self.provider_message_id] = self.message_id

    class HandedOff(TenantAggregate.Event):
        to_user_id: UUID | None
        previous_user_id: UUID | None

        def apply(self, c: Conversation) -> None:
            c.handled_by = self.to_user_id

    class ResponseSlaBreached(TenantAggregate.Event):
        """The contact's message `message_id` waited for a reply past the first-response SLA.

        Recorded once per waiting period (the period starts at the first unanswered inbound
        message and ends at the next outbound one), by the timers, with who was to answer.
        """

        lead_id: UUID
        message_id: UUID
        waiting_since: datetime
        deadline: datetime
        sla_minutes: int
        assignee_id: UUID | None

        def apply(self, c: Conversation) -> None:
            c.breached_for = self.message_id

    class MessageAnalysed(TenantAggregate.Event):
        """A model read the inbound message `message_id`: once per message. The summary is the
        lead's personal data (sealed with the lead's key, like the message's text)."""

        lead_id: UUID
        message_id: UUID
        sentiment: float
        confidence: float
        urgency: int
        intent: str
        summary: str
        language: str
        model: str
        tokens_in: int
        tokens_out: int

        def apply(self, c: Conversation) -> None:
            if getattr(c, "analysed", None) is None:  # state from before analyses existed
                c.analysed = set()
            c.analysed.add(self.message_id)

    class Closed(TenantAggregate.Event):
        def apply(self, c: Conversation) -> None:
            c.closed = True

    class ContactErased(TenantAggregate.Event):
        """The contact's lead was erased: the number is no longer known here."""

        lead_id: UUID

        def apply(self, c: Conversation) -> None:
            c.contact = ERASED
            c.erased = True
            c.closed = True

    class Resumed(TenantAggregate.Event):
        """The number wrote again after an erasure: a new lead (a new subject) owns the thread."""

        lead_id: UUID
        contact: str

        def apply(self, c: Conversation) -> None:
            c.lead_id = self.lead_id
            c.contact = self.contact
            c.erased = False
            c.closed = False

    @classmethod
    def start(
        cls,
        *,
        organization_id: UUID,
        lead_id: UUID,
        channel: str,
        contact: str,
        actor: Actor,
        id: UUID | None = None,
    ) -> Conversation:
        if channel not in CHANNELS:
            raise InvalidValueError("channel", f"must be one of {', '.join(sorted(CHANNELS))}")
        phone = v.phone(contact)
        if phone is None:
            raise InvalidValueError("contact", "is required")
        return cls._create(
            cls.Started,
            id=id or uuid4(),
            organization_id=organization_id,
            actor=actor,
            lead_id=lead_id,
            channel=channel,
            contact=phone,
        )

    def receive(
        self,
        *,
        provider_message_id: str,
        provider_type: str,
        text: str,
        sent_at: datetime,
        actor: Actor,
        contact_name: str | None = None,
    ) -> UUID:
        """Record an inbound message once; a retry of the same provider id returns its id."""
        key = v.text("provider_message_id", provider_message_id, max_length=200)
        if key in self.provider_ids:
            return self.provider_ids[key]
        message_id = uuid4()
        self.trigger_event(
            self.MessageReceived,
            lead_id=self.lead_id,
            message_id=message_id,
            provider_message_id=key,
            provider_type=v.text("provider_type", provider_type, max_length=40),
            text=v.text("text", text, max_length=4096, required=False),
            contact_name=v.optional_text("contact_name", contact_name, max_length=200),
            sent_at=sent_at,
            actor=actor,
        )
        return message_id

    def send(
        self,
        *,
        provider_type: str,
        now: datetime,
        actor: Actor,
        text: str | None = None,
        template_name: str | None = None,
        template_language: str | None = None,
        template_variables: dict[str, Any] | None = None,
        window: bool = True,
    ) -> UUID:
        """Record an outbound message to be delivered; free text only inside the window.

        `window=False` for providers without the Business Platform's 24-hour rule (a WhatsApp
        Web bridge sends as a phone does, and has no templates).
        """
        if self.erased:
            raise PersonalDataErasedError(f"conversation {self.id}: the contact was erased")
        if self.closed:
            raise ConversationClosedError(f"conversation {self.id} is closed")
        if (text is None) == (template_name is None):
            raise InvalidValueError("text", "give either a text or a template")
        if text is not None and window and not self.window_open(now):
            raise WindowClosedError(
                "the 24-hour window since the contact's last message is closed: send a template"
            )
        message_id = uuid4()
        self.trigger_event(
            self.MessageSent,
            lead_id=self.lead_id,
            message_id=message_id,
            provider_type=v.text("provider_type", provider_type, max_length=40),
            text=None if text is None else v.text("text", text, max_length=4096),
            template_name=v.optional_text("template_name", template_name, max_length=200),
            template_language=v.optional_text(
                "template_language", template_language, max_length=20
            ),
            template_variables=v.custom_fields(template_variables),
            actor=actor,
        )
        return message_id

    def window_open(self, now: datetime) -> bool:
        return self.last_inbound_at is not None and now - self.last_inbound_at < WINDOW

    def change_status(
        self,
        message_id: UUID,
        status: str,
        *,
        actor: Actor,
        provider_message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Move a sent message's status forward; a stale or repeated status changes nothing."""
        current = self.statuses.get(message_id)
        if current is None or current == "received":
            raise NotFoundError("message", message_id)
        if status != "failed" and status not in STATUS_RANK:
            raise InvalidValueError("status", "must be sent, delivered, read or failed")
        if current == "failed" or status == current:
            return
        if status == "failed":
            if STATUS_RANK[current] >= STATUS_RANK["delivered"]:
                return  # delivered messages stay delivered
        elif STATUS_RANK[status] <= STATUS_RANK[current]:
            return  # statuses may arrive out of order; only move forward
        self.trigger_event(
            self.MessageStatusChanged,
            message_id=message_id,
            status=status,
            previous_status=current,
            provider_message_id=provider_message_id,
            error=v.optional_text("error", error, max_length=500),
            actor=actor,
        )

    def hand_off(self, to_user_id: UUID | None, *, actor: Actor) -> None:
        if to_user_id != self.handled_by:
            self.trigger_event(
                self.HandedOff, to_user_id=to_user_id, previous_user_id=self.handled_by, actor=actor
            )

    def record_response_breach(
        self,
        *,
        message_id: UUID,
        waiting_since: datetime,
        deadline: datetime,
        sla_minutes: int,
        assignee_id: UUID | None,
        actor: Actor,
    ) -> bool:
        """Record that `message_id` is still unanswered past its deadline; False (nothing
        recorded) if it was answered meanwhile or its breach is already recorded."""
        if getattr(self, "awaiting_reply_to", None) != message_id:
            return False
        if getattr(self, "breached_for", None) == message_id:
            return False
        self.trigger_event(
            self.ResponseSlaBreached,
            lead_id=self.lead_id,
            message_id=message_id,
            waiting_since=waiting_since,
            deadline=deadline,
            sla_minutes=sla_minutes,
            assignee_id=assignee_id,
            actor=actor,
        )
        return True

    def record_analysis(
        self,
        message_id: UUID,
        *,
        sentiment: float,
        confidence: float,
        urgency: int,
        intent: str,
        summary: str,
        language: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        actor: Actor,
    ) -> bool:
        """Record a message's analysis; False (nothing recorded) if the message is not one of
        this conversation's inbound messages, is analysed already, or the contact was erased."""
        if self.statuses.get(message_id) != "received" or self.erased:
            return False
        if message_id in (getattr(self, "analysed", None) or ()):
            return False
        if not -1.0 <= sentiment <= 1.0 or not 0.0 <= confidence <= 1.0:
            raise InvalidValueError("sentiment", "sentiment is -1..1 and confidence 0..1")
        if not 0 <= urgency <= 100:
            raise InvalidValueError("urgency", "must be 0..100")
        self.trigger_event(
            self.MessageAnalysed,
            lead_id=self.lead_id,
            message_id=message_id,
            sentiment=float(sentiment),
            confidence=float(confidence),
            urgency=int(urgency),
            intent=v.text("intent", intent, max_length=40),
            summary=v.text("summary", summary[:1000], max_length=1000, required=False),
            language=v.text("language", language, max_length=20, required=False),
            model=v.text("model", model, max_length=200),
            tokens_in=max(0, int(tokens_in)),
            tokens_out=max(0, int(tokens_out)),
            actor=actor,
        )
        return True

    def erase_contact(self, *, actor: Actor) -> None:
        """Forget the contact after their lead's erasure; a new message starts a new subject."""
        if not self.erased:
            self.trigger_event(self.ContactErased, lead_id=self.lead_id, actor=actor)

    def resume(self, *, lead_id: UUID, contact: str, actor: Actor) -> None:
        """An erased contact's number wrote again: link the thread to the new lead."""
        phone = v.phone(contact)
        if phone is None:
            raise InvalidValueError("contact", "is required")
        if self.erased:
            self.trigger_event(self.Resumed, lead_id=lead_id, contact=phone, actor=actor)

    def close(self, *, actor: Actor) -> None:
        if not self.closed:
            self.trigger_event(self.Closed, actor=actor)
