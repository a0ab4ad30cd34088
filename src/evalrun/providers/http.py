"""The HTTP side of every model API: keep-alive lanes, one bounded attempt, errors without secrets.

A ``Dialect`` is what differs between APIs (path, headers, request and answer bodies, which
statuses are worth a retry, how the server says when to come back and what is left of the key's
budgets); ``HttpProvider`` is everything else, written once. Adding an API is writing its dialect.
Retrying is not done here: the model client (``evalrun.client``) decides when, for every API alike.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import anyio
import httpx

from .base import (
    ChatResponse,
    ClientOptions,
    MalformedAnswer,
    NoAnswer,
    ProviderError,
    RateLimits,
    Reply,
    TransientError,
    is_loopback,
    scrub,
)
from .netio import AsyncioTransport

__all__ = ["Dialect", "HttpProvider", "MalformedAnswer"]

_DETAIL = 200  # characters of a server's error message kept in a case's error
#: What httpx's ``json=`` writes, with the encoder built once (``json.dumps`` with options builds one a call).
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_RETRYABLE_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class Dialect(Protocol):
    """What one model API says, and how."""

    path: str  # relative to the base URL, e.g. "chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]: ...

    def payload(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
        """The request body of one chat call."""
        ...

    def answer(self, body: Any, latency_ms: float) -> ChatResponse:
        """The answer in a 200's JSON body; ``MalformedAnswer`` when it is not one."""
        ...

    def should_retry(self, response: httpx.Response) -> bool:
        """Whether a non-200 answer is worth another attempt."""
        ...

    def server_delay(self, headers: Mapping[str, str]) -> float | None:
        """Seconds the server asked to wait before trying again, if it said."""
        ...

    def error_detail(self, response: httpx.Response) -> str:
        """The server's own words about an error (evalrun masks the key, then cuts it short)."""
        ...

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimits | None:
        """What a response (any status) says of the key's rate budgets; ``None`` if nothing."""
        ...


