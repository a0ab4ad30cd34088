"""The OpenAI-compatible chat-completions API: OpenAI, Groq, OpenRouter, Ollama, vLLM, llama.cpp...

Its rate headers are the richest: ``retry-after-ms``, ``retry-after``, and on every response the
``x-ratelimit-limit/remaining/reset-requests`` trio and its ``-tokens`` twin (Groq writes
durations like ``1m30s``). Groq's ``-requests`` trio counts per day where OpenAI's counts per
minute; read as per minute it paces at a rate that never binds, so it does no harm, and Groq's
per-minute request limit, which no header states, is the profile's ``rpm``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
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
    parse_duration,
    retry_after,
    stated_budget,
)
from .profiles import ProviderProfile

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DIALECT",
    "OpenAIDialect",
    "check_options",
    "identity",
    "open_provider",
    "rate_limits",
    "server_delay",
]

BASE_URL_REQUIRED = True
OWN_PROFILE_KEYS: frozenset[str] = frozenset()


def server_delay(headers: Mapping[str, str]) -> float | None:
    """The delay the server asked for: ``retry-after-ms``, ``retry-after``, else the reset of the
    exhausted budget (requests or tokens), else the nearer reset."""
    delay = retry_after(headers)
    if delay is not None:
        return delay
    resets = {kind: parse_duration(headers.get(f"x-ratelimit-reset-{kind}", "")) for kind in ("requests", "tokens")}
    exhausted = [resets[k] for k in resets if headers.get(f"x-ratelimit-remaining-{k}", "").strip() == "0"]
    known = [d for d in (exhausted or resets.values()) if d is not None]
    if not known:
        return None
    return max(known) if exhausted else min(known)


_PREFIX = "x-ratelimit-"


def rate_limits(headers: Mapping[str, str]) -> RateLimits | None:
    """The ``x-ratelimit-*`` budgets of a response; ``None`` when it states none (most local servers)."""
    raw = getattr(headers, "raw", None)  # httpx's own list: one pass, no per-name lookups
    if raw is not None:
        items = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw if k[:12].lower() == b"x-ratelimit-"
        ]
    else:
        items = [(k.lower(), v) for k, v in headers.items() if k[:12].lower() == _PREFIX]
    if not items:
        return None
    found = dict(items)

    def budget(kind: str) -> Budget | None:
        reset = parse_duration(found.get(f"x-ratelimit-reset-{kind}", ""))
        return stated_budget(found.get(f"x-ratelimit-limit-{kind}"), found.get(f"x-ratelimit-remaining-{kind}"), reset)

    return RateLimits(budget("requests"), budget("tokens"))


#: Why a choice may end with no content, in the words the error gives (not retried: see NoAnswer).
_EMPTY_BECAUSE = {
    "length": "the token limit was reached before any text (finish_reason: length)",
    "content_filter": "the provider's content filter withheld it (finish_reason: content_filter)",
}


def _explain_no_content(finish_reason: object) -> None:
    if isinstance(finish_reason, str) and finish_reason in _EMPTY_BECAUSE:
        raise NoAnswer(_EMPTY_BECAUSE[finish_reason])


class OpenAIDialect:
    path = "chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def payload(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
        return {**params, "model": model, "messages": list(messages)}

    def answer(self, body: Any, latency_ms: float) -> ChatResponse:
        try:
            choice = body["choices"][0]
            message = choice["message"]
            refusal = message.get("refusal")
            refusal = refusal if isinstance(refusal, str) else None
            text = message.get("content")
            if text is None:  # no answer, unless the message says why: a refusal, or tool calls instead
                if refusal is None and not (message.get("tool_calls") or message.get("function_call")):
                    _explain_no_content(choice.get("finish_reason"))
                    raise MalformedAnswer  # scored as "", it would pass every negative assertion
                text = ""
            usage = body.get("usage") or {}
            return ChatResponse(
                text=text if isinstance(text, str) else str(text),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                latency_ms=latency_ms,
                model=str(body.get("model") or ""),
                finish_reason=choice.get("finish_reason"),
                refusal=refusal,
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise MalformedAnswer from None

    def should_retry(self, response: httpx.Response) -> bool:
        return response.status_code in RETRYABLE_STATUSES

    def server_delay(self, headers: Mapping[str, str]) -> float | None:
        return server_delay(headers)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimits | None:
        return rate_limits(headers)

    def error_detail(self, response: httpx.Response) -> str:
        try:
            error = response.json().get("error", {})
            message = error.get("message") if isinstance(error, dict) else str(error)
        except (ValueError, AttributeError):
            message = None
        return str(message or response.reason_phrase or "error")


DIALECT = OpenAIDialect()


def check_options(options: Mapping[str, Any]) -> None:
    if options:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(options))}")


def identity(profile: ProviderProfile) -> dict[str, str]:
    return {"name": profile.name, "base_url": profile.base_url}


@asynccontextmanager
async def open_provider(
    profile: ProviderProfile, api_key: str | None, options: ClientOptions
) -> AsyncIterator[Provider]:
    from .http import HttpProvider  # httpx: only when a run starts

    provider = HttpProvider(DIALECT, identity(profile), profile.base_url, api_key, options)
    try:
        yield provider
    finally:
        await provider.aclose()
