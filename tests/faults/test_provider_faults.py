"""What a provider's server can do wrong, and what evalrun makes of it (issue 9): an answer without
content, a body trickled past the request timeout, a body far too large, a concurrency far above
the calls, and a key that no header can carry.

Each test runs a small HTTP/1.1 server of its own on 127.0.0.1 (an asyncio server in a thread) that
answers as the test tells it, and counts the connections and requests it saw.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from evalrun import Runner
from evalrun.client import CallPolicy, ModelClient
from evalrun.providers.anthropic import AnthropicDialect
from evalrun.providers.base import ChatResponse, ClientOptions, ProviderError, TransientError, scrub
from evalrun.providers.http import Dialect, HttpProvider
from evalrun.providers.openai import DIALECT
from evalrun.settings import load_settings

MESSAGES = [{"role": "user", "content": "What is 2+3?"}]
MB = 1 << 20

#: Writes the answer to the ``n``th request the server received (1-based).
Handler = Callable[[asyncio.StreamWriter, int], Awaitable[None]]


def _answer(message: Mapping[str, Any]) -> bytes:
    return json.dumps({"model": "m", "choices": [{"message": message, "finish_reason": "stop"}], "usage": {}}).encode()


ANSWER = _answer({"role": "assistant", "content": "5"})


def http(body: bytes, status: int = 200, headers: str = "") -> bytes:
    """A whole response with a Content-Length."""
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n{headers}\r\n"
    return head.encode() + body


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    """A whole response without a Content-Length: ``body`` in chunks of ``size`` bytes."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + chunks + b"0\r\n\r\n"


