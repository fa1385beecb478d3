"""`POST /ai/analyze/sentiment`: the offline analyzer without a key, the organization's own key
and model through the SDK to a local Chat Completions server, one organization's key only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.support.api import assert_problem, cheap_hashing, register  # noqa: F401
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def model_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(api_key="sk-acme-own") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        yield server


def test_without_a_key_the_offline_analyzer_reads_the_text(
    client: TestClient[Any], model_server: OpenAIServer
) -> None:
    acme = register(client, "Acme")
    response = acme.post("/ai/analyze/sentiment", json={"text": "Péssimo atendimento, não gostei"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "offline" and body["sentiment"] < 0 and body["language"] == "pt"
    assert body["tokens_in"] == body["tokens_out"] == 0
    assert model_server.requests == []


def test_the_organizations_own_key_and_model_are_used_for_its_texts_only(
    client: TestClient[Any], model_server: OpenAIServer
) -> None:
    acme = register(client, "Acme")
    globex = register(client, "Globex")
    settings = {"api_key": "sk-acme-own", "model": "acme-model"}
    assert acme.put("/ai/settings", json=settings).status_code == 200
    answer = acme.post("/ai/analyze/sentiment", json={"text": "My order is late!"}).json()
    assert answer["model"] == "acme-model" and answer["intent"] == "complaint"
    assert (answer["tokens_in"], answer["tokens_out"]) == (57, 31)
    [request] = model_server.requests
    assert request.header("authorization") == "Bearer sk-acme-own"
    assert request.json["model"] == "acme-model"
    # Globex has no key: its text never reaches Acme's model
    other = globex.post("/ai/analyze/sentiment", json={"text": "Hello"}).json()
    assert other["model"] == "offline" and len(model_server.requests) == 1


def test_a_failing_model_answers_with_the_offline_analysis(
    client: TestClient[Any], model_server: OpenAIServer
) -> None:
    acme = register(client, "Acme")
    acme.put("/ai/settings", json={"api_key": "sk-acme-own"})
    model_server.fail_next(3, status=500)
    answer = acme.post("/ai/analyze/sentiment", json={"text": "Olá, bom dia"}).json()
    assert answer["model"] == "offline"


@pytest.mark.parametrize(("body", "status"), [({"text": " "}, 422), ({}, 400), ({"t": 1}, 400)])
def test_an_empty_or_missing_text_is_refused(
    client: TestClient[Any], body: dict[str, Any], status: int
) -> None:
    acme = register(client, "Acme")
    assert_problem(acme.post("/ai/analyze/sentiment", json=body), status)
