"""The notification email queue: one row per notification its member wants by email.

Filled by the notifications projector (in the transaction that makes the notification), emptied
by the email dispatcher (application/work/notification_emails.py). Rows hold ids only: the text
is composed when sent, from the notification, the lead's current name and the member's current
address, so no personal data waits in a queue.

The table is not the projector's own (`NotificationsProjector.tables` leaves it out): a rebuild
of the notifications recreates the same notification ids and inserts them here with ON CONFLICT
DO NOTHING, so a rebuild never mails anyone twice. Row life is the outbox's: `pending` → claimed
(`sending`, attempts + 1, a claim token, a lease in `next_attempt_at`) → `done`, back to
`pending` later, or `failed`; a `sending` row whose lease ran out is due again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from projections.base import UtcDateTime, claim_due, metadata

PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"

notification_emails = sa.Table(
    "notification_emails",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("notification_id", sa.Uuid, primary_key=True),  # the idempotency key
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # pending: when to try (again); sending: when the claim's lease ends
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claim_token", sa.Uuid),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_notification_emails_due", "status", "next_attempt_at"),
)


def enqueue(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Queue emails; a notification already queued (a rebuild) is left as it is."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(notification_emails).on_conflict_do_nothing(
        index_elements=["organization_id", "notification_id"]
    )
    conn.execute(statement, rows)


def email_row(organization_id: UUID, notification_id: UUID, user_id: UUID, at: datetime) -> Any:
    return {
        "organization_id": organization_id,
        "notification_id": notification_id,
        "user_id": user_id,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": at,
        "claim_token": None,
        "last_error": None,
        "created_at": at,
        "updated_at": at,
    }


@dataclass(frozen=True)
class EmailItem:
    """A claimed row: send it, then settle it with its claim token."""

    organization_id: UUID
    notification_id: UUID
    user_id: UUID
    attempts: int
    claim_token: UUID
    created_at: datetime


def claim_next(conn: Connection, now: datetime, lease: timedelta) -> EmailItem | None:
    """Claim the most overdue row (pending and due, or sending with an expired lease); see
    `projections.base.claim_due`."""
    row = claim_due(conn, notification_emails, "notification_id", SENDING, now, lease)
    if row is None:
        return None
    return EmailItem(
        row["organization_id"],
        row["notification_id"],
        row["user_id"],
        row["attempts"],
        row["claim_token"],
        row["created_at"],
    )


def settle(
    conn: Connection,
    item: EmailItem,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """End a claim; False if it was lost (the lease ran out and another worker took it)."""
    c = notification_emails.c
    values: dict[str, Any] = {
        "status": status,
        "claim_token": None,
        "updated_at": now,
        "last_error": None if error is None else error[:500],
    }
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    moved = conn.execute(
        notification_emails.update()
        .where(c.organization_id == item.organization_id)
        .where(c.notification_id == item.notification_id, c.claim_token == item.claim_token)
        .values(**values)
    )
    return moved.rowcount == 1
