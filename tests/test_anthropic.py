"""The Anthropic provider against a fake Messages API on 127.0.0.1: real HTTP, no internet."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
import pytest
from fake_anthropic import FakeAnthropic

from evalrun.client import CallPolicy, ModelClient
from evalrun.events import Event, RetryScheduled
from evalrun.providers.anthropic import (
    DEFAULT_BASE_URL,
    AnthropicDialect,
    check_options,
    open_provider,
    parse_rfc3339,
    rate_limits,
    server_delay,
)
from evalrun.providers.base import ChatResponse, ClientOptions, ProviderError
from evalrun.providers.profiles import ProviderProfile
from evalrun.providers.registry import check_profile
from evalrun.providers.registry import open_provider as open_registered

KEY = "sk-ant-test-secret"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And 3+4?"},
]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as server:
        yield server


def _profile(base_url: str, options: Mapping[str, Any] | None = None) -> ProviderProfile:
    return ProviderProfile(
        name="claude", api="anthropic", base_url=base_url, api_key_env="X", model="m", options=dict(options or {})
    )


def run_call(
    fake: FakeAnthropic,
    *,
    retries: int = 2,
    options: Mapping[str, Any] | None = None,
    messages: Sequence[Mapping[str, Any]] = MESSAGES,
    params: Mapping[str, Any] | None = None,
    key: str = KEY,
) -> tuple[tuple[ChatResponse, int] | ProviderError, list[RetryScheduled]]:
    """One call through the registry and the model client: the answer and attempts (or the error),
    and the retries."""
    events: list[Event] = []
    policy = CallPolicy(concurrency=2, retries=retries, retry_base_delay=0.001)

    async def go() -> tuple[ChatResponse, int] | ProviderError:
        async with open_registered(_profile(fake.url, options), key, ClientOptions(request_timeout=5)) as provider:
            client, holder = ModelClient(provider, policy, lambda event: events.append(event)), object()
            try:
                await client.acquire(holder)
                return await client.complete(holder, "m", messages, dict(params or {}), "case")
            except ProviderError as exc:
                return exc

    return anyio.run(go), [event for event in events if isinstance(event, RetryScheduled)]


def answered(fake: FakeAnthropic, **kwargs: Any) -> tuple[ChatResponse, int, list[RetryScheduled]]:
    result, notices = run_call(fake, **kwargs)
    assert not isinstance(result, ProviderError), result
    return result[0], result[1], notices


def failed(fake: FakeAnthropic, **kwargs: Any) -> tuple[ProviderError, list[RetryScheduled]]:
    result, notices = run_call(fake, **kwargs)
    assert isinstance(result, ProviderError), result
    return result, notices


def _rfc3339(seconds_ahead: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds_ahead)
    return when.isoformat().replace("+00:00", "Z")


# -- a call --------------------------------------------------------------------------------------


def test_a_call_maps_the_request_and_reads_the_answer(fake: FakeAnthropic) -> None:
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "STOP",
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "response_format": {"type": "json_object"},
        "n": 1,
    }
    response, attempts, notices = answered(fake, params=params)

    assert (response.text, response.model, response.finish_reason) == ("echo: And 3+4?", "m", "end_turn")
    assert (response.prompt_tokens, response.completion_tokens) == (12, 3)  # the fake counts words
    assert (attempts, notices) == (1, [])
    [seen] = fake.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    body = seen.body
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["messages"] == [m for m in MESSAGES if m["role"] in ("user", "assistant")]
    assert body["max_tokens"] == 1024
    assert body["stop_sequences"] == ["STOP"]
    assert (body["temperature"], body["top_p"], body["model"]) == (0.2, 0.9, "m")
    assert not {"stop", "seed", "frequency_penalty", "presence_penalty", "response_format", "n"} & set(body)


def test_stop_lists_and_other_message_keys(fake: FakeAnthropic) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "say hi"}], "name": "alice"}]
    response, _, _ = answered(fake, messages=messages, params={"stop": ["hi", "bye"], "top_k": 5})
    assert response.text == "echo: say " and response.finish_reason == "stop_sequence"
    body = fake.bodies[0]
    assert body["stop_sequences"] == ["hi", "bye"] and body["top_k"] == 5
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "say hi"}]}]  # no "name"
    assert "system" not in body


def test_text_is_the_text_blocks_only(fake: FakeAnthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    response, _, _ = answered(fake, messages=[{"role": "user", "content": "hello"}], params={"thinking": thinking})
    assert response.text == "echo: hello"  # the fake put a thinking block first
    assert fake.bodies[0]["thinking"] == thinking


@pytest.mark.parametrize(
    ("params", "max_tokens"),
    [({}, 77), ({"max_completion_tokens": 5}, 5), ({"max_tokens": 2, "max_completion_tokens": 5}, 2)],
)
def test_max_tokens_and_version_from_params_then_profile(
    fake: FakeAnthropic, params: dict[str, Any], max_tokens: int
) -> None:
    response, _, _ = answered(fake, options={"max_tokens": 77, "version": "2099-01-01"}, params=params)
    [seen] = fake.requests
    assert seen.body["max_tokens"] == max_tokens
    assert seen.headers["anthropic-version"] == "2099-01-01"
    assert response.finish_reason == ("max_tokens" if max_tokens < 3 else "end_turn")


def test_no_base_url_means_anthropics_own() -> None:
    async def go() -> Mapping[str, str]:
        async with open_provider(_profile(""), KEY, ClientOptions()) as provider:
            return provider.identity

    expected = {"name": "claude", "base_url": DEFAULT_BASE_URL, "max_tokens": "1024", "version": "2023-06-01"}
    assert anyio.run(go) == expected
    check_profile(_profile(""))  # BASE_URL_REQUIRED is False


def test_the_profiles_max_tokens_is_part_of_the_cache_identity() -> None:
    """A case without max_tokens gets the profile's: changing it changes the answer, so the key."""
    from dataclasses import replace

    from evalrun.providers.registry import cache_identity

    base = _profile("")
    assert cache_identity(base) != cache_identity(replace(base, options={"max_tokens": 64}))
    assert cache_identity(base) != cache_identity(replace(base, options={"version": "2099-01-01"}))


