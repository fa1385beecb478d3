"""Outbound provider adapters: they implement the ports of `application.conversations.providers`.

Every adapter turns a failure into `ProviderError`, translated once here: timeouts, connection
errors, 408, 429 and 5xx are retryable (the outbox backs off and tries again); any other 4xx is
not. Error messages carry what the provider said, never a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from application.conversations.providers import Credentials, ProviderError

#: reads (message, code) out of a provider's error body (already JSON-decoded, or None)
ErrorReader = Callable[[Any], tuple[str | None, str | None]]


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def setting(credentials: Credentials, name: str) -> str:
    """A required setting; a missing one is a configuration fault no retry will cure."""
    return _required(credentials.settings, name, "setting", credentials)


def secret(credentials: Credentials, name: str) -> str:
    return _required(credentials.secrets, name, "secret", credentials)


def _required(values: Mapping[str, str], name: str, what: str, credentials: Credentials) -> str:
    value = values.get(name)
    if not value:
        raise ProviderError(
            f"{credentials.provider_type}: {what} {name!r} is not configured",
            retryable=False,
            code="misconfigured",
        )
    return value


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    provider: str,
    headers: Mapping[str, str],
    body: Any = None,
    params: Mapping[str, str] | None = None,
    read_error: ErrorReader,
) -> Any:
    """One JSON request; the decoded answer on 2xx, else `ProviderError`."""
    try:
        response = client.request(method, url, headers=headers, json=body, params=params)
    except httpx.TransportError as exc:
        # the provider may or may not have acted on it: the outbox's key makes a retry safe
        raise ProviderError(
            f"{provider}: {type(exc).__name__} on {method} {httpx.URL(url).path}",
            retryable=True,
            code="unreachable",
        ) from exc
    answer = decode(response)
    if response.is_success:
        return answer
    message, code = read_error(answer) if answer is not None else (None, None)
    raise ProviderError(
        f"{provider} answered {response.status_code}: {message or response.reason_phrase}",
        retryable=is_retryable_status(response.status_code),
        code=code or str(response.status_code),
    )


def decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def bad_response(provider: str, what: str) -> ProviderError:
    # a 2xx we cannot read was probably acted on: retrying could send twice
    return ProviderError(f"{provider}: {what}", retryable=False, code="bad_response")
