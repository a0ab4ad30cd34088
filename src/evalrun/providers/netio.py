"""The lanes' byte streams on asyncio's own transports: an httpcore network backend, and an httpx
transport over it. No HTTP here: h11 and httpcore still speak it, and httpx is still the client.

Why: under asyncio, httpcore's default backend goes through anyio's ``SocketStream``, which costs
on every request a ``fail_after`` cancel scope around each read and write, a checkpoint on each send
and receive, and on each reuse of a keep-alive connection a ``poll()`` of the socket, found through a
dict of socket attributes built afresh. A protocol that the loop feeds knows whether the server
closed the connection without asking the kernel, and arms a timer only when a read must wait.
Measured on the simulated provider: 0.2-0.4 ms of CPU less per request.

A lane bounds each request as a whole (connecting, sending, the whole answer) by one deadline that
every wait of the request ends by, not by httpx's timeouts, which are per read: a body trickled a
byte at a time would never end. The deadline costs no timer of its own, only the one a waiting read
arms anyway; a cancel scope around each request would cost 8 µs of CPU.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncioBackend", "AsyncioTransport"]

_READ_LIMIT = 1 << 20  # bytes buffered before the socket is no longer read (a reader far behind)
_HTTPCORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


class _Protocol(asyncio.Protocol):
    """What the loop read, whether the peer is gone, and the one waiter of a read or a drain."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.writable = True
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_LIMIT and self.reading:
            self.reading = False
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.error = True, exc
        self.writable = True
        self._wake()

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _Deadline:
    """When a lane's current request must be over, on the loop's clock (``None``: never). Shared by
    the lane's backend and streams; the transport sets it as each request begins."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def until(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
        """The loop time a wait must end by: the deadline, or ``timeout`` from now if sooner."""
        if timeout is None:
            return self.at
        own = loop.time() + timeout
        return own if self.at is None else min(self.at, own)

    def within(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
        """The same in seconds from now, as ``asyncio.wait_for`` takes it."""
        at = self.until(loop, timeout)
        return None if at is None else max(0.0, at - loop.time())


def _expire(future: asyncio.Future[None], error: type[Exception]) -> None:
    if not future.done():
        future.set_exception(error())  # no words, as httpcore's own backends: "ReadTimeout"


async def _wait(protocol: _Protocol, deadline: _Deadline, timeout: float | None, error: type[Exception]) -> None:
    """Until the protocol wakes us; ``error`` if the deadline or ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    protocol.waiter = future = loop.create_future()
    at = deadline.until(loop, timeout)
    timer = None if at is None else loop.call_at(at, _expire, future, error)
    try:
        await future
    finally:
        protocol.waiter = None
        if timer is not None:
            timer.cancel()


class _Stream(httpcore.AsyncNetworkStream):
    """A connection's bytes. What is written is held until a read: h11 writes a request's head and
    body apart, and each write would be a system call and a segment of its own; HTTP/1.1 reads the
    response next, so the request leaves whole, in one."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol, deadline: _Deadline) -> None:
        self._transport = transport
        self._protocol = protocol
        self._deadline = deadline
        self._unsent: list[bytes] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._unsent:
            await self._flush(timeout)
        protocol = self._protocol
        while not protocol.buffer:
            if protocol.closed:
                if protocol.error is not None:
                    raise httpcore.ReadError(str(protocol.error))
                return b""
            await _wait(protocol, self._deadline, timeout, httpcore.ReadTimeout)
        data = bytes(protocol.buffer[:max_bytes])
        del protocol.buffer[:max_bytes]
        if not protocol.reading and len(protocol.buffer) <= _READ_LIMIT:
            protocol.reading = True
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._unsent.append(buffer)

    async def _flush(self, timeout: float | None) -> None:
        """Send what was written. On a connection already gone it sends nothing and says nothing:
        the read that follows finds the server's last words or its silence, as httpcore reads on
        after a failed write (a server may answer, then close, before the request is all sent)."""
        buffer = b"".join(self._unsent)
        self._unsent.clear()
        protocol = self._protocol
        if protocol.closed or self._transport.is_closing():
            return
        self._transport.write(buffer)
        while not protocol.writable and not protocol.closed:
            await _wait(protocol, self._deadline, timeout, httpcore.WriteTimeout)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(self._transport, self._protocol, ssl_context, server_hostname=server_hostname),
                self._deadline.within(loop, timeout),
            )
        except asyncio.TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from None
        assert transport is not None
        self._protocol.transport = transport
        return _Stream(transport, self._protocol, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle keep-alive connection that the server closed or wrote to
            return self._protocol.closed or bool(self._protocol.buffer)
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self._transport.get_extra_info(names[info]) if info in names else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections that end every wait by ``deadline`` (set by the transport), or sooner."""

    def __init__(self) -> None:
        self.deadline = _Deadline()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(_Protocol, host, port, local_addr=local), self.deadline.within(loop, timeout)
            )
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(transport, protocol, self.deadline)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# -- httpx's transport contract over one httpcore connection on that backend -----------------------


