"""What every provider shares: the answer, the errors, the rate budgets, and the ``Provider`` seam.

The engine speaks only to ``Provider``, through the model client (``evalrun.client``): it never
knows which API, transport or server is behind one. A provider makes one attempt and classifies
what its API answered: an answer, a failure worth another attempt (with how long the server asked
to wait), or a final error; and, on every response, what the server said of the key's rate
budgets. Whether and when to try again is the client's policy, the same for every API.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "RETRYABLE_STATUSES",
    "Budget",
    "ChatResponse",
    "ClientOptions",
    "MalformedAnswer",
    "Provider",
    "ProviderError",
    "RateLimits",
    "Reply",
    "TransientError",
    "estimate_tokens",
    "is_loopback",
    "parse_duration",
    "retry_after",
    "retry_after_seconds",
    "scrub",
    "stated_budget",
]

#: What most APIs mean by "try again": timeout, conflict, rate limit, and the server's own errors.
RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class ChatResponse:
    """A complete answer from a provider, whatever its API."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    model: str = ""
    finish_reason: str | None = None
    #: The model's stated refusal (OpenAI's ``message.refusal``): an answer, though its text is empty.
    refusal: str | None = None


class MalformedAnswer(Exception):
    """A 200 whose body is not the API's answer: retried, as a truncated body usually is transient."""


class NoAnswer(Exception):
    """A well-formed answer that holds none, and says why (the token limit reached before any
    text, a content filter): not retried, since the same request would stop the same way, and
    not scored as an empty answer, which would pass every negative assertion."""


class ProviderError(Exception):
    """A call that failed for good: not retryable, or out of retries. The message holds no secret."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class Budget:
    """One rate budget of an API key as a response states it: requests or tokens."""

    limit: float | None  # the budget, per minute as OpenAI, Groq (tokens) and Anthropic state it
    remaining: float | None  # what is left of it now
    reset: float | None  # seconds until it is whole again


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What a response said of the key's budgets (``None``: it did not say)."""

    requests: Budget | None = None
    tokens: Budget | None = None

    @property
    def spent(self) -> bool:
        """Whether a budget is stated as spent (nothing remaining)."""
        return any(budget is not None and budget.remaining == 0 for budget in (self.requests, self.tokens))


@dataclass(frozen=True, slots=True)
class Reply:
    """One successful attempt: the answer, and what the response said of the rate budgets."""

    answer: ChatResponse
    limits: RateLimits | None = None


class TransientError(Exception):
    """An attempt that failed in a way worth another (timeout, reset, 408, 409, 429, 5xx, a broken
    body). ``delay`` is the wait the server asked for, ``None`` when it said nothing, which for a
    429 is itself a sign: a budget names its reset, a concurrency cap usually names nothing."""

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        delay: float | None = None,
        limits: RateLimits | None = None,
        *,
        unreachable: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.delay = delay
        self.limits = limits
        #: The server was never reached (a name that does not resolve, a refused or timed-out
        #: connection, a TLS handshake that failed): no request got there.
        self.unreachable = unreachable


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """How a provider talks to its server; none of it changes an answer or a cache key."""

    #: Seconds an attempt may take in all: connecting, sending, and the whole answer read.
    request_timeout: float = 60.0
    #: A few MB: far above any chat answer, low enough that a runaway body cannot fill memory,
    #: results or the cache. A larger response is an error, not retried (it would come back as large).
    max_response_bytes: int = 4 * 1024 * 1024


class Provider(Protocol):
    """A model API as the model client sees it: one attempt of one chat call."""

    @property
    def identity(self) -> Mapping[str, str]:
        """What the cache key records of the provider: its name and where its answers come from."""
        ...

    async def send(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Reply:
        """One attempt: the reply; ``TransientError`` when another attempt may succeed, else
        ``ProviderError``. Messages hold no secret."""
        ...

    async def server_stats(self) -> dict[str, Any] | None:
        """What the server says it served, where the provider can see its server (the simulated one)."""
        ...

    async def aclose(self) -> None: ...


# -- what servers say in their headers ----------------------------------------------------------

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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for in the headers every API shares: ``retry-after-ms`` (OpenAI,
    Anthropic), else ``retry-after``; None when neither says (a provider's own headers may)."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    if "retry-after" in headers:
        return retry_after_seconds(headers["retry-after"])
    return None


def retry_after_seconds(value: str) -> float | None:
    """``retry-after`` as HTTP has it: seconds, or an HTTP date."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # here: it pulls in socket, and most runs never see an HTTP date

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def stated_budget(limit: str | None, remaining: str | None, reset: float | None) -> Budget | None:
    """A budget from a response's header values (text; ``reset`` already in seconds); ``None``
    when it states none of them. A value that is not a number counts as unstated."""
    numbers = _number(limit), _number(remaining)
    if numbers == (None, None) and reset is None:
        return None
    return Budget(numbers[0], numbers[1], reset)


# -- small things every provider needs ------------------------------------------------------------


_UNSENDABLE = re.compile(r"[^\x21-\x7e]")  # where a quoted key is cut or escaped: spaces, controls, non-ASCII
_PIECE = 4  # the shortest piece of a key worth masking alone: shorter ones are not secrets


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the secret masked: error messages quote servers, and servers quote requests.

    A key that no header can carry (a line break, a non-ASCII letter) is quoted by the errors it
    causes escaped (``b'Bearer sk-...\\r'``) or cut at the bad character; so its escaped forms and
    the pieces between bad characters are masked too, longest first."""
    if not secret:
        return text
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1]}
    forms.update(piece for piece in _UNSENDABLE.split(secret) if len(piece) >= _PIECE)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine (never sent through a proxy from the environment)."""
    import ipaddress

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def estimate_tokens(
    messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], answer_tokens: float | None = None
) -> int:
    """A cheap estimate of a request's tokens, for the TPM bucket before the call: the prompt at
    four characters a token, and the answer's ``max_tokens`` when the request caps it (what
    OpenAI's limiter itself reserves), else ``answer_tokens``, what the caller expects answers to
    cost (256, a paragraph, while it has seen none)."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    cap = params.get("max_tokens") or params.get("max_completion_tokens")
    answer = int(cap) if cap else (answer_tokens if answer_tokens is not None else 256)
    return math.ceil(chars / 4 + answer)
