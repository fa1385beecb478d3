"""Which model analyses an organization's messages: OpenAI (or a compatible server) when a key
is at hand — the organization's own, sealed in its settings, else the platform's
`OPENAI_API_KEY` — and the offline analyzer otherwise. Prompts carry one organization's data:
an analyzer is made for one organization's call and holds only its key."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from application.ai.ports import MessageAnalyzer
from application.ai.settings import organization_key, setting
from application.conversations.providers import SecretBox
from application.store import CrmApplication


class ModelFactory(Protocol):
    """Makes analyzers; the adapter (interfaces/providers/openai_model.py) implements it."""

    def analyzer(self, *, model: str | None, api_key: str | None) -> MessageAnalyzer:
        """A model analyzer when a key is given or the platform has one, else the offline."""


def analyzer_for(
    app: CrmApplication, box: SecretBox, factory: ModelFactory, organization_id: UUID
) -> MessageAnalyzer:
    model = setting(app, organization_id, "model")
    return factory.analyzer(model=model, api_key=organization_key(app, box, organization_id))
