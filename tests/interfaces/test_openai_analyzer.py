"""The OpenAI analyzer through the real `openai` SDK against a local Chat Completions server:
the request field by field, retries on 429, the offline fallback on failures and timeouts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import pytest

from application.ai.ports import MessageAnalysis
from interfaces.providers.openai_model import SCHEMA, OpenAIAnalyzer
from tests.support.openai_server import ANALYSIS, OpenAIServer

OFFLINE = MessageAnalysis(
    sentiment=0.0,
    confidence=0.3,
    urgency=10,
    intent="other",
    summary="offline",
    language="en",
    model="offline",
)


class Fallback:
    """The analyzer used when the model fails (the offline one in production): counts calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def analyse(self, text: str, *, context: Sequence[str] = ()) -> MessageAnalysis:
        self.calls.append(text)
        return OFFLINE


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def analyzer(server: OpenAIServer, fallback: Fallback, **options: float) -> OpenAIAnalyzer:
    return OpenAIAnalyzer(
        model="gpt-test-mini",
        fallback=fallback,
        api_key=server.api_key,
        base_url=f"{server.url}/v1",
        timeout=options.get("timeout", 5.0),
        max_retries=int(options.get("max_retries", 2)),
    )


def test_the_request_names_the_model_the_messages_and_the_json_schema(
    server: OpenAIServer,
) -> None:
    fallback = Fallback()
    result = analyzer(server, fallback).analyse(
        "My order is late, I need it TODAY!", context=["Hi", "Where is my order?"]
    )
    [request] = server.requests
    body = request.json
    assert request.header("authorization") == "Bearer sk-test-key"
    assert body["model"] == "gpt-test-mini" and body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and "sales team" in system["content"]
    assert user["role"] == "user" and user["content"].endswith("My order is late, I need it TODAY!")
    assert "- Where is my order?" in user["content"]
    schema = body["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    assert schema["json_schema"]["schema"] == SCHEMA
    assert result == MessageAnalysis(**ANALYSIS, model="gpt-test-mini", tokens_in=57, tokens_out=31)
    assert fallback.calls == []


def test_a_rate_limit_then_an_answer_gives_one_analysis(server: OpenAIServer) -> None:
    server.fail_next(1, status=429)
    fallback = Fallback()
    result = analyzer(server, fallback).analyse("Quanto custa o plano anual?")
    assert len(server.requests) == 2  # the SDK retried once, with its backoff
    assert result.model == "gpt-test-mini" and fallback.calls == []


def test_repeated_server_errors_fall_back_to_the_offline_analysis(server: OpenAIServer) -> None:
    server.fail_next(3, status=500)
    fallback = Fallback()
    result = analyzer(server, fallback, max_retries=2).analyse("Olá")
    assert len(server.requests) == 3
    assert result == OFFLINE and fallback.calls == ["Olá"]


@pytest.mark.parametrize(
    "reply",
    [
        "not json at all",
        json.dumps(ANALYSIS | {"sentiment": 3}),
        json.dumps(ANALYSIS | {"intent": "gossip"}),
        json.dumps({k: v for k, v in ANALYSIS.items() if k != "urgency"}),
        json.dumps(ANALYSIS | {"summary": "  "}),
        None,
    ],
)
def test_an_answer_outside_the_schema_falls_back_to_the_offline_analysis(
    server: OpenAIServer, reply: str | None
) -> None:
    server.reply = reply
    fallback = Fallback()
    assert analyzer(server, fallback).analyse("Olá").model == "offline"
    assert len(server.requests) == 1  # a bad answer is not retried


def test_a_model_that_does_not_answer_in_time_is_given_up_within_the_bound(
    server: OpenAIServer,
) -> None:
    server.delay = 3.0
    fallback = Fallback()
    started = time.monotonic()
    result = analyzer(server, fallback, timeout=0.5, max_retries=0).analyse("Olá")
    assert time.monotonic() - started < 2.5
    assert result.model == "offline"


def test_a_wrong_key_falls_back_without_retrying(server: OpenAIServer) -> None:
    fallback = Fallback()
    wrong = OpenAIAnalyzer(
        model="gpt-test-mini", fallback=fallback, api_key="sk-wrong", base_url=f"{server.url}/v1"
    )
    assert wrong.analyse("Olá").model == "offline"
    assert len(server.requests) == 1


def test_the_sdks_own_environment_variables_give_a_platform_wide_key(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    result = OpenAIAnalyzer(model="gpt-test-mini", fallback=Fallback()).analyse("Oi")
    assert result.model == "gpt-test-mini" and len(server.requests) == 1


def test_the_production_fallback_is_the_offline_analyzer_with_model_offline(
    server: OpenAIServer,
) -> None:
    from application.ai.offline import OfflineAnalyzer

    server.fail_next(3, status=503)
    offline = OfflineAnalyzer()
    text = "Não recebi o pedido, preciso dele HOJE!"
    model = OpenAIAnalyzer(
        model="gpt-test-mini", fallback=offline, api_key=server.api_key, base_url=f"{server.url}/v1"
    )
    result = model.analyse(text)
    assert result == offline.analyse(text)
    assert result.model == "offline" and result.sentiment < 0
