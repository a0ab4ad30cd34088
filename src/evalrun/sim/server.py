"""The simulated OpenAI-compatible provider: a real HTTP/1.1 server on loopback.

Written on a bare ``asyncio.Protocol`` so that it answers thousands of requests a second on one
core and never limits a benchmark. Latency is a timer, not a sleeping coroutine; faults (429 with
``retry-after``, 500, hung requests, malformed bodies) are injected at configured rates from a
seeded generator, so a fault run can be repeated. ``/stats`` reports what the server saw,
including the peak number of requests it was serving at once: the engine's real concurrency.

It can also refuse work the way a real key does, so that a client's rate limiting is tested
against the answers it will meet (``SimConfig.rpm``, ``tpm``, ``max_inflight``):

- a request and token budget (``_Bucket``): every chat answer carries Groq/OpenAI's
  ``x-ratelimit-limit/remaining/reset-requests/tokens`` headers, and a request the budget cannot
  pay for is refused at once with 429 and ``retry-after`` in whole seconds, as Groq sends it;
- a gateway's concurrency cap: one request more than ``max_inflight`` is refused at once with a
  bare 429 that says nothing about when to come back.

A chat request is admitted in this order: the API key (401), the concurrency cap, the budget, the
random faults, then the answer after the latency. ``/stats`` counts 429s by cause, and those sent
to requests that arrived after the first 200: what a client that learns its limits should keep
near zero.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .answers import answer
from .config import SimConfig

__all__ = ["SimConfig", "SimServer"]

CHAT_PATHS = frozenset({"/v1/chat/completions", "/openai/v1/chat/completions", "/chat/completions"})

#: Why a 429 was sent: the key's budget, the concurrency cap, or the random ``rate_429`` fault.
_CAUSES = ("budget", "inflight", "fault")


def _no_refusals() -> dict[str, int]:
    return dict.fromkeys(_CAUSES, 0)


@dataclass
class _Stats:
    requests: int = 0
    inflight: int = 0
    peak_inflight: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    rate_limited: dict[str, int] = field(default_factory=_no_refusals)
    #: ``time.time()`` when the first 200 since the last reset was sent.
    first_response_at: float | None = None
    rate_limited_after_first_response: int = 0
    #: Chat requests numbered in arrival order, never reset: a request arrived after the first 200
    #: when its number is above ``_first_response_arrival``, the count when that 200 was sent. A
    #: count, not a clock, so that the order is exact and a request from before a reset is never
    #: taken for one after it.
    arrivals: int = 0
    _first_response_arrival: int | None = None
    started: float = field(default_factory=time.time)
    #: When each chat request arrived since the last reset (monotonic; the first million): what the
    #: busiest window is read from, the count a budget must never exceed over any such window.
    stamps: list[float] = field(default_factory=list)

    def reset(self) -> None:
        """Start counting afresh; requests still in flight stay counted as in flight."""
        self.requests, self.peak_inflight, self.by_status, self.started = 0, self.inflight, Counter(), time.time()
        self.rate_limited, self.rate_limited_after_first_response = _no_refusals(), 0
        self.first_response_at = self._first_response_arrival = None
        self.stamps = []

    def arrived(self) -> int:
        """Count a chat request; its number in arrival order."""
        self.requests += 1
        self.arrivals += 1
        if len(self.stamps) < 1_000_000:
            self.stamps.append(time.monotonic())
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        return self.arrivals

    def answered(self, status: int, arrival: int, cause: str | None) -> None:
        """Count an answer sent to request number ``arrival``; ``cause`` says why a 429 was sent."""
        self.inflight -= 1
        self.by_status[str(status)] += 1
        if cause is not None:
            self.rate_limited[cause] += 1
            first = self._first_response_arrival
            if first is not None and arrival > first:
                self.rate_limited_after_first_response += 1
        elif status == 200 and self.first_response_at is None:
            self.first_response_at = time.time()
            self._first_response_arrival = self.arrivals

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "inflight": self.inflight,
            "peak_inflight": self.peak_inflight,
            "by_status": dict(self.by_status),
            "rate_limited": dict(self.rate_limited),
            "first_response_at": self.first_response_at,
            "rate_limited_after_first_response": self.rate_limited_after_first_response,
            "since": self.started,
            "busiest": {f"{seconds}s": _busiest(self.stamps, seconds) for seconds in (1, 6, 60)},
        }


def _busiest(stamps: list[float], seconds: float) -> int:
    """The most requests that arrived within any ``seconds`` (sliding, not calendar, windows)."""
    most, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def _duration(seconds: float) -> str:
    """A wait written as Groq and OpenAI write ``x-ratelimit-reset-*``: Go's duration (``1m30s``,
    ``2.5s``, ``450ms``, ``0s``), which ``providers.base.parse_duration`` reads. Whole milliseconds,
    rounded up, so that waiting that long is always enough (the epsilon keeps float noise such as
    ``0.1000000001`` from adding a millisecond)."""
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    text = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if minutes:
        hours, minutes = divmod(minutes, 60)
        text = (f"{hours}h" if hours else "") + f"{minutes}m" + text
    return text


class _Bucket:
    """One budget of a key (requests or tokens a minute) as a token bucket on the loop's clock.

    It refills continuously at ``per_minute / 60`` a second and holds one second's worth, at least
    one: OpenAI says it enforces per-minute limits over shorter periods, and a bucket holding a
    whole minute would let a 300-case run at 600 RPM go out in one burst, which no real key allows.
    It starts full. A request dearer than the whole bucket (a long prompt under a small TPM) is
    admitted when the bucket is full, so that it can pass at all; the bucket then goes into debt,
    paid back before anything else passes, so that the budget still holds over a minute.
    """

    __slots__ = ("_limit", "_names", "capacity", "rate", "stamp", "tokens")

    def __init__(self, kind: str, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.stamp = now
        self._limit = str(max(1, round(per_minute)))  # a budget below 1 a minute still passes 1
        self._names = tuple(f"x-ratelimit-{what}-{kind}" for what in ("limit", "remaining", "reset"))

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until a request of this cost fits: 0 when it fits now."""
        missing = min(cost, self.capacity) - self.tokens
        return missing / self.rate if missing > 0 else 0.0

    def describe(self, headers: dict[str, str], exhausted: bool) -> None:
        """Write the limit, what remains (0 when this budget refused the request) and the time
        until the bucket is full again."""
        limit, remaining, reset = self._names
        headers[limit] = self._limit
        headers[remaining] = "0" if exhausted or self.tokens < 1 else str(math.floor(self.tokens))
        headers[reset] = _duration((self.capacity - self.tokens) / self.rate)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _http_response(status: int, body: bytes, extra_headers: dict[str, str] | None = None) -> bytes:
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    head += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _error(status: int, message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind}}).encode()


