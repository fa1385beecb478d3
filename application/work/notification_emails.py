"""Emails of notifications: the dispatcher that sends the queue the notifications projector fills.

Never inline: a request or the projector only ever adds a row (projections/notification_emails.py);
this dispatcher claims due rows one at a time and sends each through the `Mailer` port. Run as a
timer job (interfaces/timers.py), so every process that runs timers sends, each row by one of
them (claims with leases, as the outbox).

Idempotent by notification id: a row is made once per notification (a rebuild inserts nothing
new) and is `done` once sent. The one double send left is a crash between the mail server's
acceptance and the settle, as with any SMTP client. Failures back off exponentially up to
`max_attempts`; a notification older than `max_age`, a member no longer in the organization or
a deactivated account is not mailed (failed with the reason). The text names what happened and
links to it; it carries no personal data of a lead (the link leads to it).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from application.ports import Mailer, UserRepository
from projections.notification_emails import DONE, FAILED, PENDING, EmailItem, claim_next, settle
from projections.notifications import rm_notification_members, rm_notifications

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EmailPolicy:
    max_attempts: int = 6
    lease: timedelta = timedelta(seconds=60)  # well above an SMTP send's 10 s timeout
    first_delay: float = 5.0
    max_delay: float = 600.0
    #: a notification not mailed by then is stale news: not sent (nor after a late rebuild)
    max_age: timedelta = timedelta(hours=24)

    def backoff(self, attempts: int, draw: float) -> timedelta:
        ceiling = min(self.max_delay, self.first_delay * 2 ** max(0, attempts - 1))
        return timedelta(seconds=ceiling / 2 + ceiling / 2 * draw)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class NotSentError(Exception):
    """The notification will not be mailed; retrying would not help."""


class NotificationEmailDispatcher:
    """Sends due notification emails; safe in several threads and processes at once."""

    def __init__(
        self,
        engine: Engine,
        users: UserRepository,
        mailer: Mailer,
        public_url: str,
        *,
        policy: EmailPolicy | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.users = users
        self.mailer = mailer
        self.public_url = public_url.rstrip("/")
        self.policy = policy or EmailPolicy()
        self.jitter = jitter

    def run(self, now: datetime, limit: int = 50, budget: float = 1.0) -> int:
        """Claim and send up to `limit` due rows, claiming no more once `budget` seconds have
        passed (it shares the timers' thread: reminders must not wait for a slow mail server
        longer than one send); answers how many were handled."""
        handled = 0
        started = time.monotonic()
        while handled < limit and time.monotonic() - started < budget:
            with self.engine.begin() as conn:
                item = claim_next(conn, now, self.policy.lease)
            if item is None:
                break
            self.handle(item, now)
            handled += 1
        return handled

    def handle(self, item: EmailItem, now: datetime) -> None:
        try:
            if now - item.created_at > self.policy.max_age:
                raise NotSentError(f"not sent within {self.policy.max_age}")
            mail = self.compose(item)
            self.mailer.send(mail.to, mail.subject, mail.text)
        except NotSentError as error:
            self._settle(item, FAILED, now, error=str(error))
        except Exception as error:  # noqa: BLE001 - the mail server is away, or a bug: retried
            log.warning(
                "notification email %s failed (attempt %s): %s",
                item.notification_id,
                item.attempts,
                error,
                extra={"organization_id": str(item.organization_id)},
            )
            message = f"{type(error).__name__}: {error}"
            if item.attempts >= self.policy.max_attempts:
                self._settle(item, FAILED, now, error=message)
            else:
                retry_at = now + self.policy.backoff(item.attempts, self.jitter())
                self._settle(item, PENDING, now, error=message, retry_at=retry_at)
        else:
            self._settle(item, DONE, now)

    def compose(self, item: EmailItem) -> Mail:
        n, m = rm_notifications.c, rm_notification_members.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(n.title, n.summary, n.link).where(
                    n.organization_id == item.organization_id,
                    n.notification_id == item.notification_id,
                )
            ).first()
            member = conn.execute(
                sa.select(m.user_id).where(
                    m.organization_id == item.organization_id, m.user_id == item.user_id
                )
            ).first()
        if row is None:
            raise NotSentError("the notification is gone")
        if member is None:
            raise NotSentError("no longer a member of the organization")
        user = self.users.by_id(item.user_id)
        if user is None or user.deactivated_at is not None:
            raise NotSentError("the account is gone or deactivated")
        text = (
            f"{row.summary}\n\nOpen it: {self.public_url}{row.link}\n\n"
            "You receive this email because of your notification preferences "
            "(PUT /notifications/preferences changes them).\n"
        )
        return Mail(user.email, f"Loved CRM: {row.title}", text)

    def _settle(
        self,
        item: EmailItem,
        status: str,
        now: datetime,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            kept = settle(conn, item, status, now, error=error, retry_at=retry_at)
        if not kept:
            log.warning("notification email %s: the claim expired", item.notification_id)