def _httpx_error(exc: Exception) -> httpx.TransportError:
    """httpcore's exception as httpx's class of the same name (httpx mirrors each one)."""
    kind = getattr(httpx, type(exc).__name__, httpx.TransportError)
    return kind(str(exc))


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


class _OneCaller:
    """The lock of a connection that only one task uses at a time: no lock at all."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class _Connection(httpcore.AsyncHTTP11Connection):
    """httpcore's HTTP/1.1 connection without its state lock. The lock guards a connection that a
    pool shares between tasks; a lane's connection has one task. Under asyncio that lock is anyio's,
    whose every uncontended acquire still yields to the loop (twice a request): each yield puts the
    lane's request behind every other ready task, 2 % of a clean run's wall time at 50 lanes."""

    def __init__(self, origin: httpcore.Origin, stream: httpcore.AsyncNetworkStream) -> None:
        super().__init__(origin, stream)
        self._state_lock = _OneCaller()  # type: ignore[assignment]


class AsyncioTransport(httpx.AsyncBaseTransport):
    """What ``httpx.AsyncHTTPTransport`` is for one direct keep-alive connection, on ``AsyncioBackend``.

    One caller at a time (the provider's lanes see to it), so it holds one httpcore HTTP/1.1
    connection rather than a pool: a pool of one still takes its lock, scans its list and wraps every
    body on each request, 0.05-0.08 ms of CPU a request on the simulated provider. What the pool did
    that matters is kept: a connection that closed, broke, failed to open or that the server closed
    while it was idle is replaced before the next request.

    ``timeout`` bounds each request whole, from connecting to the body's last byte.
    """

    def __init__(self, ssl_context: ssl.SSLContext, timeout: float) -> None:
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._backend = AsyncioBackend()
        self._connection: _Connection | None = None

    async def _connection_for(self, origin: httpcore.Origin, connect_timeout: float | None) -> _Connection:
        connection = self._connection
        if connection is not None:
            if connection.can_handle_request(origin) and connection.is_idle() and not connection.has_expired():
                return connection
            self._connection = None
            await connection.aclose()
        self._connection = _Connection(origin, await self._connect(origin, connect_timeout))
        return self._connection

    async def _connect(self, origin: httpcore.Origin, timeout: float | None) -> httpcore.AsyncNetworkStream:
        """A stream to ``origin``, in TLS for https (HTTP/1.1 offered by ALPN), as httpcore connects:
        within the request's ``connect`` timeout (and its deadline), the handshake included."""
        host = origin.host.decode("ascii")
        stream = await self._backend.connect_tcp(host, origin.port, timeout=timeout)
        if origin.scheme == b"https":
            self._ssl_context.set_alpn_protocols(["http/1.1"])
            stream = await stream.start_tls(self._ssl_context, server_hostname=host, timeout=timeout)
        return stream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._backend.deadline.at = asyncio.get_running_loop().time() + self._timeout
        url = request.url
        if url.scheme not in ("http", "https"):  # in httpx's words, as its pool would have said
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            connect_timeout = request.extensions.get("timeout", {}).get("connect")  # httpx's own contract
            connection = await self._connection_for(core.url.origin, connect_timeout)
            response = await connection.handle_async_request(core)
        except _HTTPCORE_ERRORS as exc:
            raise _httpx_error(exc) from exc
        return httpx.Response(
            response.status, headers=response.headers, stream=_Body(response.stream), extensions=response.extensions
        )

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None