def answering(*responses: bytes) -> Handler:
    """Answers request n with ``responses[n-1]``, and every later one with the last."""

    async def handler(writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(responses[min(n, len(responses)) - 1])
        await writer.drain()

    return handler


class Loopback:
    """An HTTP/1.1 server with keep-alive on a free port of 127.0.0.1, in a thread of its own."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []  # the head of every request received, in order
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").lower().split("\r\n")
                length = next((int(line.split(":")[1]) for line in lines if line.startswith("content-length:")), 0)
                await reader.readexactly(length)
                self.heads.append(head)
                await self.handler(writer, len(self.heads))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away (or cut an answer short)
        finally:
            writer.close()

    def stop(self) -> None:
        async def shut_down() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut_down(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Loopback]]:
    servers: list[Loopback] = []

    def start(handler: Handler) -> Loopback:
        servers.append(Loopback(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def provider(
    url: str, key: str | None = None, dialect: Dialect = DIALECT, timeout: float = 5.0, max_bytes: int = MB
) -> HttpProvider:
    options = ClientOptions(request_timeout=timeout, max_response_bytes=max_bytes)
    return HttpProvider(dialect, {"name": "t"}, url, key, options)


def send(url: str, **kwargs: Any) -> ChatResponse:
    """One attempt, straight to the provider (its error raised as is)."""

    async def go() -> ChatResponse:
        client = provider(url, **kwargs)
        try:
            return (await client.send("m", MESSAGES, {})).answer
        finally:
            await client.aclose()

    return anyio.run(go)


def call(url: str, retries: int = 2, **kwargs: Any) -> tuple[ChatResponse, int] | ProviderError:
    """One call through the model client, with its retries: the answer and attempts, or the error."""

    async def go() -> tuple[ChatResponse, int] | ProviderError:
        client = provider(url, **kwargs)
        model = ModelClient(client, CallPolicy(concurrency=1, retries=retries, retry_base_delay=0.001), lambda e: None)
        holder = object()
        try:
            await model.acquire(holder)
            return await model.complete(holder, "m", MESSAGES, {}, "case")
        except ProviderError as exc:
            return exc
        finally:
            await client.aclose()

    return anyio.run(go)


# -- an answer without content -------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None},
        {"role": "assistant"},
        {"role": "assistant", "content": None, "refusal": None},
    ],
)
def test_an_answer_without_content_is_malformed_retried_then_an_error(
    serve: Callable[[Handler], Loopback], message: dict[str, Any]
) -> None:
    server = serve(answering(http(_answer(message))))
    error = call(server.url, retries=2)
    assert isinstance(error, ProviderError)
    assert (str(error), error.status, error.attempts) == ("malformed response body", 200, 3)
    assert len(server.heads) == 3


@pytest.mark.parametrize(
    ("dialect", "body", "why"),
    [
        (DIALECT, {"choices": [{"message": {"content": None}, "finish_reason": "length"}]}, "finish_reason: length"),
        (
            DIALECT,
            {"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]},
            "finish_reason: content_filter",
        ),
        (
            AnthropicDialect(),
            {"content": [{"type": "thinking", "thinking": "…"}], "stop_reason": "max_tokens"},
            "max_tokens",
        ),
    ],
    ids=["openai-length", "openai-filter", "anthropic-max-tokens"],
)
def test_no_content_for_a_stated_reason_is_an_error_without_a_retry(
    serve: Callable[[Handler], Loopback], dialect: Dialect, body: dict[str, Any], why: str
) -> None:
    server = serve(answering(http(json.dumps(body).encode())))
    error = call(server.url, retries=2, dialect=dialect)
    assert isinstance(error, ProviderError) and error.attempts == 1 and len(server.heads) == 1
    assert str(error).startswith("no answer: ") and why in str(error)


def test_an_anthropic_refusal_without_text_is_an_answer_and_is_kept(serve: Callable[[Handler], Loopback]) -> None:
    server = serve(answering(http(json.dumps({"content": [], "stop_reason": "refusal"}).encode())))
    outcome = call(server.url, retries=2, dialect=AnthropicDialect())
    assert not isinstance(outcome, ProviderError)
    assert (outcome[0].text, outcome[1]) == ("", 1) and "refusal" in (outcome[0].refusal or "")


def test_a_malformed_answer_then_a_real_one_is_the_real_one(serve: Callable[[Handler], Loopback]) -> None:
    server = serve(answering(http(_answer({"content": None})), http(ANSWER)))
    outcome = call(server.url, retries=2)
    assert not isinstance(outcome, ProviderError)
    assert (outcome[0].text, outcome[0].refusal, outcome[1]) == ("5", None, 2)


def test_a_refusal_is_an_answer_and_is_kept(serve: Callable[[Handler], Loopback]) -> None:
    refusal = "I can't help with that."
    server = serve(answering(http(_answer({"role": "assistant", "content": None, "refusal": refusal}))))
    outcome = call(server.url, retries=2)
    assert not isinstance(outcome, ProviderError)
    assert (outcome[0].text, outcome[0].refusal, outcome[1]) == ("", refusal, 1)


def test_tool_calls_in_place_of_content_are_an_answer(serve: Callable[[Handler], Loopback]) -> None:
    tool_call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
    server = serve(answering(http(_answer({"role": "assistant", "content": None, "tool_calls": [tool_call]}))))
    answer = send(server.url)
    assert (answer.text, answer.refusal) == ("", None)


# -- a body trickled past the request timeout ----------------------------------------------------


async def _trickle(writer: asyncio.StreamWriter, n: int) -> None:
    """The first answer's body a byte every 0.2 s (30 s in all); the next answers whole."""
    if n > 1:
        writer.write(http(ANSWER))
        return
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 150\r\n\r\n")
    for _ in range(150):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("route", ["direct", "through a proxy"])
def test_the_request_timeout_bounds_the_whole_attempt(
    serve: Callable[[Handler], Loopback], monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    server = serve(_trickle)
    url = server.url
    if route == "through a proxy":  # a host that is not this machine goes through the environment's proxy
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", server.url.removesuffix("/v1"))
        url = "http://model.invalid/v1"

    async def go() -> tuple[TransientError, float, ChatResponse]:
        client = provider(url, timeout=1.0)
        try:
            started = time.monotonic()
            with pytest.raises(TransientError) as caught:
                await client.send("m", MESSAGES, {})
            took = time.monotonic() - started
            return caught.value, took, (await client.send("m", MESSAGES, {})).answer
        finally:
            await client.aclose()

    error, took, answer = anyio.run(go)
    assert error.reason == "ReadTimeout: the answer took longer than 1 s"
    assert took < 5  # far short of the trickle's 30 s: the bound is the attempt's, not a read's
    assert answer.text == "5" and server.connections == 2  # the connection cut short is not reused


# -- a body far too large ------------------------------------------------------------------------


def _big() -> bytes:
    """A 10 MB answer (made when a test needs it, not when tests are collected)."""
    return _answer({"role": "assistant", "content": "a" * (10 * MB)})


@pytest.mark.parametrize(("shape", "status"), [("content-length", 200), ("chunked", 200), ("content-length", 500)])
def test_a_body_over_the_cap_is_an_error_not_retried(
    serve: Callable[[Handler], Loopback], shape: str, status: int
) -> None:
    server = serve(answering(http(_big(), status) if shape == "content-length" else chunked(_big())))
    error = call(server.url, retries=3, max_bytes=MB)
    assert isinstance(error, ProviderError)
    assert (str(error), error.status, error.attempts) == (f"response too large (over {MB} bytes)", status, 1)
    assert len(server.heads) == 1


def test_a_stated_length_over_the_cap_is_refused_before_the_body(serve: Callable[[Handler], Loopback]) -> None:
    async def announce(writer: asyncio.StreamWriter, n: int) -> None:  # the head, and then nothing at all
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (10 * MB))

    server = serve(announce)
    with pytest.raises(ProviderError, match="response too large"):  # not a timeout: the body is never awaited
        send(server.url, max_bytes=MB, timeout=30.0)


def test_a_body_growing_past_the_cap_is_cut_off_as_it_is_read(serve: Callable[[Handler], Loopback]) -> None:
    async def endless(writer: asyncio.StreamWriter, n: int) -> None:  # 2 MB of chunks, and then no end
        writer.write(chunked(_big())[: 2 * MB])
        await writer.drain()

    server = serve(endless)
    with pytest.raises(ProviderError, match="response too large"):  # not a timeout: the read stops at the cap
        send(server.url, max_bytes=MB, timeout=30.0)


@pytest.mark.parametrize(("cap", "too_large"), [(len(ANSWER), False), (len(ANSWER) - 1, True)])
def test_the_cap_counts_a_chunked_body_to_the_byte(
    serve: Callable[[Handler], Loopback], cap: int, too_large: bool
) -> None:
    server = serve(answering(chunked(ANSWER, size=7)))
    outcome = call(server.url, max_bytes=cap)
    if too_large:
        assert isinstance(outcome, ProviderError) and outcome.attempts == 1
    else:
        assert not isinstance(outcome, ProviderError) and outcome[0].text == "5"


def _gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MB of zeros, gzipped a block at a time (the test never holds them inflated)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = bytes(1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()


def test_a_body_compressed_regardless_is_capped_as_it_inflates(serve: Callable[[Handler], Loopback]) -> None:
    server = serve(answering(http(_gzip_bomb(400), headers="content-encoding: gzip\r\n")))
    tracemalloc.start()
    try:
        with pytest.raises(ProviderError, match="response too large"):
            send(server.url, max_bytes=MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 400 MB inflated whole before the check, against the cap plus a wire read or two inflated
    assert peak < 250 * MB, peak
    assert b"accept-encoding: identity" in server.heads[0].lower()  # evalrun asked for no compression


def test_a_small_body_compressed_regardless_is_read(serve: Callable[[Handler], Loopback]) -> None:
    server = serve(answering(http(gzip.compress(ANSWER), headers="content-encoding: gzip\r\n")))
    assert send(server.url).text == "5"


# -- a concurrency far above the calls -----------------------------------------------------------


def test_lanes_are_opened_as_calls_overlap_not_per_slot(serve: Callable[[Handler], Loopback]) -> None:
    overlapping, arrived = 3, asyncio.Event()
    waiting = 0

    async def handler(writer: asyncio.StreamWriter, n: int) -> None:  # answers once 3 requests are in at once
        nonlocal waiting
        waiting += 1
        if waiting >= overlapping:
            arrived.set()
        await asyncio.wait_for(arrived.wait(), 10)
        writer.write(http(ANSWER))

    server = serve(handler)

    async def go() -> list[int]:
        options = ClientOptions(request_timeout=15.0)
        client = HttpProvider(DIALECT, {"name": "t"}, server.url, None, options)
        try:
            counts = [client.lane_count]
            async with anyio.create_task_group() as group:
                for _ in range(overlapping):
                    group.start_soon(client.send, "m", MESSAGES, {})
            counts.append(client.lane_count)
            for _ in range(3):
                await client.send("m", MESSAGES, {})
            return [*counts, client.lane_count]
        finally:
            await client.aclose()

    assert anyio.run(go) == [0, 3, 3]  # none up front, one per call in flight, reused after
    assert server.connections == 3 and len(server.heads) == 6


# -- a key that no header can carry --------------------------------------------------------------


@pytest.mark.parametrize("dialect", [DIALECT, AnthropicDialect()], ids=["openai", "anthropic"])
@pytest.mark.parametrize("key", ["sk-LEAKME-7788\r99", "sk-LEAKME-7788\n99", "sk-LEAKMÉ-778899"])
def test_a_key_no_header_can_carry_is_an_error_that_never_quotes_it(
    serve: Callable[[Handler], Loopback], dialect: Dialect, key: str
) -> None:
    server = serve(answering(http(ANSWER)))
    with pytest.raises((ProviderError, TransientError)) as caught:  # not a UnicodeEncodeError, not h11's own
        send(server.url, key=key, dialect=dialect)
    message = str(caught.value)
    assert message and all(part not in message for part in (key, "LEAKM", "7788"))
    assert repr(key)[1:-1] not in message and server.heads == []  # nothing sent with it


def test_a_key_no_header_can_carry_fails_each_call_with_an_error_of_its_own(
    serve: Callable[[Handler], Loopback],
) -> None:
    server = serve(answering(http(ANSWER)))

    async def go() -> list[ProviderError]:
        client = provider(server.url, key="sk-LEAKMÉ-778899")
        errors = []
        try:
            for _ in range(2):
                with pytest.raises(ProviderError) as caught:
                    await client.send("m", MESSAGES, {})
                errors.append(caught.value)
        finally:
            await client.aclose()
        return errors

    first, second = anyio.run(go)
    assert first is not second  # the model client sets each error's attempts: never one object for all
    assert str(first) == str(second) and str(first).startswith("the request headers cannot be sent:")


def test_any_failure_of_an_attempt_is_a_provider_error_that_never_quotes_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken(httpx.AsyncBaseTransport):  # a failure that is not httpx's, quoting the request
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise ValueError(f"cannot frame {request.headers.raw!r}")

    monkeypatch.setattr(HttpProvider, "_new_lane", lambda self: Broken())
    with pytest.raises(ProviderError) as caught:  # not the ValueError: the engine would quote its repr
        send("http://127.0.0.1:9/v1", key="sk-LEAKME-778899")
    message = str(caught.value)
    assert message.startswith("ValueError: cannot frame") and "***" in message
    assert "LEAKME" not in message and "7788" not in message


@pytest.mark.parametrize(
    "quoted",
    [
        "Illegal header value b'Bearer sk-LEAKME-7788\\r99'",  # h11, quoting the bytes
        "bad value 'sk-LEAKME-7788\\r99'",  # a str quoted with repr
        "header cut at the line break: sk-LEAKME-7788",  # the key up to its bad character
    ],
)
def test_scrub_masks_the_forms_errors_quote_a_bad_key_in(quoted: str) -> None:
    masked = scrub(quoted, "sk-LEAKME-7788\r99")
    assert "***" in masked and "LEAKME" not in masked and "7788" not in masked


# -- through a whole run: what the provider says reaches the results ------------------------------


def _run_against(url: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    (tmp_path / "config.toml").write_text(f'[providers.loop]\nbase_url = "{url}"\nmodel = "m"\n')
    (tmp_path / "suite.jsonl").write_text('{"id": "c1", "prompt": "2+3?", "expected": "5"}\n')
    output = tmp_path / "results.json"
    settings = load_settings(
        str(tmp_path / "config.toml"), env={}, provider="loop", suites=(str(tmp_path / "suite.jsonl"),),
        cache="off", output=str(output), retries=0, max_errors=1, min_pass_rate=0, **overrides,
    )  # fmt: skip
    Runner(settings, env={}).run_sync()
    document: dict[str, Any] = json.loads(output.read_text())
    return document


def test_a_refusal_reaches_the_results(serve: Callable[[Handler], Loopback], tmp_path: Path) -> None:
    refusal = "I can't help with that."
    server = serve(answering(http(_answer({"role": "assistant", "content": None, "refusal": refusal}))))
    [case] = _run_against(server.url, tmp_path)["cases"]
    assert (case["status"], case["response"], case["refusal"]) == ("fail", "", refusal)


def test_the_max_response_bytes_setting_caps_a_run(serve: Callable[[Handler], Loopback], tmp_path: Path) -> None:
    server = serve(answering(http(_answer({"role": "assistant", "content": "5" * 5000}))))
    [case] = _run_against(server.url, tmp_path, max_response_bytes=2048)["cases"]
    assert case["status"] == "error" and "response too large" in case["error"] and case["attempts"] == 1


def test_answers_cut_at_the_token_limit_are_counted_and_warned_about(
    serve: Callable[[Handler], Loopback], tmp_path: Path
) -> None:
    cut = {"model": "m", "choices": [{"message": {"content": "5 and the rest"}, "finish_reason": "length"}]}
    server = serve(answering(http(json.dumps(cut).encode())))
    document = _run_against(server.url, tmp_path)
    [case] = document["cases"]
    assert case["finish_reason"] == "length" and document["summary"]["truncated"] == 1
    assert any("cut at the token limit" in warning for warning in document["summary"]["warnings"])
