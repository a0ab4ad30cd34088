"""A fake of Anthropic's Messages API on 127.0.0.1, so the Anthropic provider is tested over real
sockets without the internet.

It is as strict as the real API where a mistake of ours would show: it wants ``x-api-key`` and
``anthropic-version``, refuses unknown fields and ``system`` messages inside ``messages``, and
requires ``max_tokens``. Its answer is derived from the request ("echo: <last user text>", words
for tokens), it records every request it received, and it can be told to fail the next N
requests. It is bounded: it answers at most ``max_requests`` requests and stops by itself after
``lifetime`` seconds, should a test forget to.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

__all__ = ["FakeAnthropic", "Fault", "Received"]

MESSAGES_PATH = "/v1/messages"
MAX_BODY = 1 << 20
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
    }
)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it: header names lower-cased, the body parsed (None if not JSON)."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Fault:
    """What the fake answers instead of an answer: an Anthropic error, or ``raw_body`` as is.

    ``message`` may say ``{api_key}``: the key the request carried, as careless servers quote it."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None
    raw_body: bytes | None = None


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    kind = ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return status, dict(headers or {}), json.dumps(body).encode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _invalid(body: Any) -> str | None:
    """What the real API would refuse in a request body, or None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        return f"{unknown[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required (a positive integer)"
    if "system" in body and not isinstance(body["system"], (str, list)):
        return "system: Input should be a valid string or list"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            return f"messages.{i}: only role and content are permitted"
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
    stop = body.get("stop_sequences", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        return "stop_sequences: Input should be a valid list of strings"
    return None


def _message(body: dict[str, Any], serial: int) -> dict[str, Any]:
    """The Messages answer to a valid request: "echo: <last user text>", in two text blocks."""
    last = next((_text(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user"), "")
    words = f"echo: {last}".split(" ")
    stop_reason, stop_sequence = "end_turn", None
    if len(words) > body["max_tokens"]:
        words, stop_reason = words[: body["max_tokens"]], "max_tokens"
    text = " ".join(words)
    for sequence in body.get("stop_sequences", []):
        if sequence and sequence in text:
            text, stop_reason, stop_sequence = text[: text.index(sequence)], "stop_sequence", sequence
    head, tail = text[:6], text[6:]
    content: list[dict[str, Any]] = [{"type": "text", "text": head}, {"type": "text", "text": tail}]
    if body.get("thinking"):
        content.insert(0, {"type": "thinking", "thinking": "Let me think.", "signature": "c2lnbmF0dXJl"})
    prompt = [_text(body.get("system", ""))] + [_text(m["content"]) for m in body["messages"]]
    return {
        "id": f"msg_fake{serial:06d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": sum(len(p.split()) for p in prompt), "output_tokens": len(text.split())},
    }


class FakeAnthropic:
    """The fake server; a context manager. ``url`` is its base URL (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, api_key: str = "sk-ant-test-secret", max_requests: int = 200, lifetime: float = 60.0) -> None:
        self.api_key = api_key
        self.max_requests = max_requests
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._faults: deque[Fault] = deque()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime, self._server.shutdown)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[Received]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def fail_next(
        self,
        count: int,
        status: int,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        raw_body: bytes | None = None,
    ) -> None:
        """Answer the next ``count`` requests with this fault instead (after any already queued)."""
        fault = Fault(status, dict(headers or {}), message, raw_body)
        with self._lock:
            self._faults.extend([fault] * count)

    def start(self) -> FakeAnthropic:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        """The fake's answer to one POST (called from the server's threads)."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            if len(self._received) >= self.max_requests:
                return _error(400, "fake: request budget exhausted", {"x-should-retry": "false"})
            self._received.append(Received(path, headers, body))
            serial = len(self._received)
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            return self._fault(fault, headers)
        if path != MESSAGES_PATH:
            return _error(404, f"no route for {path}")
        if not headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required")
        if headers.get("x-api-key") != self.api_key:
            return _error(401, f"invalid x-api-key: {headers.get('x-api-key', '')}")
        problem = _invalid(body)
        if problem is not None:
            return _error(400, problem)
        return 200, {}, json.dumps(_message(body, serial)).encode()

    def _fault(self, fault: Fault, headers: Mapping[str, str]) -> Answer:
        if fault.raw_body is not None:
            return fault.status, dict(fault.headers), fault.raw_body
        message = (fault.message or f"injected {fault.status}").replace("{api_key}", headers.get("x-api-key", ""))
        return _error(fault.status, message, fault.headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAnthropic) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the provider's lanes expect
    timeout = 5  # an idle keep-alive connection's thread ends by itself

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._send(*_error(413, "request too large"))
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake = cast(_Server, self.server).fake
        self._send(*fake.handle(self.path, headers, raw))

    def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", "req_fake")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
        pass
