"""Anthropic's Messages API (``POST /v1/messages``), non-streaming.

Suites are written in the OpenAI chat shape, so this dialect translates rather than forwards:
Anthropic rejects any field it does not know, and a 400 would fail every case of a run.

Request mapping (OpenAI-style -> Anthropic):

- ``system`` and ``developer`` messages are taken out of ``messages`` and their texts, joined by a
  blank line, become the top-level ``system`` string; ``user``/``assistant`` messages keep their
  order and content (a string or a list of content blocks, passed through), and only ``role`` and
  ``content`` (Anthropic refuses other keys such as ``name``).
- ``max_tokens`` is required: ``params["max_tokens"]``, else ``params["max_completion_tokens"]``,
  else the profile's ``max_tokens`` option, else 1024.
- ``stop`` (a string or a list) becomes ``stop_sequences`` (a list); a native ``stop_sequences`` wins.
- ``temperature``, ``top_p``, ``top_k``, ``metadata`` and the native ``thinking``, ``tools``,
  ``tool_choice`` and ``service_tier`` pass through unchanged (values are not converted: OpenAI
  allows a temperature up to 2, Anthropic up to 1, and the server's 400 says so).
- Everything else is dropped: ``seed``, ``frequency_penalty``, ``presence_penalty``,
  ``response_format``, ``n``, ``logprobs``, ``user``, ``stream``...

The answer's text is the concatenation of its ``text`` blocks (``thinking`` and ``tool_use`` blocks
are not text); ``stop_reason`` is the finish reason. An answer with neither a text nor a ``tool_use``
block is a malformed body, retried like a broken one.

Retries follow Anthropic's own SDKs: an ``x-should-retry`` header decides when present, else 408,
409, 429 and 5xx (529 is "overloaded") are retried. The server's delay is ``retry-after-ms`` or
``retry-after``, else the RFC 3339 ``anthropic-ratelimit-*-reset`` time of the exhausted budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .base import (
    RETRYABLE_STATUSES,
    Budget,
    ChatResponse,
    ClientOptions,
    MalformedAnswer,
    NoAnswer,
    Provider,
    RateLimits,
    retry_after,
    stated_budget,
)
from .profiles import ProviderProfile

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BASE_URL_REQUIRED",
    "DEFAULT_BASE_URL",
    "OWN_PROFILE_KEYS",
    "AnthropicDialect",
    "check_options",
    "identity",
    "open_provider",
    "parse_rfc3339",
    "rate_limits",
    "server_delay",
    "split_system",
]

BASE_URL_REQUIRED = False
OWN_PROFILE_KEYS: frozenset[str] = frozenset()
DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

_SYSTEM_ROLES = frozenset({"system", "developer"})
_PASSED_PARAMS = ("temperature", "top_p", "top_k", "metadata", "thinking", "tools", "tool_choice", "service_tier")
_BUDGETS = ("requests", "tokens", "input-tokens", "output-tokens")
_OPTIONS = frozenset({"version", "max_tokens"})


# -- the request ---------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the ``text`` of its text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"
        )
    return "" if content is None else str(content)


def split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The ``system`` string (system and developer messages, joined) and the remaining messages."""
    system = [_text_of(m.get("content")) for m in messages if m.get("role") in _SYSTEM_ROLES]
    chat = [
        {"role": m.get("role"), "content": m.get("content")} for m in messages if m.get("role") not in _SYSTEM_ROLES
    ]
    return "\n\n".join(text for text in system if text), chat


def _max_tokens(params: Mapping[str, Any], default: int) -> Any:
    for key in ("max_tokens", "max_completion_tokens"):
        if params.get(key) is not None:
            return params[key]  # as given: a bad value is the server's 400, not a crash here
    return default


def _stop_sequences(params: Mapping[str, Any]) -> list[str] | None:
    stop = params.get("stop_sequences", params.get("stop"))
    if stop is None or stop == [] or stop == "":
        return None
    return [str(s) for s in stop] if isinstance(stop, (list, tuple)) else [str(stop)]


# -- the retry headers ---------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d+)")


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp as Anthropic writes its resets (``2025-01-01T00:00:05Z``), aware (UTC
    if it names no offset); ``None`` when it is not one. Python 3.10's ``fromisoformat`` knows
    neither ``Z`` nor fractions of other than 3 or 6 digits, hence the rewriting."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: m.group(1)[:7].ljust(7, "0"), text, count=1)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _reset_delay(headers: Mapping[str, str]) -> float | None:
    """Seconds until the latest reset among the exhausted budgets; ``None`` if none is exhausted."""
    delays = []
    for budget in _BUDGETS:
        if headers.get(f"anthropic-ratelimit-{budget}-remaining", "").strip() != "0":
            continue
        when = parse_rfc3339(headers.get(f"anthropic-ratelimit-{budget}-reset", ""))
        if when is not None:
            delays.append(max(0.0, when.timestamp() - time.time()))
    return max(delays) if delays else None


def server_delay(headers: Mapping[str, str]) -> float | None:
    """The delay the server asked for: ``retry-after-ms``, ``retry-after``, else the reset of the
    exhausted rate-limit budget(s), else ``None`` (backoff decides)."""
    headers = {key.lower(): value for key, value in headers.items()}
    delay = retry_after(headers)
    return delay if delay is not None else _reset_delay(headers)


