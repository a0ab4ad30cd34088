"""The simulated OpenAI-compatible provider: a real HTTP/1.1 server on loopback.

Written on a bare ``asyncio.Protocol`` so that it answers thousands of requests a second on one
core and never limits a benchmark. Latency is a timer, not a sleeping coroutine; faults (429 with
``retry-after``, 500, hung requests, malformed bodies) are injected at configured rates from a
seeded generator, so a fault run can be repeated. ``/stats`` reports what the server saw,
including the peak number of requests it was serving at once: the engine's real concurrency.
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


@dataclass
class _Stats:
    requests: int = 0
    inflight: int = 0
    peak_inflight: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.time)

    def reset(self) -> None:
        """Start counting afresh; requests still in flight stay counted as in flight."""
        self.requests, self.peak_inflight, self.by_status, self.started = 0, self.inflight, Counter(), time.time()

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "inflight": self.inflight,
            "peak_inflight": self.peak_inflight,
            "by_status": dict(self.by_status),
            "since": self.started,
        }


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


def _completion(request: dict[str, Any], request_id: int) -> bytes:
    messages = request.get("messages") or []
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    prompt = str(users[-1]) if users else ""
    text = answer(prompt)
    finish = "stop"
    max_tokens = request.get("max_tokens") or request.get("max_completion_tokens")
    if isinstance(max_tokens, int) and len(text) > max_tokens * 4:
        text, finish = text[: max_tokens * 4], "length"
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    usage = {"prompt_tokens": math.ceil(prompt_chars / 4), "completion_tokens": math.ceil(len(text) / 4)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return json.dumps(
        {
            "id": f"simcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "sim"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
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
            stats = self._server.stats
            stats.inflight += 1
            stats.peak_inflight = max(stats.peak_inflight, stats.inflight)
            self._server.chat(self, body, authorization)
        elif self._transport is not None:
            self._transport.write(_http_response(*self._server.control(method, path, body)))

    def respond(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer a chat request (counted in the stats)."""
        if self._transport is None:
            return
        self._held -= 1
        stats = self._server.stats
        stats.inflight -= 1
        stats.by_status[str(status)] += 1
        self._transport.write(_http_response(status, body, headers))


class SimServer:
    """The server itself; ``start`` binds (port 0 picks a free one), ``port`` says which."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.stats = _Stats()
        self._random = random.Random(self.config.seed)
        self._server: asyncio.AbstractServer | None = None
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

    def chat(self, connection: _Connection, body: bytes, authorization: str) -> None:
        self.stats.requests += 1
        if self.config.api_key and authorization != f"Bearer {self.config.api_key}":
            connection.respond(401, _error(401, "invalid API key", "invalid_api_key"))
            return
        fault = self._fault()
        if fault == "timeout":
            return  # held until the client gives up and closes the connection
        reply = self._chat_reply(body, fault)
        delay = self._delay()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, connection.respond, *reply)
        else:
            connection.respond(*reply)

    def _chat_reply(self, body: bytes, fault: str | None) -> tuple[int, bytes, dict[str, str]]:
        if fault == "429":
            wait_ms = self.config.retry_after_ms
            headers = {
                "retry-after-ms": f"{wait_ms:g}",
                "retry-after": str(math.ceil(wait_ms / 1000)),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{wait_ms:g}ms",
            }
            return 429, _error(429, "simulated rate limit", "rate_limit_exceeded"), headers
        if fault == "500":
            return 500, _error(500, "simulated server error", "server_error"), {}
        if fault == "malformed":
            return 200, b'{"id": "simcmpl-broken", "choices": [{"index": 0, "mess', {}
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _error(400, "request body is not JSON", "invalid_request_error"), {}
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return 400, _error(400, "'messages' is required", "invalid_request_error"), {}
        return 200, _completion(request, self.stats.requests), {}

    def control(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """``GET /stats``, ``POST /stats/reset``, ``POST /control`` (JSON of SimConfig fields)."""
        if method == "GET" and path == "/stats":
            config = {**asdict(self.config), "api_key": "***" if self.config.api_key else ""}
            return 200, json.dumps({**self.stats.as_dict(), "config": config}).encode()
        if method == "POST" and path == "/stats/reset":
            self.stats.reset()
            return 200, json.dumps(self.stats.as_dict()).encode()
        if method == "POST" and path == "/control":
            try:
                self.config.update(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return 400, _error(400, str(exc), "invalid_request_error")
            self._random.seed(self.config.seed)
            return 200, b'{"ok": true}'
        if method == "GET" and path in {"/v1/models", "/openai/v1/models", "/models"}:
            return 200, json.dumps({"object": "list", "data": [{"id": "sim-1", "object": "model"}]}).encode()
        return 404, _error(404, f"no route {method} {path}", "not_found")