def _described(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _too_large(limit: int, status: int) -> ProviderError:
    """Not retried: the same request would bring the same body back."""
    return ProviderError(f"response too large (over {limit} bytes)", status)


class _Capped(httpx.AsyncByteStream):
    """A response body read no further than ``limit`` bytes: memory stays bounded without a
    Content-Length (chunked) or when the body outgrows the one it stated."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int, status: int) -> None:
        self._stream, self._limit, self._status = stream, limit, status

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for part in self._stream:
            size += len(part)
            if size > self._limit:
                raise _too_large(self._limit, self._status)
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _send(lane: httpx.AsyncBaseTransport, request: httpx.Request, limit: int) -> httpx.Response:
    """One request on a lane, its body read (at most ``limit`` bytes) and the connection handed
    back; a connection left mid-body is closed, not drained."""
    response = await lane.handle_async_request(request)
    try:
        status, length = response.status_code, response.headers.get("content-length")
        if length is not None and int(length) > limit:
            raise _too_large(limit, status)
        response.stream = _Capped(cast(httpx.AsyncByteStream, response.stream), limit, status)
        if response.headers.get("content-encoding", "identity").lower() in ("identity", ""):
            await response.aread()  # what came is what is kept: the cap on the wire bounds it
            return response
        return await _inflated(response, limit)  # compressed although asked not to be
    finally:
        await response.aclose()


async def _inflated(response: httpx.Response, limit: int) -> httpx.Response:
    """A compressed body decoded piece by piece, the cap counted as it inflates (one piece may
    inflate far past the wire's bytes: the check is on what is decoded, before it is kept)."""
    parts, size = [], 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > limit:
            raise _too_large(limit, response.status_code)
        parts.append(part)
    plain = [
        (k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(response.status_code, headers=plain, content=b"".join(parts))


def _environment_proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...)."""
    import urllib.request

    if urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


class HttpProvider:
    """One provider over HTTP: keep-alive lanes opened as calls overlap, one attempt a call, clean errors."""

    def __init__(
        self,
        dialect: Dialect,
        identity: Mapping[str, str],
        base_url: str,
        api_key: str | None,
        options: ClientOptions,
        server_stats: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self._dialect = dialect
        self._server_stats = server_stats
        self._identity = dict(identity)
        self._secret = api_key
        # One single-connection lane per call in flight instead of one pool of N: httpcore's pool
        # scans all of its connections on every request, which at 100 connections cuts throughput
        # by 4-6x. Lanes are opened when a call finds none idle, never up front: memory follows the
        # calls that overlap, not a --concurrency far above the tasks. The lanes are httpx
        # transports, not clients: a client's per-request work (URL merging, cookie extraction
        # through urllib, auth and redirect generators, event hooks) buys nothing for one fixed
        # POST and cost 0.25-0.3 ms of CPU a request. The CA bundle is loaded once (20-35 ms),
        # shared by every lane, and only for HTTPS: a plain HTTP server (the simulated one, a local
        # Ollama) gets a context with no CA at all, which would refuse any TLS rather than trust it.
        https = base_url.lower().startswith("https:")
        self._verify = httpx.create_ssl_context() if https else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._url = httpx.URL(base_url.rstrip("/") + "/" + dialect.path)
        # No proxy from the environment for this machine; elsewhere, the one httpx would take.
        self._proxy = None if is_loopback(base_url) else _environment_proxy(self._url)
        # identity: a body's size on the wire is then its size in memory, so the response cap
        # bounds both (a compressed answer may inflate far past it); chat answers are small.
        base = {"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": f"python-httpx/{httpx.__version__}"}
        self._unsendable: str | None = None
        try:
            self._headers = httpx.Headers({**base, "Content-Type": "application/json", **dialect.headers(api_key)})
        except (ValueError, TypeError) as exc:  # a key no header can carry (not ASCII): each call says so
            self._headers = httpx.Headers(base)
            self._unsendable = scrub(f"the request headers cannot be sent: {_described(exc)}", api_key)
        # The attempt's deadline bounds every read and write (httpx's timeouts are per read: a body
        # trickled a byte at a time never ends), so those need no bound of their own; only connecting
        # has a shorter one.
        self._timeout = options.request_timeout
        self._too_slow = f"ReadTimeout: the answer took longer than {options.request_timeout:g} s"
        timeout = httpx.Timeout(None, connect=min(10.0, options.request_timeout))
        self._extensions = {"timeout": timeout.as_dict()}
        self._max_bytes = options.max_response_bytes
        self._lanes: list[httpx.AsyncBaseTransport] = []
        self._idle: list[httpx.AsyncBaseTransport] = []

    @property
    def identity(self) -> Mapping[str, str]:
        return self._identity

    @property
    def lane_count(self) -> int:
        """The lanes made so far: as many as calls have overlapped, whatever the concurrency."""
        return len(self._lanes)

    def _new_lane(self) -> httpx.AsyncBaseTransport:
        if self._proxy is None:  # a direct connection: on asyncio's own transports (see netio.py)
            lane: httpx.AsyncBaseTransport = AsyncioTransport(self._verify, self._timeout)
        else:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            lane = httpx.AsyncHTTPTransport(verify=self._verify, limits=limits, proxy=self._proxy)
        self._lanes.append(lane)
        return lane

    async def _post(self, body: bytes) -> httpx.Response:
        """One attempt on a lane, all of it (connecting, sending, the whole answer) within the
        request timeout."""
        request = httpx.Request("POST", self._url, headers=self._headers, content=body, extensions=self._extensions)
        # Last in, first out: the warmest keep-alive connection.
        lane = self._idle.pop() if self._idle else self._new_lane()
        try:
            if self._proxy is None:  # the lane keeps the deadline itself, at no cost (netio.py)
                return await _send(lane, request, self._max_bytes)
            with anyio.move_on_after(self._timeout):  # httpx's own transport: cancelled at the deadline
                return await _send(lane, request, self._max_bytes)
        finally:
            self._idle.append(lane)  # a connection cut short is closed, and reopened on its next use
        raise TransientError(self._too_slow)

    async def server_stats(self) -> dict[str, Any] | None:
        return await self._server_stats() if self._server_stats is not None else None

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    async def send(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Reply:
        if self._unsendable is not None:
            raise ProviderError(self._unsendable)
        dialect = self._dialect
        try:
            body = _encode_json(dialect.payload(model, messages, params)).encode()
        except (TypeError, ValueError) as exc:  # a parameter JSON cannot carry (NaN, an object)
            raise ProviderError(scrub(f"the request cannot be sent as JSON: {exc}", self._secret)) from None
        started = time.perf_counter()
        try:
            response = await self._post(body)
        except (TransientError, ProviderError):
            raise
        except (httpx.ReadTimeout, httpx.WriteTimeout):  # only the attempt's deadline bounds reads and writes
            raise TransientError(self._too_slow) from None
        except _RETRYABLE_EXCEPTIONS as exc:  # transport errors quote requests: scrubbed too
            unreachable = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            raise TransientError(scrub(_described(exc), self._secret), unreachable=unreachable) from None
        except Exception as exc:  # never raw (the engine would quote its repr, key and all): a request
            # that can never be sent (bad URL, a header h11 refuses) or anything else
            raise ProviderError(scrub(_described(exc), self._secret)) from None
        latency_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        limits = dialect.rate_limits(response.headers)
        if status == 200:
            try:
                answer = dialect.answer(response.json(), latency_ms)
            except (MalformedAnswer, ValueError):
                raise TransientError("malformed response body", status, None, limits) from None
            except NoAnswer as exc:
                raise ProviderError(f"no answer: {exc}", status) from None
            return Reply(answer, limits)
        # Scrubbed before it is cut short: a key quoted across the cut would survive in part.
        detail = f"HTTP {status}: {scrub(dialect.error_detail(response), self._secret)[:_DETAIL]}"
        if dialect.should_retry(response):
            raise TransientError(detail, status, dialect.server_delay(response.headers), limits)
        raise ProviderError(detail, status)
