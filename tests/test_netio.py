"""The lanes' own network backend (providers/netio.py) over TLS: a real handshake on 127.0.0.1.

The simulated provider speaks plain HTTP, so every other test covers the backend without TLS; here
a self-signed certificate (made with the ``openssl`` command) is refused unless trusted, and trusted
through ``SSL_CERT_FILE`` it carries a whole call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from evalrun.providers.base import ClientOptions, ProviderError, Reply, TransientError
from evalrun.providers.http import HttpProvider
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


def _send(port: int, calls: int = 1) -> list[Reply]:
    async def go() -> list[Reply]:
        provider = HttpProvider(DIALECT, {"name": "t"}, f"https://127.0.0.1:{port}/v1", "k", ClientOptions(2, 5))
        try:
            return [await provider.send("m", [{"role": "user", "content": "2+3?"}], {}) for _ in range(calls)]
        finally:
            await provider.aclose()

    return anyio.run(go)


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