# -- retries -------------------------------------------------------------------------------------


def test_429_and_529_are_retried_after_the_servers_delay(fake: FakeAnthropic) -> None:
    fake.fail_next(1, 429, {"retry-after": "0.02"})
    fake.fail_next(1, 529, {"retry-after-ms": "30"}, message="Overloaded")
    response, attempts, notices = answered(fake)
    assert response.text == "echo: And 3+4?" and attempts == 3
    assert [(n.attempt, n.status, n.delay) for n in notices] == [(1, 429, 0.02), (2, 529, 0.03)]
    assert notices[0].reason.startswith("HTTP 429: rate_limit_error: ")
    assert notices[1].reason == "HTTP 529: overloaded_error: Overloaded"
    assert len(fake.requests) == 3


def test_a_429_waits_for_the_exhausted_budgets_reset(fake: FakeAnthropic) -> None:
    fake.fail_next(
        1,
        429,
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": _rfc3339(1.0),
            "anthropic-ratelimit-tokens-remaining": "5000",
            "anthropic-ratelimit-tokens-reset": _rfc3339(30),
        },
    )
    started = time.monotonic()
    _, attempts, [notice] = answered(fake)
    assert attempts == 2
    # The requests budget's reset, less the time the first call took (a slow machine's first call
    # takes a while): not the tokens' 30 s.
    assert 0.2 < notice.delay <= 1.0
    assert time.monotonic() - started >= notice.delay


def test_should_retry_false_forbids_a_retry_of_a_500(fake: FakeAnthropic) -> None:
    fake.fail_next(1, 500, {"x-should-retry": "false"})
    error, notices = failed(fake)
    assert (error.status, error.attempts, notices) == (500, 1, [])
    assert len(fake.requests) == 1


