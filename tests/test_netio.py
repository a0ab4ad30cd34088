"""The lanes' own network backend and connection (providers/netio.py), against servers of its own.

The simulated provider keeps its connections open and speaks plain HTTP, so every other test covers
the common path; here a server that closes connections shows that a lane opens a new one, and over
TLS a self-signed certificate (made with the ``openssl`` command) is refused unless trusted, and
trusted through ``SSL_CERT_FILE`` carries a whole call. The request timeout's bound on a whole
attempt is tested in ``tests/faults/test_provider_faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from evalrun.providers.base import ClientOptions, ProviderError, Reply, TransientError
from evalrun.providers.http import HttpProvider
from evalrun.providers.netio import AsyncioTransport, _Deadline, _Protocol, _Stream
from evalrun.providers.openai import DIALECT

ANSWER = json.dumps(
    {"model": "m", "choices": [{"message": {"content": "5"}, "finish_reason": "stop"}], "usage": {}}
).encode()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command (Debian package openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[int]:
    """An HTTPS server on a free loopback port that answers every request with one chat answer."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(ANSWER), ANSWER)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        loop.close()

    main = loop.create_task(serve())
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield port[0]
    loop.call_soon_threadsafe(main.cancel)
    thread.join(5)


def _send(port: int, calls: int = 1, scheme: str = "https", pause: float = 0.0) -> list[Reply]:
    async def go() -> list[Reply]:
        provider = HttpProvider(
            DIALECT, {"name": "t"}, f"{scheme}://127.0.0.1:{port}/v1", "k", ClientOptions(request_timeout=5)
        )
        replies = []
        try:
            for _ in range(calls):
                replies.append(await provider.send("m", [{"role": "user", "content": "2+3?"}], {}))
                await anyio.sleep(pause)
        finally:
            await provider.aclose()
        return replies

    return anyio.run(go)


class _Closing(asyncio.Protocol):
    """Answers each request; says ``connection: close`` on odd connections, and closes even ones
    unannounced 50 ms after answering (a server's keep-alive timeout)."""

    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        type(self).connections += 1
        self.transport, self.number, self.received = transport, type(self).connections, b""

    def data_received(self, data: bytes) -> None:
        self.received += data
        head, _, body = self.received.partition(b"\r\n\r\n")
        length = next(
            (int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"),
            0,
        )
        if not _ or len(body) < length:
            return
        self.received = b""
        closing = b"connection: close\r\n" if self.number % 2 else b""
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(ANSWER), closing, ANSWER))  # type: ignore[attr-defined]
        delay = 0.0 if closing else 0.05
        asyncio.get_running_loop().call_later(delay, self.transport.close)


@pytest.fixture
def closing_server() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Closing, "127.0.0.1", 0))
    _Closing.connections = 0
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1]
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_a_connection_the_server_closes_is_replaced_before_the_next_call(closing_server: int) -> None:
    replies = _send(closing_server, calls=4, scheme="http", pause=0.2)
    assert [reply.answer.text for reply in replies] == ["5"] * 4
    assert _Closing.connections == 4  # closed with notice after the 1st and 3rd, idle after the 2nd


def test_a_request_leaves_in_one_write_when_its_answer_is_awaited() -> None:
    class Transport:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.writes.append(data)
            protocol.data_received(b"HTTP/1.1 200 OK\r\n")  # the server answers what it got

        def is_closing(self) -> bool:
            return False

    async def go() -> tuple[list[bytes], bytes]:
        stream = _Stream(transport, protocol, _Deadline())  # type: ignore[arg-type]
        await stream.write(b"POST / HTTP/1.1\r\n\r\n")
        await stream.write(b"{}")
        before = list(transport.writes)
        return before, await stream.read(100)

    transport, protocol = Transport(), _Protocol()
    before, answer = anyio.run(go)
    assert before == [] and transport.writes == [b"POST / HTTP/1.1\r\n\r\n{}"] and answer.startswith(b"HTTP/1.1 200")


def test_an_untrusted_certificate_is_refused(tls_server: int) -> None:
    with pytest.raises((TransientError, ProviderError)) as caught:
        _send(tls_server)
    assert "ConnectError" in str(caught.value) and "certificate" in str(caught.value).lower()


def test_a_trusted_certificate_carries_calls_on_one_kept_alive_connection(
    tls_server: int, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    replies = _send(tls_server, calls=3)
    assert [reply.answer.text for reply in replies] == ["5", "5", "5"]


@pytest.fixture
def silent_listener() -> Iterator[tuple[int, socket.socket]]:
    """A loopback port that takes connections into its queue and never speaks: once the queue is
    full (backlog 0), a connect hangs; one in the queue never answers a handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    yield listener.getsockname()[1], listener
    listener.close()


def _fill_queue(port: int) -> list[socket.socket]:
    """Connections into ``port``'s queue until one more is not taken (its SYN is dropped)."""
    queued: list[socket.socket] = []
    for _ in range(8):
        attempt = socket.socket()
        attempt.settimeout(0.3)
        try:
            attempt.connect(("127.0.0.1", port))
        except TimeoutError:
            attempt.close()
            return queued
        queued.append(attempt)
    raise AssertionError("the listener's queue never filled")


def _connect_error(port: int, scheme: str, connect: float, whole: float) -> tuple[Exception, float]:
    async def go() -> tuple[Exception, float]:
        transport = AsyncioTransport(ssl.create_default_context(), whole)
        request = httpx.Request(
            "POST", f"{scheme}://127.0.0.1:{port}/v1", content=b"{}",
            extensions={"timeout": httpx.Timeout(None, connect=connect).as_dict()},
        )  # fmt: skip
        started = time.monotonic()
        try:
            await transport.handle_async_request(request)
        except httpx.TransportError as exc:
            return exc, time.monotonic() - started
        finally:
            await transport.aclose()
        raise AssertionError("the request was answered")

    return anyio.run(go)


def test_connecting_gives_up_at_the_connect_timeout_not_the_whole_requests(
    silent_listener: tuple[int, socket.socket],
) -> None:
    port, _ = silent_listener
    queued = _fill_queue(port)
    try:
        error, took = _connect_error(port, "http", connect=0.3, whole=30)
    finally:
        for connection in queued:
            connection.close()
    assert isinstance(error, httpx.ConnectTimeout) and took < 10  # the request's own 30 s never came into it


def test_a_handshake_that_never_ends_gives_up_at_the_connect_timeout(
    silent_listener: tuple[int, socket.socket],
) -> None:
    port, _ = silent_listener
    error, took = _connect_error(port, "https", connect=0.3, whole=30)
    assert isinstance(error, httpx.ConnectTimeout) and "TLS handshake" in str(error) and took < 10
