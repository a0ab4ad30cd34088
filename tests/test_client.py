"""The OpenAI-compatible provider, through the model client, against the simulated server: real
HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest

from evalrun.client import CallPolicy, ModelClient, backoff_delay
from evalrun.events import Event, RetryScheduled
from evalrun.providers.base import ChatResponse, ClientOptions, ProviderError, Reply, TransientError, parse_duration
from evalrun.providers.http import HttpProvider
from evalrun.providers.openai import DIALECT, server_delay
from evalrun.sim import SimProcess

MESSAGES = [{"role": "user", "content": "What is 2+3?"}]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m30s", 90.0),
        ("7.66s", 7.66),
        ("2ms", 0.002),
        ("1h2m3s", 3723.0),
        ("500us", 0.0005),
        ("12", 12.0),
        ("0.5", 0.5),
        ("", None),
        ("soon", None),
        ("5x", None),
    ],
)
def test_parse_duration_reads_groq_headers(text: str, seconds: float | None) -> None:
    result = parse_duration(text)
    assert result == pytest.approx(seconds) if seconds is not None else result is None


def retry_delay(headers: dict[str, str], attempt: int, base: float) -> float:
    return backoff_delay(server_delay(headers), attempt, base)


def test_retry_delay_prefers_the_servers_word() -> None:
    # A base of 1 ms keeps the floor under a told wait (test below) out of the way of short ones.
    assert retry_delay({"retry-after-ms": "250", "retry-after": "9"}, 1, 0.001) == pytest.approx(0.25)
    assert retry_delay({"retry-after": "3"}, 1, 1.0) == pytest.approx(3.0)
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3.5 < retry_delay({"retry-after": http_date}, 1, 1.0) <= 5.0
    groq = {
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-reset-tokens": "7.66s",
        "x-ratelimit-remaining-requests": "14",
        "x-ratelimit-remaining-tokens": "0",
    }
    assert retry_delay(groq, 1, 1.0) == pytest.approx(7.66)  # tokens are the exhausted budget
    assert retry_delay(
        {"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "2ms"}, 1, 0.001
    ) == pytest.approx(0.002)
    assert retry_delay({"retry-after": "3600"}, 1, 1.0) == 60.0  # capped


def test_backoff_without_headers_grows_exponentially_with_jitter() -> None:
    for attempt in (1, 2, 3, 4):
        ceiling = 0.1 * 2 ** (attempt - 1)
        delays = [retry_delay({}, attempt, 0.1) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_a_told_wait_has_a_floor_that_grows_with_each_refusal() -> None:
    """A 429 that names no wait (or one already past) is not retried in a tight loop."""
    past = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 30))
    openai_reset = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6ms"}
    for headers in ({"retry-after": "0"}, {"retry-after": past}, {"retry-after-ms": "0"}, openai_reset):
        assert [retry_delay(headers, attempt, 0.5) for attempt in (1, 2, 3, 4, 10)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert [backoff_delay(1.0, attempt, 0.5) for attempt in (1, 5, 50)] == [1.0, 1.0, 1.0]  # never stretched
    assert backoff_delay(7.0, 50, 0.5) == 7.0 and backoff_delay(0.0, 3, 0.5, ceiling=0.2) == 0.2


def _complete(
    sim: SimProcess,
    retries: int = 3,
    api_key: str | None = None,
    base_url: str | None = None,
    request_timeout: float = 5.0,
    rate_limit_wait: float = 600.0,
) -> tuple[tuple[ChatResponse, int] | ProviderError, list[RetryScheduled]]:
    """One call through the model client: the answer and attempts (or the error), and its retries."""
    events: list[Event] = []

    async def go() -> tuple[ChatResponse, int] | ProviderError:
        identity = {"name": "sim", "base_url": "sim://evalrun"}
        options = ClientOptions(request_timeout=request_timeout)
        provider = HttpProvider(DIALECT, identity, base_url or sim.base_url, api_key, options)
        policy = CallPolicy(concurrency=1, retries=retries, retry_base_delay=0.001, rate_limit_wait=rate_limit_wait)
        client, holder = ModelClient(provider, policy, lambda event: events.append(event)), object()
        try:
            await client.acquire(holder)
            return await client.complete(holder, "sim-1", MESSAGES, {"temperature": 0}, "case-1")
        except ProviderError as exc:
            return exc
        finally:
            await provider.aclose()

    return anyio.run(go), [event for event in events if isinstance(event, RetryScheduled)]


def test_a_call_reads_answer_and_usage(sim: SimProcess) -> None:
    outcome, notices = _complete(sim)
    assert not isinstance(outcome, ProviderError)
    response, attempts = outcome
    assert response.text == "5" and attempts == 1 and notices == []
    assert response.prompt_tokens > 0 and response.completion_tokens == 1
    assert sim.stats()["requests"] == 1


@pytest.mark.parametrize("fault", ["rate_500", "rate_malformed"])
def test_retryable_faults_are_retried_until_the_budget_is_spent(sim: SimProcess, fault: str) -> None:
    sim.control(**{fault: 1.0})
    error, notices = _complete(sim, retries=2)
    assert isinstance(error, ProviderError) and error.attempts == 3
    assert [n.attempt for n in notices] == [1, 2] and notices[0].case_id == "case-1"
    assert sim.stats()["requests"] == 3


def test_429s_are_retried_for_a_time_not_a_count(sim: SimProcess) -> None:
    sim.control(rate_429=1.0, retry_after_ms=10)
    error, notices = _complete(sim, retries=1, rate_limit_wait=0.3)
    assert isinstance(error, ProviderError) and error.status == 429
    assert "still rate limited after 0.3 s" in str(error)
    assert len(notices) > 5 and error.attempts == len(notices) + 1  # far beyond --retries 1
    assert notices[0].delay == pytest.approx(0.01)  # the server's word, while it is above the floor
    assert all(n.status == 429 and n.delay >= 0.01 for n in notices)


def test_429s_do_not_spend_the_retries_of_failures(sim: SimProcess) -> None:
    sim.control(rate_429=0.5, rate_500=0.0, retry_after_ms=1, seed=5)
    outcomes = [_complete(sim, retries=0)[0] for _ in range(20)]
    assert not any(isinstance(outcome, ProviderError) for outcome in outcomes)  # retries=0, yet no 429 lost
    assert sim.stats()["by_status"]["429"] > 5


def test_429_honours_retry_after_ms(sim: SimProcess) -> None:
    sim.control(rate_429=1.0, retry_after_ms=30)
    _, notices = _complete(sim, retries=1, rate_limit_wait=0.5)  # time for a slow first call, and a retry
    assert notices[0].status == 429 and notices[0].delay == pytest.approx(0.03)


def test_timeouts_are_retried(sim: SimProcess) -> None:
    sim.control(rate_timeout=1.0)
    error, notices = _complete(sim, retries=1, request_timeout=0.2)
    assert isinstance(error, ProviderError) and "Timeout" in str(error)
    assert len(notices) == 1
    deadline = time.monotonic() + 10  # the server may read the second request after the client gave up on it
    while sim.stats()["requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.stats()["requests"] == 2


def test_retries_zero_means_one_attempt(sim: SimProcess) -> None:
    sim.control(rate_500=1.0)
    error, notices = _complete(sim, retries=0)
    assert isinstance(error, ProviderError) and error.status == 500 and error.attempts == 1
    assert notices == [] and sim.stats()["requests"] == 1


def test_intermittent_faults_end_in_success(sim: SimProcess) -> None:
    sim.control(rate_500=0.5, seed=3)
    results = [_complete(sim, retries=10)[0] for _ in range(10)]
    answers = [r for r in results if not isinstance(r, ProviderError)]
    assert len(answers) == 10 and all(response.text == "5" for response, _ in answers)
    assert sum(attempts for _, attempts in answers) > 10


def test_client_errors_are_not_retried(sim: SimProcess) -> None:
    sim.control(api_key="sk-right")
    error, notices = _complete(sim, retries=3, api_key="sk-wrong-key-123")
    assert isinstance(error, ProviderError) and error.status == 401 and error.attempts == 1
    assert "sk-wrong-key-123" not in str(error)
    assert notices == [] and sim.stats()["requests"] == 1


def test_a_request_that_can_never_be_sent_is_an_error_not_a_crash(sim: SimProcess) -> None:
    error, notices = _complete(sim, retries=3, base_url="ftp://127.0.0.1:9/v1")
    assert isinstance(error, ProviderError) and "UnsupportedProtocol" in str(error) and notices == []


def test_not_found_is_not_retried(sim: SimProcess) -> None:
    error, notices = _complete(sim, retries=3, base_url=sim.root_url + "/nowhere")
    assert isinstance(error, ProviderError) and error.status == 404 and notices == []


def test_connection_refused_is_retried_then_reported(sim: SimProcess) -> None:
    error, notices = _complete(sim, retries=1, base_url="http://127.0.0.1:9/v1")
    assert isinstance(error, ProviderError) and "ConnectError" in str(error)
    assert len(notices) == 1


def test_a_429_naming_no_wait_is_not_retried_in_a_tight_loop(sim: SimProcess) -> None:
    sim.control(rate_429=1.0, retry_after_ms=0)  # "retry-after: 0", every time
    error, notices = _complete(sim, rate_limit_wait=2.0)
    assert isinstance(error, ProviderError) and error.status == 429
    # Taken as said, a zero wait made thousands of requests in 2 s; the floor grows from half a
    # millisecond (this base) to a second: about a dozen.
    assert 5 < sim.stats()["requests"] < 50
    assert [n.delay for n in notices] == sorted(n.delay for n in notices) and notices[-1].delay > 0.1


class _Refusing:
    """A provider whose first ``refusals`` attempts fail with ``error``, then answer."""

    def __init__(self, error: TransientError, refusals: int) -> None:
        self.identity = {"name": "stub", "base_url": "stub://"}
        self.error, self.refusals, self.attempts = error, refusals, 0

    async def send(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Reply:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise self.error
        return Reply(ChatResponse("5", 3, 1, 1.0))

    async def server_stats(self) -> dict[str, Any] | None:
        return None

    async def aclose(self) -> None:
        pass


def _stubbed(provider: _Refusing, policy: CallPolicy) -> list[RetryScheduled]:
    """One call through the model client to ``provider``, which must end in an answer; its retries."""
    events: list[Event] = []

    async def go() -> None:
        client, holder = ModelClient(provider, policy, lambda event: events.append(event)), object()
        await client.acquire(holder)
        with anyio.fail_after(3):  # a case's worth of seconds, not the minutes a bug takes
            await client.complete(holder, "m", MESSAGES, {}, "case-1")

    anyio.run(go)
    return [event for event in events if isinstance(event, RetryScheduled)]


def test_a_5xx_that_names_no_wait_gets_the_floor_too() -> None:
    provider = _Refusing(TransientError("HTTP 503", 503, delay=0.0), refusals=3)
    notices = _stubbed(provider, CallPolicy(retries=3, retry_base_delay=0.1))
    assert [n.delay for n in notices] == pytest.approx([0.05, 0.1, 0.2])


def test_a_refused_attempt_gives_its_token_estimate_back() -> None:
    """Each attempt takes about 260 tokens (no answer seen yet) from a 3000 TPM budget, which
    holds 50: kept, the estimates of two refused attempts would hold the third for 10 s."""
    provider = _Refusing(TransientError("HTTP 429", 429, delay=0.001), refusals=2)
    notices = _stubbed(provider, CallPolicy(tpm=3000, retry_base_delay=0.001))
    assert len(notices) == 2 and provider.attempts == 3


def test_only_an_attempt_never_served_gives_its_estimate_back() -> None:
    """A refusal or a server never reached cost nothing; an answer that timed out or came back
    broken was generated all the same, and the provider's budget counted it."""
    from evalrun.client.model_client import _never_served

    refused = [TransientError("x", status) for status in (408, 429, 500, 503)]
    assert all(_never_served(failure) for failure in refused)
    assert _never_served(TransientError("ConnectError", unreachable=True))
    assert not _never_served(TransientError("ReadTimeout: the answer took longer than 60 s"))
    assert not _never_served(TransientError("a broken body", 200))