def test_should_retry_true_forces_a_retry_of_a_400(fake: FakeAnthropic) -> None:
    fake.fail_next(1, 400, {"x-should-retry": "true", "retry-after": "0"})
    _, attempts, [notice] = answered(fake)
    assert attempts == 2 and notice.status == 400
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [500, 503, 408, 409])
def test_server_errors_are_retried_until_the_budget_is_spent(fake: FakeAnthropic, status: int) -> None:
    fake.fail_next(5, status)
    error, notices = failed(fake, retries=2)
    assert (error.status, error.attempts, len(notices)) == (status, 3, 2)
    assert len(fake.requests) == 3


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 146])  # 146: the key straddles the 200-character cut
def test_a_400_is_not_retried_and_never_shows_the_key(fake: FakeAnthropic, padding: int) -> None:
    fake.fail_next(1, 400, message="x" * padding + "bad request from key {api_key}")
    error, notices = failed(fake)
    assert (error.status, error.attempts, notices) == (400, 1, [])
    assert str(error).startswith("HTTP 400: invalid_request_error: ")
    assert KEY not in str(error) and KEY[:8] not in str(error)  # not even cut in half at 200 characters
    assert len(str(error)) <= len("HTTP 400: ") + 200
    assert len(fake.requests) == 1


def test_a_wrong_key_is_a_401_not_retried(fake: FakeAnthropic) -> None:
    error, notices = failed(fake, key="sk-ant-wrong-key")
    assert (error.status, error.attempts, notices) == (401, 1, [])
    assert str(error) == "HTTP 401: authentication_error: invalid x-api-key: ***"
    assert len(fake.requests) == 1


def test_a_body_that_is_not_an_anthropic_error_gives_the_reason_phrase(fake: FakeAnthropic) -> None:
    fake.fail_next(1, 403, raw_body=b"<html>nope</html>")
    error, _ = failed(fake)
    assert str(error) == "HTTP 403: Forbidden"


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "message", "content": [{"type": "text", "te',  # cut short
        b'{"type": "message", "content": "echo"}',  # content is not a list of blocks
        b'{"type": "message", "content": [{"type": "text", "text": 5}]}',
        b'{"type": "message", "usage": {"input_tokens": 1}}',
        b"[]",
        b'{"type": "message", "content": []}',  # no answer: scored as "", it would pass negative assertions
        b'{"type": "message", "content": [{"type": "thinking", "thinking": "hm", "signature": "c2ln"}]}',
    ],
)
def test_a_malformed_200_is_retried_then_reported(fake: FakeAnthropic, body: bytes) -> None:
    fake.fail_next(3, 200, raw_body=body)
    error, notices = failed(fake, retries=2)
    assert (str(error), error.status, error.attempts) == ("malformed response body", 200, 3)
    assert [n.reason for n in notices] == ["malformed response body"] * 2
    fake.fail_next(1, 200, raw_body=body)
    response, attempts, _ = answered(fake, retries=2)
    assert response.text == "echo: And 3+4?" and attempts == 2


def test_a_tool_use_in_place_of_text_is_an_answer(fake: FakeAnthropic) -> None:
    tool_use = {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 2, "b": 3}}
    body = {"type": "message", "content": [tool_use], "stop_reason": "tool_use", "usage": {"output_tokens": 9}}
    fake.fail_next(1, 200, raw_body=json.dumps(body).encode())
    response, attempts, _ = answered(fake, retries=2)
    assert (response.text, response.finish_reason, response.completion_tokens, attempts) == ("", "tool_use", 9, 1)


# -- the dialect, unit by unit -------------------------------------------------------------------


