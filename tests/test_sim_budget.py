"""The simulated provider's rate budget (rpm, tpm) and concurrency cap, over real HTTP on 127.0.0.1.

Bounded and untimed: budgets are chosen so that a burst is refused whatever the machine's speed
(a bucket holds one second's worth, and a burst of a few requests takes milliseconds), and the
only waits are for a refill of a fraction of a second.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest
from typer.testing import CliRunner

from evalrun.cli import app
from evalrun.providers.base import parse_duration
from evalrun.sim import SimConfig, SimProcess, SimServer
from evalrun.sim.server import _duration

SMALL: dict[str, Any] = {"model": "sim-1", "messages": [{"role": "user", "content": "What is 2+3?"}]}  # 3 + 1 tokens
INFLIGHT_BODY = {"error": {"message": "too many concurrent requests", "type": "rate_limit_exceeded"}}


def _post(client: httpx.Client, sim: SimProcess, body: dict[str, Any] = SMALL) -> httpx.Response:
    return client.post(f"{sim.base_url}/chat/completions", json=body)


def _client(timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(timeout=timeout, trust_env=False)


def _concurrently(sim: SimProcess, count: int) -> list[httpx.Response]:
    """``count`` requests at once, in the order their answers came back."""
    done: list[httpx.Response] = []

    async def one(client: httpx.AsyncClient) -> None:
        done.append(await client.post(f"{sim.base_url}/chat/completions", json=SMALL))

    async def go() -> None:
        limits = httpx.Limits(max_connections=count)
        async with (
            httpx.AsyncClient(timeout=5.0, trust_env=False, limits=limits) as client,
            anyio.create_task_group() as tg,
        ):
            for _ in range(count):
                tg.start_soon(one, client)

    anyio.run(go)
    return done


def _seconds(response: httpx.Response, header: str) -> float:
    value = parse_duration(response.headers[header])
    assert value is not None, response.headers[header]
    return value


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.1, 0.45, 0.999, 1.0, 2.5, 7.66, 59.9999, 60.0, 90.0, 3723.5])
def test_reset_durations_are_go_style_and_round_trip(seconds: float) -> None:
    text = _duration(seconds)
    parsed = parse_duration(text)
    assert parsed is not None and seconds <= parsed + 1e-9 <= seconds + 0.001 + 1e-9, text
    assert "e" not in text  # never 1e-05s: Go writes no exponents


def test_go_style_examples() -> None:
    assert [_duration(s) for s in (0, 0.45, 2.5, 90, 60, 3600)] == ["0s", "450ms", "2.5s", "1m30s", "1m0s", "1h0m0s"]


def test_every_answer_carries_the_budget_headers_and_remaining_goes_down(sim: SimProcess) -> None:
    # Buckets of 2 requests and 8 tokens (SMALL costs 4): half a second's refill is one request's
    # worth, so the two answers show the budgets going down however slow the machine.
    sim.control(rpm=120, tpm=480)
    with _client() as client:
        answers = [_post(client, sim) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["usage"]["total_tokens"] == 4
    for response in answers:
        assert response.headers["x-ratelimit-limit-requests"] == "120"
        assert response.headers["x-ratelimit-limit-tokens"] == "480"
        assert "retry-after" not in response.headers
        for kind in ("requests", "tokens"):
            assert 0 < _seconds(response, f"x-ratelimit-reset-{kind}") <= 1.0  # a bucket holds one second
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["1", "0"]
    assert [a.headers["x-ratelimit-remaining-tokens"] for a in answers] == ["4", "0"]
    assert _seconds(answers[0], "x-ratelimit-reset-requests") <= _seconds(answers[1], "x-ratelimit-reset-requests")


def test_a_burst_beyond_one_seconds_worth_is_refused_then_passes_after_the_refill(sim: SimProcess) -> None:
    sim.control(rpm=120)  # holds 2 requests, refills 2 a second
    with _client() as client:
        burst = [_post(client, sim) for _ in range(8)]
        statuses = [r.status_code for r in burst]
        assert statuses[:2] == [200, 200] and 429 in statuses
        for refused in (r for r in burst if r.status_code == 429):
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["x-ratelimit-remaining-requests"] == "0"
            assert refused.headers["x-ratelimit-limit-requests"] == "120"
            assert 0 < _seconds(refused, "x-ratelimit-reset-requests") <= 1.0
            assert "retry-after-ms" not in refused.headers and "x-ratelimit-limit-tokens" not in refused.headers
            assert refused.json()["error"]["type"] == "rate_limit_exceeded"
        stats = sim.stats()
        assert stats["rate_limited"] == {"budget": statuses.count(429), "inflight": 0, "fault": 0}
        assert stats["by_status"] == {"200": statuses.count(200), "429": statuses.count(429)}

        time.sleep(0.6)  # 1.2 requests' worth
        assert _post(client, sim).status_code == 200
        _post(client, sim)
        sim.control(rpm=120)  # a /control naming the budget fills it again
        assert [_post(client, sim).status_code for _ in range(2)] == [200, 200]


def test_a_budget_refusal_comes_at_once_not_after_the_latency(sim: SimProcess) -> None:
    sim.control(rpm=6)  # one request, then one every 10 s
    with _client() as client:
        assert _post(client, sim).status_code == 200
    sim.control(latency_ms=10_000)
    with _client(timeout=1.0) as impatient:  # an answer would take 10 s: a timeout, not a 429
        refused = _post(impatient, sim)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-limit-requests"] == "6"
    assert 5 <= int(refused.headers["retry-after"]) <= 10
    assert 5 < _seconds(refused, "x-ratelimit-reset-requests") <= 10


def test_tpm_limits_by_tokens_and_an_oversized_request_passes_when_the_bucket_is_full(sim: SimProcess) -> None:
    medium = {"model": "sim-1", "messages": [{"role": "user", "content": "What is 12+30?"}]}
    with _client() as client:
        assert _post(client, sim, medium).json()["usage"]["total_tokens"] == 5
        sim.control(tpm=300)  # holds 5 tokens, refills 5 a second; SMALL costs 4
        first, second = _post(client, sim), _post(client, sim, medium)
        assert first.status_code == 200 and first.headers["x-ratelimit-remaining-tokens"] == "1"
        assert second.status_code == 429  # 5 tokens asked, about 1 left: refused, and nothing charged
        assert second.headers["x-ratelimit-remaining-tokens"] == "0" and second.headers["retry-after"] == "1"
        assert "x-ratelimit-remaining-requests" not in second.headers  # only the budget that is set
        assert sim.stats()["requests"] == 3

        sim.control(tpm=300)
        big = {"model": "sim-1", "messages": [{"role": "system", "content": "x" * 100}, *SMALL["messages"]]}
        oversized = _post(client, sim, big)
        assert oversized.status_code == 200 and oversized.json()["usage"]["total_tokens"] == 29  # 28 + 1
        # It ran the bucket 24 tokens into debt: a small request now waits about 5.6 s (28 tokens).
        after = _post(client, sim)
        assert after.status_code == 429 and int(after.headers["retry-after"]) >= 4
        assert 4 < _seconds(after, "x-ratelimit-reset-tokens") <= 5.8
    assert sim.stats()["rate_limited"]["budget"] == 2


def test_max_inflight_refuses_at_once_with_nothing_saying_when_to_come_back(sim: SimProcess) -> None:
    sim.control(latency_ms=300, max_inflight=3)
    answers = _concurrently(sim, 6)
    statuses = [r.status_code for r in answers]
    assert statuses == [429, 429, 429, 200, 200, 200]  # the refusals come back before any answer
    for refused in answers[:3]:
        assert refused.json() == INFLIGHT_BODY
        assert not [h for h in refused.headers if h.startswith(("retry-after", "x-ratelimit"))]
    stats = sim.stats()
    assert stats["rate_limited"] == {"budget": 0, "inflight": 3, "fault": 0}
    assert stats["inflight"] == 0


def test_the_concurrency_cap_comes_before_the_budget(sim: SimProcess) -> None:
    sim.control(latency_ms=300, max_inflight=1, rpm=6000)
    answers = _concurrently(sim, 3)
    assert sorted(r.status_code for r in answers) == [200, 429, 429]
    assert sim.stats()["rate_limited"] == {"budget": 0, "inflight": 2, "fault": 0}
    ok = next(r for r in answers if r.status_code == 200)
    assert ok.headers["x-ratelimit-remaining-requests"] == "99"  # only the admitted one was charged


def test_429s_after_the_first_response_count_only_requests_that_arrived_after_it(sim: SimProcess) -> None:
    assert sim.stats()["first_response_at"] is None
    sim.control(latency_ms=300, max_inflight=1)
    before = time.time()
    first_batch = _concurrently(sim, 3)  # 2 refused while the first answer is being made
    assert sorted(r.status_code for r in first_batch) == [200, 429, 429]
    stats = sim.stats()
    assert stats["rate_limited_after_first_response"] == 0
    assert before <= stats["first_response_at"] <= time.time()
    first_at = stats["first_response_at"]

    second_batch = _concurrently(sim, 2)  # after the first 200: its refusal counts
    assert sorted(r.status_code for r in second_batch) == [200, 429]
    stats = sim.stats()
    assert stats["rate_limited_after_first_response"] == 1
    assert stats["first_response_at"] == first_at  # the first, not the latest
    assert stats["rate_limited"]["inflight"] == 3

    sim.reset_stats()
    stats = sim.stats()
    assert stats["first_response_at"] is None and stats["rate_limited_after_first_response"] == 0
    assert stats["rate_limited"] == {"budget": 0, "inflight": 0, "fault": 0}


def test_the_random_429_says_try_again_later_not_that_the_budget_is_spent(sim: SimProcess) -> None:
    sim.control(rate_429=1.0, retry_after_ms=30)
    with _client() as client:
        response = _post(client, sim)
        assert response.status_code == 429
        assert response.headers["retry-after-ms"] == "30" and response.headers["retry-after"] == "1"
        assert not [h for h in response.headers if h.startswith("x-ratelimit")]

        sim.control(rpm=600)  # with a budget, the headers tell its truth: not spent
        budgeted = _post(client, sim)
        assert budgeted.status_code == 429 and budgeted.headers["retry-after-ms"] == "30"
        assert budgeted.headers["x-ratelimit-remaining-requests"] == "9"
    assert sim.stats()["rate_limited"] == {"budget": 0, "inflight": 0, "fault": 2}


def test_the_budget_comes_before_the_random_faults() -> None:
    async def go() -> None:
        server = SimServer(SimConfig(rpm=60, rate_500=1.0))
        await server.start()
        try:
            async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
                url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
                failed = await client.post(url, json=SMALL)
                refused = await client.post(url, json=SMALL)
        finally:
            server.close()
        assert failed.status_code == 500 and failed.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert server.stats.as_dict()["rate_limited"]["budget"] == 1

    anyio.run(go)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rpm": -1}, "rpm must be 0 or more"),
        ({"tpm": "lots"}, "tpm must be a number"),
        ({"max_inflight": 2.5}, "max_inflight must be a whole number"),
        ({"max_inflight": -3}, "max_inflight must be 0 or more"),
    ],
)
def test_bad_budgets_are_refused(sim: SimProcess, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimConfig().update(changes)
    response = httpx.post(f"{sim.root_url}/control", json=changes, timeout=5, trust_env=False)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_budgets_are_settings_of_the_config() -> None:
    config = SimConfig()
    config.update({"rpm": "600", "tpm": 1000, "max_inflight": "4"})
    assert (config.rpm, config.tpm, config.max_inflight) == (600.0, 1000.0, 4)


def test_sim_command_lists_the_new_flags_and_refuses_bad_values_in_one_line() -> None:
    runner = CliRunner()
    help_text = runner.invoke(app, ["sim", "--help"]).output
    for flag in ("--rpm", "--tpm", "--max-inflight"):
        assert flag in help_text
    for args, line in (
        (["--rpm", "-5"], "evalrun: rpm must be 0 or more, got -5.0\n"),
        (["--max-inflight", "-1"], "evalrun: max_inflight must be 0 or more, got -1\n"),
    ):
        result = runner.invoke(app, ["sim", *args])
        assert result.exit_code == 2 and result.stderr == line and result.stdout == ""
