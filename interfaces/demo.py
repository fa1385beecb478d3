"""The demo organization seeded by `make run`."""

from __future__ import annotations

from decimal import Decimal

from application.context import Ctx
from application.conversations import integrations
from application.identity.accounts import Register, register
from application.leads import commands as leads
from domain.values import Actor, Role
from interfaces.services import Services

DEMO_EMAIL = "demo@loved-crm.example"
DEMO_PASSWORD = "demo-password-123"

#: the demo's WhatsApp Business API: no Meta account behind it, so outbound sends keep failing
#: (unreachable) until you set up real credentials; inbound works with `crm simulate-inbound`
DEMO_WHATSAPP = integrations.WhatsAppSetup(
    provider="business_api",
    phone_number_id="demo-phone-number-id",
    base_url="http://127.0.0.1:9",
    access_token="demo-access-token",
    app_secret="demo-app-secret",
    verify_token="demo-verify-token",
)

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
    integrations.setup_provider(
        services.app, services.secret_box, integrations.WHATSAPP, DEMO_WHATSAPP, ctx
    )
    return DEMO_EMAIL, DEMO_PASSWORD, True