def test_server_delay_reads_the_reset_of_exhausted_budgets() -> None:
    soon, later = _rfc3339(2.0), _rfc3339(40.0)
    exhausted = {"anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": soon}
    delay = server_delay(exhausted)
    assert delay is not None and 1.0 < delay <= 2.5
    assert server_delay({**exhausted, "anthropic-ratelimit-tokens-remaining": "12"}) is None
    assert server_delay({"anthropic-ratelimit-requests-reset": soon}) is None  # nothing says it is spent
    both = {
        **exhausted,
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": later,
    }
    assert 39.0 < (server_delay(both) or 0.0) <= 40.0  # the latest of the exhausted
    past = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": _rfc3339(-5)}
    assert server_delay(past) == 0.0  # never negative
    assert server_delay({**exhausted, "retry-after": "3"}) == 3.0  # the server's explicit word first
    assert server_delay({**exhausted, "Retry-After-Ms": "250"}) == 0.25
    assert server_delay(httpx.Headers(exhausted)) == pytest.approx(delay, abs=0.1)
    assert server_delay({}) is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05+00:00"),
        ("2025-01-02T03:04:05.5Z", "2025-01-02T03:04:05.500000+00:00"),
        ("2025-01-02T03:04:05.123456789Z", "2025-01-02T03:04:05.123456+00:00"),
        ("2025-01-02T05:04:05+02:00", "2025-01-02T05:04:05+02:00"),
        ("2025-01-02T03:04:05", "2025-01-02T03:04:05+00:00"),
    ],
)
def test_rfc3339_timestamps_are_read_as_python_310_cannot(text: str, iso: str) -> None:
    when = parse_rfc3339(text)
    assert when is not None and when.isoformat() == iso


@pytest.mark.parametrize("text", ["", "soon", "2025-13-01T00:00:00Z"])
def test_rfc3339_nonsense_is_none(text: str) -> None:
    assert parse_rfc3339(text) is None


def test_answer_counts_cached_prompt_tokens() -> None:
    body = {
        "model": "claude-x",
        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}, {"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 3,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "output_tokens": 2,
        },
    }
    response = AnthropicDialect().answer(body, 12.5)
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("ok", 123, 2)
    assert (response.model, response.finish_reason, response.latency_ms) == ("claude-x", "end_turn", 12.5)


def test_headers_omit_a_missing_key() -> None:
    assert AnthropicDialect().headers(None) == {"anthropic-version": "2023-06-01"}
    assert AnthropicDialect(version="v").headers("k") == {"anthropic-version": "v", "x-api-key": "k"}


# -- the profile's settings ----------------------------------------------------------------------


def test_check_options_accepts_its_own_settings() -> None:
    check_options({})
    check_options({"version": "2023-06-01", "max_tokens": 4096})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"zeta": 1, "alpha": 2, "version": "x"}, "unknown setting(s): alpha, zeta"),
        ({"max_tokens": 0}, "max_tokens must be a positive integer"),
        ({"max_tokens": -5}, "max_tokens must be a positive integer"),
        ({"max_tokens": True}, "max_tokens must be a positive integer"),
        ({"max_tokens": "100"}, "max_tokens must be a positive integer"),
        ({"version": ""}, "version must be a non-empty string"),
        ({"version": 2023}, "version must be a non-empty string"),
    ],
)
def test_check_options_rejects_the_rest(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_options(options)
    with pytest.raises(ValueError, match=r"unknown setting|must be"):
        check_profile(_profile("", options))


def test_rate_headers_state_the_budgets_per_minute() -> None:
    limits = rate_limits(
        {
            "Anthropic-RateLimit-Requests-Limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": _rfc3339(2),
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "not a number",
        }
    )
    assert limits is not None and limits.requests is not None and limits.tokens is not None
    assert (limits.requests.limit, limits.requests.remaining) == (50, 49)
    assert 1.0 < (limits.requests.reset or 0) <= 2.0
    assert (limits.tokens.limit, limits.tokens.remaining, limits.tokens.reset) == (40000, None, None)
    assert rate_limits({"content-type": "application/json"}) is None