def rate_limits(headers: Mapping[str, str]) -> RateLimits | None:
    """The ``anthropic-ratelimit-requests-*`` and ``-tokens-*`` budgets (per minute) of a response."""
    found = {key.lower(): value for key, value in headers.items() if key[:20].lower() == "anthropic-ratelimit-"}
    if not found:
        return None

    def budget(kind: str) -> Budget | None:
        when = parse_rfc3339(found.get(f"anthropic-ratelimit-{kind}-reset", ""))
        reset = max(0.0, when.timestamp() - time.time()) if when is not None else None
        prefix = f"anthropic-ratelimit-{kind}"
        return stated_budget(found.get(f"{prefix}-limit"), found.get(f"{prefix}-remaining"), reset)

    return RateLimits(budget("requests"), budget("tokens"))


# -- the dialect ---------------------------------------------------------------------------------


def _prompt_tokens(usage: Mapping[str, Any]) -> int:
    """Input tokens, cached or not: what the prompt cost."""
    return sum(
        int(usage.get(key) or 0) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


class AnthropicDialect:
    """The Messages API for one profile: its ``anthropic-version`` and default ``max_tokens``."""

    path = "messages"

    def __init__(self, version: str = DEFAULT_VERSION, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.version = version
        self.max_tokens = max_tokens

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.version}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def payload(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
        system, chat = split_system(messages)
        body: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(params, self.max_tokens), "messages": chat}
        if system:
            body["system"] = system
        body.update((key, params[key]) for key in _PASSED_PARAMS if params.get(key) is not None)
        stop = _stop_sequences(params)
        if stop is not None:
            body["stop_sequences"] = stop
        return body

    def _refused(self, body: Any, latency_ms: float) -> ChatResponse:
        usage = body.get("usage") or {}
        return ChatResponse(
            text="",
            prompt_tokens=_prompt_tokens(usage),
            completion_tokens=int(usage.get("output_tokens") or 0),
            latency_ms=latency_ms,
            model=str(body.get("model") or ""),
            finish_reason="refusal",
            refusal="the model declined to answer (stop_reason: refusal)",
        )

    def answer(self, body: Any, latency_ms: float) -> ChatResponse:
        try:
            blocks = body["content"]
            if not isinstance(blocks, list):
                raise MalformedAnswer
            texts = [block["text"] for block in blocks if block["type"] == "text"]
            if not all(isinstance(text, str) for text in texts):
                raise MalformedAnswer
            if not texts and not any(block["type"] == "tool_use" for block in blocks):
                stop = body.get("stop_reason")
                if stop == "refusal":  # said outright: an answer, kept as one (OpenAI's refusal field)
                    return self._refused(body, latency_ms)
                if stop == "max_tokens":  # thinking used every token: the same request stops the same way
                    raise NoAnswer("the token limit was reached before any text (stop_reason: max_tokens)")
                raise MalformedAnswer  # no answer: scored as "", it would pass every negative assertion
            usage = body.get("usage") or {}
            return ChatResponse(
                text="".join(texts),
                prompt_tokens=_prompt_tokens(usage),
                completion_tokens=int(usage.get("output_tokens") or 0),
                latency_ms=latency_ms,
                model=str(body.get("model") or ""),
                finish_reason=body.get("stop_reason"),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise MalformedAnswer from None

    def should_retry(self, response: httpx.Response) -> bool:
        verdict = str(response.headers.get("x-should-retry", "")).strip().lower()
        if verdict in ("true", "false"):
            return verdict == "true"
        return response.status_code in RETRYABLE_STATUSES

    def server_delay(self, headers: Mapping[str, str]) -> float | None:
        return server_delay(headers)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimits | None:
        return rate_limits(headers)

    def error_detail(self, response: httpx.Response) -> str:
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, dict):
            parts = [str(error[key]) for key in ("type", "message") if error.get(key)]
            detail = ": ".join(parts)
        else:
            detail = str(error or "")
        return detail or response.reason_phrase or "error"


# -- the kind of provider ------------------------------------------------------------------------


def check_options(options: Mapping[str, Any]) -> None:
    """A profile's own settings: ``version`` (the ``anthropic-version`` header) and ``max_tokens``
    (the default when a case gives none)."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    version = options.get("version", DEFAULT_VERSION)
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f"version must be a non-empty string such as '{DEFAULT_VERSION}', not {version!r}")
    max_tokens = options.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, not {max_tokens!r}")


def identity(profile: ProviderProfile) -> dict[str, str]:
    """Name and URL, and what the profile adds to every request: a case without ``max_tokens``
    gets the profile's, so changing it must miss the cache."""
    return {
        "name": profile.name,
        "base_url": profile.base_url or DEFAULT_BASE_URL,
        "max_tokens": str(profile.options.get("max_tokens", DEFAULT_MAX_TOKENS)),
        "version": str(profile.options.get("version", DEFAULT_VERSION)).strip(),
    }


@asynccontextmanager
async def open_provider(
    profile: ProviderProfile, api_key: str | None, options: ClientOptions
) -> AsyncIterator[Provider]:
    from .http import HttpProvider  # httpx: only when a run starts

    check_options(profile.options)
    dialect = AnthropicDialect(
        version=profile.options.get("version", DEFAULT_VERSION).strip(),
        max_tokens=profile.options.get("max_tokens", DEFAULT_MAX_TOKENS),
    )
    known = identity(profile)
    provider = HttpProvider(dialect, known, known["base_url"], api_key, options)
    try:
        yield provider
    finally:
        await provider.aclose()
