"""A local server speaking OpenAI's Chat Completions API, for the real `openai` SDK to call.

`POST /v1/chat/completions` with a Bearer key answers a `chat.completion` whose message content
is whatever `reply` says (a JSON analysis by default), with token usage; errors use OpenAI's
shape (`{"error": {"message", "type", "code"}}`). `delay` makes it slow (a timeout test).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support.provider_servers import Answer, ProviderServer, RecordedRequest

ANALYSIS: dict[str, Any] = {
    "sentiment": -0.6,
    "confidence": 0.9,
    "urgency": 85,
    "intent": "complaint",
    "summary": "The contact complains the order is late and wants it today.",
    "language": "en",
}


class OpenAIServer(ProviderServer):
    name = "openai"

    def __init__(self, api_key: str = "sk-test-key", model: str = "gpt-test-mini") -> None:
        super().__init__()
        self.api_key = api_key
        self.model = model
        self.reply: str | None = json.dumps(ANALYSIS)
        self.delay = 0.0

    def handle(self, request: RecordedRequest) -> Answer:
        if (request.method, request.path) != ("POST", "/v1/chat/completions"):
            return 404, self.error_body(404, f"Unknown request URL: {request.path}")
        if request.header("authorization") != f"Bearer {self.api_key}":
            return 401, self.error_body(401, "Incorrect API key provided.")
        if self.delay:
            time.sleep(self.delay)
        body = request.json or {}
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 57, "completion_tokens": 31, "total_tokens": 88},
        }

    def error_body(self, status: int, message: str) -> Any:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
