"""The demo organization seeded by `make run`."""

from __future__ import annotations

from decimal import Decimal

from application import leads
from application.accounts import Register, register
from application.context import Ctx
from domain.values import Actor, Role
from interfaces.services import Services

DEMO_EMAIL = "demo@loved-crm.example"
DEMO_PASSWORD = "demo-password-123"

DEMO_LEADS = [
    ("Maria Silva", "Padaria Silva", "whatsapp", "4500"),
    ("João Pereira", "Pereira Transportes", "website", "12000"),
    ("Ana Costa", "Costa & Filhos", "referral", "8000"),
    ("Carlos Souza", "Souza Tech", "phone", "25000"),
]


def seed(services: Services) -> tuple[str, str, bool]:
    """Create the demo organization with a few leads unless it exists; return its login."""
    if services.users.by_email(DEMO_EMAIL) is not None:
        return DEMO_EMAIL, DEMO_PASSWORD, False
    done = register(
        services.app,
        services.users,
        services.hasher,
        Register(DEMO_EMAIL, DEMO_PASSWORD, "Demo Manager", "Demo Organization"),
    )
    actor = Actor(kind="user", id=str(done.user_id))
    ctx = Ctx(done.organization_id, done.user_id, Role.ADMIN, actor)
    for name, company, source, value in DEMO_LEADS:
        cmd = leads.CaptureLead(
            full_name=name, company=company, source=source, estimated_value=Decimal(value)
        )
        leads.capture_lead(services.app, cmd, ctx)
    return DEMO_EMAIL, DEMO_PASSWORD, True
