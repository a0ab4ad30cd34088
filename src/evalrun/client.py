"""The provider client: one OpenAI-compatible chat call, retried only when a retry can help.

It knows nothing of cases, caches or displays. It retries connect errors, timeouts, malformed
bodies, 408, 409, 429 and 5xx, honours the server's own word on when to come back (``retry-after``,
``retry-after-ms``, ``x-ratelimit-reset-*``), and otherwise backs off exponentially with jitter.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

__all__ = ["ChatResponse", "ProviderClient", "ProviderError", "parse_duration", "retry_delay"]

RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
_MAX_DELAY = 60.0
_RETRYABLE_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class ChatResponse:
    """A complete answer from the provider."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    model: str = ""
    finish_reason: str | None = None


class ProviderError(Exception):
    """A call that failed for good: not retryable, or out of retries."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True)
class RetryNotice:
    """Told to the caller before each retry, so it can count, display and adapt."""

    attempt: int
    delay: float
    reason: str
    status: int | None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float | None:
    """Read a Go-style duration as Groq and OpenAI write it (``1m30s``, ``7.66s``, ``2ms``)."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _retry_after(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_delay(headers: Mapping[str, str]) -> float | None:
    """The delay the server asked for, if it said one."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    if "retry-after" in headers:
        delay = _retry_after(headers["retry-after"])
        if delay is not None:
            return delay
    resets = {kind: parse_duration(headers.get(f"x-ratelimit-reset-{kind}", "")) for kind in ("requests", "tokens")}
    exhausted = [resets[k] for k in resets if headers.get(f"x-ratelimit-remaining-{k}", "").strip() == "0"]
    known = [d for d in (exhausted or resets.values()) if d is not None]
    if not known:
        return None
    return max(known) if exhausted else min(known)


def retry_delay(headers: Mapping[str, str], attempt: int, base: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    delay = _server_delay(headers)
    if delay is None:
        ceiling = base * 2 ** (attempt - 1)
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    return min(delay, _MAX_DELAY)


class _Retry(Exception):
    def __init__(self, reason: str, status: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


def _parse_body(response: httpx.Response, latency_ms: float) -> ChatResponse:
    try:
        body = response.json()
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
        return ChatResponse(
            text=text if isinstance(text, str) else str(text),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            model=str(body.get("model") or ""),
            finish_reason=choice.get("finish_reason"),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _Retry("malformed response body", response.status_code) from None


def _error_detail(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = None
    return str(message or response.reason_phrase or "error")[:200]


class ProviderClient:
    """The HTTP side of one provider: ``concurrency`` keep-alive connections, retries, errors."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        concurrency: int = 10,
        request_timeout: float = 60.0,
        retries: int = 4,
        retry_base_delay: float = 0.5,
        trust_env: bool = True,
    ) -> None:
        self._secret = api_key
        self._retries = retries
        self._base_delay = retry_base_delay
        # One single-connection client per slot instead of one pool of N: httpcore's pool scans all
        # of its connections on every request, which at 100 connections cuts throughput by 4-6x.
        verify = httpx.create_ssl_context()  # loaded once (~20 ms), shared by every lane
        self._options: dict[str, Any] = {
            "base_url": base_url.rstrip("/") + "/",
            "headers": {"authorization": f"Bearer {api_key}"} if api_key else {},
            "timeout": httpx.Timeout(request_timeout, connect=min(10.0, request_timeout)),
            "trust_env": trust_env,
            "verify": verify,
        }
        self._lanes = [self._new_client(1) for _ in range(concurrency)]
        self._idle = list(self._lanes)
        self._overflow: httpx.AsyncClient | None = None

    def _new_client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(limits=limits, **self._options)

    async def _post(self, payload: Mapping[str, Any]) -> httpx.Response:
        if self._idle:
            lane = self._idle.pop()  # last in, first out: the warmest keep-alive connection
            try:
                return await lane.post("chat/completions", json=payload)
            finally:
                self._idle.append(lane)
        if self._overflow is None:  # more callers than slots: only outside the engine's limiter
            self._overflow = self._new_client(len(self._lanes))
        return await self._overflow.post("chat/completions", json=payload)

    async def aclose(self) -> None:
        for client in [*self._lanes, *([self._overflow] if self._overflow else [])]:
            await client.aclose()

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def _attempt(self, payload: Mapping[str, Any]) -> ChatResponse:
        started = time.perf_counter()
        try:
            response = await self._post(payload)
        except _RETRYABLE_EXCEPTIONS as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code == 200:
            return _parse_body(response, latency_ms)
        detail = f"HTTP {response.status_code}: {_error_detail(response)}"
        if response.status_code in RETRYABLE_STATUSES:
            raise _Retry(detail, response.status_code, response.headers)
        raise ProviderError(self._scrub(detail), response.status_code)

    async def complete(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> tuple[ChatResponse, int]:
        """Send one chat request, retrying within the budget; return the answer and attempts made."""
        payload = {**params, "model": model, "messages": list(messages)}
        for attempt in range(1, self._retries + 2):
            try:
                return await self._attempt(payload), attempt
            except ProviderError as exc:
                exc.attempts = attempt
                raise
            except _Retry as retry:
                if attempt > self._retries:
                    raise ProviderError(self._scrub(retry.reason), retry.status, attempt) from None
                delay = retry_delay(retry.headers, attempt, self._base_delay)
                if on_retry is not None:
                    on_retry(RetryNotice(attempt, delay, self._scrub(retry.reason), retry.status))
                await anyio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def estimate_tokens(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> int:
    """A cheap upper-ish estimate of a request's tokens, for the TPM bucket before the call."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return math.ceil(chars / 4) + int(params.get("max_tokens") or params.get("max_completion_tokens") or 256)