_UNAUTHORIZED = _error(401, "invalid API key", "invalid_api_key")
_TOO_MANY = _error(429, "too many concurrent requests", "rate_limit_exceeded")
_OVERLOADED = _error(429, "simulated rate limit", "rate_limit_exceeded")


def _parse(body: bytes) -> dict[str, Any] | str:
    """The chat request, or what is wrong with it."""
    try:
        request = json.loads(body)
    except ValueError:
        return "request body is not JSON"
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        return "'messages' is required"
    return request


class _Answer:
    """The simulated model's answer to a request, and its usage: known as the request arrives, so
    that the token budget can charge for it before it is admitted."""

    __slots__ = ("completion_tokens", "finish", "prompt_tokens", "text")

    def __init__(self, request: dict[str, Any]) -> None:
        messages = request["messages"]
        users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = answer(str(users[-1]) if users else "")
        self.finish = "stop"
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens")
        if isinstance(max_tokens, int) and len(text) > max_tokens * 4:
            text, self.finish = text[: max_tokens * 4], "length"
        self.text = text
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        self.prompt_tokens = math.ceil(prompt_chars / 4)
        self.completion_tokens = math.ceil(len(text) / 4)


def _completion(request: dict[str, Any], reply: _Answer, request_id: int) -> bytes:
    usage = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }
    return json.dumps(
        {
            "id": f"simcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "sim"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": reply.finish}
            ],
            "usage": usage,
        }
    ).encode()


