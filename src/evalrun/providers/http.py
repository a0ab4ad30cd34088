"""The HTTP side of every model API: keep-alive lanes, one attempt, errors without secrets.

A ``Dialect`` is what differs between APIs (path, headers, request and answer bodies, which
statuses are worth a retry, how the server says when to come back and what is left of the key's
budgets); ``HttpProvider`` is everything else, written once. Adding an API is writing its dialect.
Retrying is not done here: the model client (``evalrun.client``) decides when, for every API alike.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx

from .base import (
    ChatResponse,
    ClientOptions,
    MalformedAnswer,
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


async def _send(lane: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
    """One request on a lane, its body read and the connection handed back."""
    response = await lane.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


def _environment_proxy(url: httpx.URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...)."""
    import urllib.request

    if urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


class HttpProvider:
    """One provider over HTTP: ``concurrency`` keep-alive lanes, one attempt a call, clean errors."""

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
        # One single-connection lane per slot instead of one pool of N: httpcore's pool scans all of
        # its connections on every request, which at 100 connections cuts throughput by 4-6x. The
        # lanes are httpx transports, not clients: a client's per-request work (URL merging, cookie
        # extraction through urllib, auth and redirect generators, event hooks) buys nothing for one
        # fixed POST and cost 0.25-0.3 ms of CPU a request. The CA bundle is loaded once (20-35 ms),
        # shared by every lane, and only for HTTPS: a plain HTTP server (the simulated one, a local
        # Ollama) gets a context with no CA at all, which would refuse any TLS rather than trust it.
        https = base_url.lower().startswith("https:")
        self._verify = httpx.create_ssl_context() if https else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._url = httpx.URL(base_url.rstrip("/") + "/" + dialect.path)
        # No proxy from the environment for this machine; elsewhere, the one httpx would take.
        self._proxy = None if is_loopback(base_url) else _environment_proxy(self._url)
        self._headers = httpx.Headers(
            {
                "Accept": "*/*",
                "Accept-Encoding": "gzip, deflate",
                "User-Agent": f"python-httpx/{httpx.__version__}",
                "Content-Type": "application/json",
                **dialect.headers(api_key),
            }
        )
        timeout = httpx.Timeout(options.request_timeout, connect=min(10.0, options.request_timeout))
        self._extensions = {"timeout": timeout.as_dict()}
        self._lanes = [self._new_lane() for _ in range(options.concurrency)]
        self._idle = list(self._lanes)

    @property
    def identity(self) -> Mapping[str, str]:
        return self._identity

    def _new_lane(self) -> httpx.AsyncBaseTransport:
        if self._proxy is None:  # a direct connection: on asyncio's own transports (see netio.py)
            return AsyncioTransport(self._verify)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncHTTPTransport(verify=self._verify, limits=limits, proxy=self._proxy)

    async def _post(self, body: bytes) -> httpx.Response:
        request = httpx.Request("POST", self._url, headers=self._headers, content=body, extensions=self._extensions)
        if self._idle:
            lane = self._idle.pop()  # last in, first out: the warmest keep-alive connection
        else:  # more callers than lanes: only outside the model client's slots (a judge's calls)
            lane = self._new_lane()
            self._lanes.append(lane)
        try:
            return await _send(lane, request)
        finally:
            self._idle.append(lane)

    async def server_stats(self) -> dict[str, Any] | None:
        return await self._server_stats() if self._server_stats is not None else None

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    async def send(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Reply:
        dialect = self._dialect
        try:
            body = _encode_json(dialect.payload(model, messages, params)).encode()
        except (TypeError, ValueError) as exc:  # a parameter JSON cannot carry (NaN, an object)
            raise ProviderError(f"the request cannot be sent as JSON: {exc}") from None
        started = time.perf_counter()
        try:
            response = await self._post(body)
        except _RETRYABLE_EXCEPTIONS as exc:  # transport errors quote requests: scrubbed too
            raise TransientError(scrub(_described(exc), self._secret)) from None
        except httpx.HTTPError as exc:  # a request that can never be sent (bad URL, header, protocol)
            raise ProviderError(scrub(_described(exc), self._secret)) from None
        latency_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        limits = dialect.rate_limits(response.headers)
        if status == 200:
            try:
                answer = dialect.answer(response.json(), latency_ms)
            except (MalformedAnswer, ValueError):
                raise TransientError("malformed response body", status, None, limits) from None
            return Reply(answer, limits)
        # Scrubbed before it is cut short: a key quoted across the cut would survive in part.
        detail = f"HTTP {status}: {scrub(dialect.error_detail(response), self._secret)[:_DETAIL]}"
        if dialect.should_retry(response):
            raise TransientError(detail, status, dialect.server_delay(response.headers), limits)
        raise ProviderError(detail, status)
