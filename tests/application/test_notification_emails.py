"""The notification email dispatcher: a failed send is retried later with backoff and goes out
once; a notification not mailed within a day is not mailed at all. The mail server is faked (an
outgoing port); everything else is real, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from application.work.notification_emails import EmailPolicy, NotificationEmailDispatcher
from interfaces.services import Services
from projections.notification_emails import notification_emails
from tests.support.api import Tenant, add_member, cheap_hashing, register  # noqa: F401

pytestmark = pytest.mark.usefixtures("cheap_hashing")


class FlakyMailer:
    """Refuses the first `failures` sends, then keeps what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, text: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("the mail server is away")
        self.sent.append((to, subject, text))


def emailed_notification(client: TestClient[Any], services: Services) -> tuple[Tenant, Any]:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    body = {"lead_assigned": {"in_app": True, "email": True}}
    assert rep.put("/notifications/preferences", json=body).status_code == 200
    owner.position = rep.position
    lead = owner.capture()
    assert owner.put(f"/crm/leads/{lead['id']}/assign", json={"user_id": rep.user_id}).is_success
    rep.position = owner.position
    [note] = rep.get("/notifications").json()["items"]
    return rep, note


def row(services: Services, note: dict[str, Any]) -> Any:
    c = notification_emails.c
    with services.engine.connect() as conn:
        return conn.execute(
            sa.select(notification_emails).where(c.notification_id == UUID(note["id"]))
        ).one()


def dispatcher(services: Services, mailer: FlakyMailer) -> NotificationEmailDispatcher:
    return NotificationEmailDispatcher(
        services.engine, services.users, mailer, "https://crm.example", jitter=lambda: 0.0
    )


def test_a_failed_send_is_retried_later_and_goes_out_once(
    client: TestClient[Any], services: Services
) -> None:
    rep, note = emailed_notification(client, services)
    mailer = FlakyMailer(failures=1)
    sender = dispatcher(services, mailer)
    now = datetime.now(UTC)
    sender.run(now)
    first = row(services, note)
    assert (first.status, first.attempts, mailer.sent) == ("pending", 1, [])
    assert "ConnectionRefusedError" in first.last_error and first.next_attempt_at > now
    sender.run(now + timedelta(seconds=1))  # not due yet
    assert row(services, note).attempts == 1
    sender.run(now + timedelta(minutes=10))
    sender.run(now + timedelta(minutes=20))
    assert row(services, note).status == "done"
    [(to, subject, text)] = [m for m in mailer.sent if note["link"] in m[2]]
    user = services.users.by_id(UUID(rep.user_id))
    assert user is not None and to == user.email
    assert subject == "Loved CRM: Lead assigned to you"
    assert f"https://crm.example{note['link']}" in text


def test_a_notification_not_mailed_within_its_age_limit_is_not_mailed(
    client: TestClient[Any], services: Services
) -> None:
    _, note = emailed_notification(client, services)
    mailer = FlakyMailer(failures=0)
    sender = dispatcher(services, mailer)
    sender.run(datetime.now(UTC) + EmailPolicy().max_age + timedelta(minutes=1))
    late = row(services, note)
    assert late.status == "failed" and "not sent within" in late.last_error
    assert [m for m in mailer.sent if note["link"] in m[2]] == []