class _Connection(asyncio.Protocol):
    def __init__(self, server: SimServer) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._held = 0  # requests received and not yet answered on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.stats.inflight -= self._held
        self._held = 0
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1").split("\r\n")
            length, authorization = 0, ""
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip() or 0)
                elif name == "authorization":
                    authorization = value.strip()
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            method, _, rest = head[0].partition(" ")
            self._request(method, rest.partition(" ")[0], body, authorization)

    def _request(self, method: str, path: str, body: bytes, authorization: str) -> None:
        if method == "POST" and path in CHAT_PATHS:
            self._held += 1
            self._server.chat(self, body, authorization, self._server.stats.arrived())
        elif self._transport is not None:
            self._transport.write(_http_response(*self._server.control(method, path, body)))

    def respond(
        self, status: int, body: bytes, headers: dict[str, str] | None, arrival: int, cause: str | None = None
    ) -> None:
        """Answer chat request number ``arrival`` (counted in the stats); ``cause`` for a 429."""
        if self._transport is None:
            return
        self._held -= 1
        self._server.stats.answered(status, arrival, cause)
        self._transport.write(_http_response(status, body, headers))


class SimServer:
    """The server itself; ``start`` binds (port 0 picks a free one), ``port`` says which."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.stats = _Stats()
        self._random = random.Random(self.config.seed)
        self._server: asyncio.AbstractServer | None = None
        self._requests: _Bucket | None = None
        self._tokens: _Bucket | None = None
        self._budgets_stale = True  # made (full) on the next request, on the loop's clock
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def _fill_buckets(self, now: float) -> None:
        """Make the budgets' buckets, full, from the configuration."""
        rpm, tpm = self.config.rpm, self.config.tpm
        # A budget so small that a second's refill rounds to nothing is no budget: it would divide by 0.
        self._requests = _Bucket("requests", rpm, now) if rpm / 60 > 0 else None
        self._tokens = _Bucket("tokens", tpm, now) if tpm / 60 > 0 else None
        self._budgets_stale = False

    def _delay(self) -> float:
        config = self.config
        jitter = self._random.uniform(-config.jitter_ms, config.jitter_ms) if config.jitter_ms else 0.0
        return max(0.0, config.latency_ms + jitter) / 1000

    def _fault(self) -> str | None:
        config, roll = self.config, self._random.random()
        for name, rate in (
            ("429", config.rate_429),
            ("500", config.rate_500),
            ("timeout", config.rate_timeout),
            ("malformed", config.rate_malformed),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None

    def chat(self, connection: _Connection, body: bytes, authorization: str, arrival: int) -> None:
        """Admit, refuse or answer chat request number ``arrival`` (already counted in flight)."""
        config = self.config
        if config.api_key and authorization != f"Bearer {config.api_key}":
            connection.respond(401, _UNAUTHORIZED, None, arrival)
            return
        if config.max_inflight and self.stats.inflight > config.max_inflight:
            # A gateway's cap: nothing says when a slot frees, so no retry-after and no reset.
            connection.respond(429, _TOO_MANY, None, arrival, "inflight")
            return
        request = _parse(body)
        reply = _Answer(request) if isinstance(request, dict) else None
        loop = asyncio.get_running_loop()
        headers: dict[str, str] | None = None
        if config.rpm or config.tpm:
            headers = {}
            cost = reply.prompt_tokens + reply.completion_tokens if reply is not None else 0
            wait_requests, wait_tokens = self._charge(loop.time(), cost, headers)
            if wait_requests or wait_tokens:
                # Refused before any work, as a real API does; Groq's retry-after is whole seconds.
                retry = str(max(1, math.ceil(max(wait_requests, wait_tokens))))
                headers["retry-after"] = retry
                spent = " and ".join(
                    kind for kind, wait in (("requests", wait_requests), ("tokens", wait_tokens)) if wait
                )
                message = f"rate limit reached for {spent} per minute; try again in {retry}s"
                connection.respond(429, _error(429, message, "rate_limit_exceeded"), headers, arrival, "budget")
                return
        fault = self._fault()
        if fault == "timeout":
            return  # held until the client gives up and closes the connection
        status, answer_body, extra = self._chat_reply(request, reply, fault, arrival)
        if extra:
            headers = {**headers, **extra} if headers else extra
        cause = "fault" if fault == "429" else None
        delay = self._delay()
        if delay > 0:
            loop.call_later(delay, connection.respond, status, answer_body, headers, arrival, cause)
        else:
            connection.respond(status, answer_body, headers, arrival, cause)

    def _charge(self, now: float, cost: int, headers: dict[str, str]) -> tuple[float, float]:
        """Charge one request of ``cost`` tokens to the budgets and write their headers. Returns the
        seconds until the request and token budgets could pay for it: both 0 when it was charged;
        when either is not, nothing is charged."""
        if self._budgets_stale:
            self._fill_buckets(now)
        requests, tokens = self._requests, self._tokens
        wait_requests = wait_tokens = 0.0
        if requests is not None:
            requests.refill(now)
            wait_requests = requests.wait(1)
        if tokens is not None:
            tokens.refill(now)
            wait_tokens = tokens.wait(cost)
        if not (wait_requests or wait_tokens):
            if requests is not None:
                requests.tokens -= 1
            if tokens is not None:
                tokens.tokens -= cost
        if requests is not None:
            requests.describe(headers, wait_requests > 0)
        if tokens is not None:
            tokens.describe(headers, wait_tokens > 0)
        return wait_requests, wait_tokens

    def _chat_reply(
        self, request: dict[str, Any] | str, reply: _Answer | None, fault: str | None, arrival: int
    ) -> tuple[int, bytes, dict[str, str] | None]:
        if fault == "429":
            # An overloaded, shared-capacity 429: try this request again later. It says nothing of
            # the key's budget, so no x-ratelimit-remaining 0 that a client would take for one.
            wait_ms = self.config.retry_after_ms
            headers = {"retry-after-ms": f"{wait_ms:g}", "retry-after": str(math.ceil(wait_ms / 1000))}
            return 429, _OVERLOADED, headers
        if fault == "500":
            return 500, _error(500, "simulated server error", "server_error"), None
        if fault == "malformed":
            return 200, b'{"id": "simcmpl-broken", "choices": [{"index": 0, "mess', None
        if isinstance(request, str) or reply is None:
            return 400, _error(400, str(request), "invalid_request_error"), None
        return 200, _completion(request, reply, arrival), None

    def control(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """``GET /stats``, ``POST /stats/reset``, ``POST /control`` (JSON of SimConfig fields).

        A ``/control`` that names ``rpm`` or ``tpm`` fills the budgets again, so that a test or a
        benchmark starts from a full bucket."""
        if method == "GET" and path == "/stats":
            config = {**asdict(self.config), "api_key": "***" if self.config.api_key else ""}
            return 200, json.dumps({**self.stats.as_dict(), "config": config}).encode()
        if method == "POST" and path == "/stats/reset":
            self.stats.reset()
            return 200, json.dumps(self.stats.as_dict()).encode()
        if method == "POST" and path == "/control":
            try:
                changes = json.loads(body or b"{}")
                self.config.update(changes)
            except (ValueError, TypeError, AttributeError) as exc:
                return 400, _error(400, str(exc), "invalid_request_error")
            self._random.seed(self.config.seed)
            if "rpm" in changes or "tpm" in changes:
                self._budgets_stale = True
            return 200, b'{"ok": true}'
        if method == "GET" and path in {"/v1/models", "/openai/v1/models", "/models"}:
            return 200, json.dumps({"object": "list", "data": [{"id": "sim-1", "object": "model"}]}).encode()
        return 404, _error(404, f"no route {method} {path}", "not_found")
