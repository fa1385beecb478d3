"""`crm simulate-inbound`: post a WhatsApp message to a running server as Meta would send it.

For local demos and smoke checks: the payload is shaped like the Cloud API's and signed with the
organization's own configured app secret (read from the event store on this machine), so it
goes through exactly the path a real webhook takes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from uuid import UUID, uuid4

import click
import httpx

from application.conversations.integrations import credentials
from domain.integrations import WHATSAPP
from interfaces.services import Services


def inbound_payload(phone_number_id: str, sender: str, name: str, text: str) -> bytes:
    digits = "".join(c for c in sender if c.isdigit())
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": name}, "wa_id": digits}],
        "messages": [
            {
                "from": digits,
                "id": f"wamid.demo-{uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "demo", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def simulate(
    services: Services, organization_id: UUID, url: str, sender: str, name: str, text: str
) -> httpx.Response:
    creds = credentials(
        services.app, services.secret_box, organization_id, WHATSAPP, "business_api"
    )
    if creds is None:
        raise click.ClickException("this organization has no WhatsApp Business API set up")
    body = inbound_payload(creds.settings["phone_number_id"], sender, name, text)
    digest = hmac.new(creds.secrets["app_secret"].encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{url.rstrip('/')}/webhooks/whatsapp/{organization_id}",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"},
        timeout=10,
    )
