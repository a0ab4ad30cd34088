"""The model client's rate policies on an injectable clock: concurrency control and pacing.

No sleeping and no server: each test drives a policy with the outcomes a server would give and
reads where it ends. The same policies against real HTTP are in test_engine.py and test_client.py.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import anyio
import pytest

from evalrun.client import ConcurrencyController, Outcome, ServerPacer, TokenBucket
from evalrun.client.pacing import Ticket
from evalrun.providers.base import Budget, RateLimits
from evalrun.providers.openai import rate_limits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(controller: ConcurrencyController, clock: Clock, seconds: float, outcome_of: object) -> list[int]:
    """Attempts at the pace a full window of 200 ms calls makes (each answered 200 ms after it was
    sent); the limits seen along the way."""
    assert callable(outcome_of)
    limits = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now += 0.2 / controller.limit  # `limit` calls in flight, 200 ms each
        controller.record(outcome_of(), sent_at=clock.now - 0.2, latency=0.2)
        limits.append(controller.limit)
    return limits


def test_failures_count_in_a_round_so_random_429s_among_them_are_no_majority() -> None:
    """30 % told 429s, 30 % 5xx and broken bodies: the 429s are no majority of what was sent (left
    out, the failures made them 43 % of a round, and half of some rounds of 20)."""
    clock, rng = Clock(), random.Random(7)
    controller = ConcurrencyController(50, clock)

    def outcome() -> Outcome:
        draw = rng.random()
        return Outcome.TOLD_429 if draw < 0.3 else Outcome.FAILED if draw < 0.6 else Outcome.OK

    assert min(drive(controller, clock, 30, outcome)) == 50


def test_random_429s_that_name_a_wait_keep_the_limit_above_80_percent() -> None:
    clock, rng = Clock(), random.Random(1)
    controller = ConcurrencyController(50, clock)
    limits = drive(controller, clock, 60, lambda: Outcome.TOLD_429 if rng.random() < 0.2 else Outcome.OK)
    assert min(limits) >= 40 and len(limits) > 10_000


def test_sustained_429s_without_a_reset_halve_the_limit() -> None:
    clock, rng = Clock(), random.Random(2)
    controller = ConcurrencyController(50, clock)
    limits = drive(controller, clock, 2.0, lambda: Outcome.UNTOLD_429 if rng.random() < 0.3 else Outcome.OK)
    assert controller.limit <= 25
    steps = [b / a for a, b in itertools.pairwise(limits) if b < a and a >= 10]
    assert steps and min(steps) >= 0.5 - 1 / 10  # never below half in one step (rounding aside)


def test_weak_evidence_cuts_gently() -> None:
    clock = Clock()
    controller = ConcurrencyController(50, clock)
    for _ in range(27):
        controller.record(Outcome.OK, sent_at=0.0, latency=0.2)
    changes = [controller.record(Outcome.UNTOLD_429, sent_at=0.0) for _ in range(3)]  # 3 of 30 refused
    assert changes[-1] is not None and controller.limit == 40  # a fifth off, not half


def test_one_overload_counts_once() -> None:
    clock = Clock()
    controller = ConcurrencyController(50, clock)
    controller.record(Outcome.OK, sent_at=0.0, latency=0.2)
    clock.now = 0.001
    changes = [controller.record(Outcome.UNTOLD_429, sent_at=0.0) for _ in range(30)]  # one burst
    assert sum(change is not None for change in changes) == 1 and controller.limit == 25
    clock.now = 0.5
    for _ in range(2):  # two refusals of calls sent under the new limit: not yet evidence
        assert controller.record(Outcome.UNTOLD_429, sent_at=0.3) is None
    assert controller.limit == 25  # the burst's other 27 refusals were not held against it


def test_the_limit_recovers_within_seconds_once_the_evidence_stops() -> None:
    clock, rng = Clock(), random.Random(3)
    controller = ConcurrencyController(50, clock)
    while controller.limit > 25:
        drive(controller, clock, 0.01, lambda: Outcome.UNTOLD_429 if rng.random() < 0.3 else Outcome.OK)
    limits = drive(controller, clock, 5.0, lambda: Outcome.OK)
    assert max(limits) == 50  # reached, and never above the ceiling
    seconds_to_recover = sum(0.2 / limit for limit in limits[: limits.index(50)])
    assert seconds_to_recover < 2.0  # half (or less) to whole: a few round trips of 200 ms


def test_429s_that_name_a_wait_but_are_most_attempts_do_cut() -> None:
    clock, rng = Clock(), random.Random(4)
    controller = ConcurrencyController(50, clock)
    drive(controller, clock, 2.0, lambda: Outcome.TOLD_429 if rng.random() < 0.7 else Outcome.OK)
    assert controller.limit < 40


def test_a_long_overload_does_not_keep_the_limit_down_after_it() -> None:
    clock = Clock()
    controller = ConcurrencyController(20, clock)
    drive(controller, clock, 120.0, lambda: Outcome.TOLD_429)  # minutes of "come back later"
    assert controller.limit == 1
    limits = drive(controller, clock, 30.0, lambda: Outcome.OK)  # rounds of 20 calls, one at a time
    assert max(limits) == 20  # the rounds of the overload are not held against the recovery


def test_the_limit_never_goes_below_one() -> None:
    clock = Clock()
    controller = ConcurrencyController(4, clock)
    drive(controller, clock, 30.0, lambda: Outcome.UNTOLD_429)
    assert controller.limit == 1


# -- pacing ----------------------------------------------------------------------------------------


def test_token_bucket_paces_to_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(120, clock=clock)  # 2 a second, burst of 2
    assert bucket.wait_time(1) == 0
    bucket.adjust(bucket.capacity)  # spend the burst
    assert bucket.wait_time(1) == pytest.approx(0.5)
    clock.now = 0.5
    assert bucket.wait_time(1) == pytest.approx(0.0)
    clock.now = 100
    assert bucket.wait_time(1) == 0 and bucket.wait_time(2) == 0 and bucket.capacity == 2


async def _wait_for_the_sleeper(bucket: TokenBucket, amount: float, then: Callable[[], None]) -> None:
    """``bucket.take(amount)`` while the bucket owes more than that; ``then`` once it sleeps. The
    clock stands still, so only ``then`` can let the taker through: it must within a second."""
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(bucket.take, amount)
            await anyio.wait_all_tasks_blocked()
            then()


def test_tokens_given_back_wake_the_caller_waiting_for_them() -> None:
    clock = Clock()
    bucket = TokenBucket(3000, clock=clock)  # 50 a second, a burst of 50
    anyio.run(bucket.take, 260)  # an estimate: the bucket owes 210
    assert bucket.wait_time(5) == pytest.approx(4.3)
    anyio.run(_wait_for_the_sleeper, bucket, 5, lambda: bucket.adjust(5 - 260))  # the answer cost 5
    assert bucket.wait_time(40) == 0  # 45 - 5 left


def test_a_new_rate_wakes_the_caller_waiting_at_the_old_one() -> None:
    clock = Clock()
    bucket = TokenBucket(3000, clock=clock)
    anyio.run(bucket.take, 260)

    def faster() -> None:
        bucket.set_rate(300_000)  # 5000 a second: the debt is gone in 43 ms
        clock.now += 0.05

    anyio.run(_wait_for_the_sleeper, bucket, 5, faster)


def test_openai_and_groq_rate_headers_are_read() -> None:
    limits = rate_limits(
        {
            "X-RateLimit-Limit-Requests": "30",
            "x-ratelimit-remaining-requests": "29",
            "x-ratelimit-reset-requests": "2s",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "5870",
            "x-ratelimit-reset-tokens": "1m30s",
            "content-type": "application/json",
        }
    )
    assert limits == RateLimits(Budget(30, 29, 2.0), Budget(6000, 5870, 90.0))
    assert rate_limits({"content-type": "application/json"}) is None
    assert rate_limits({"x-ratelimit-remaining-tokens": "nonsense"}) == RateLimits(None, None)


class ServerBudget:
    """A provider's request budget as the simulated server keeps it: per minute, a second's burst."""

    def __init__(self, rpm: float, clock: Clock) -> None:
        self.rate, self.clock = rpm / 60, clock
        self.capacity = self.tokens = max(1.0, self.rate)
        self.stamp = clock.now

    def admit(self) -> bool:
        now = self.clock.now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def headers(self, rpm: float) -> RateLimits:
        return RateLimits(Budget(rpm, math.floor(self.tokens), (self.capacity - self.tokens) / self.rate))


@pytest.mark.parametrize("rpm", [60, 600, 30])
def test_header_pacing_keeps_a_budget_without_429s_after_the_first_response(rpm: float) -> None:
    """50 calls in flight of 200 ms each, against a budget of ``rpm``: once the first response has
    told the pace, not one request is refused."""
    clock = Clock()
    server, pacer = ServerBudget(rpm, clock), ServerPacer(clock)
    pending: list[tuple[float, bool, RateLimits, Ticket]] = []  # responses on their way back
    refused_after_first = 0
    first_response_at = math.inf
    sends = 0
    while sends < 120:
        arrived = [response for response in pending if response[0] <= clock.now]
        pending = [response for response in pending if response[0] > clock.now]
        for _, refused, limits, ticket in arrived:
            first_response_at = min(first_response_at, clock.now)
            pacer.answered()
            pacer.observe(limits, ticket, refused)
        wait = pacer.requests.wait_time(1) if pacer.requests else 0.0
        if wait > 1e-9:
            next_arrival = min((response[0] for response in pending), default=math.inf)
            clock.now = min(clock.now + wait, next_arrival)
            continue
        if pacer.requests:
            pacer.requests.adjust(1)
        ticket = pacer.sending(0)
        admitted = server.admit()
        refused_after_first += not admitted and clock.now > first_response_at
        pending.append((clock.now + (0.2 if admitted else 0.0), not admitted, server.headers(rpm), ticket))
        sends += admitted
        if len(pending) >= 50:  # every slot busy: wait for the next response
            clock.now = max(clock.now, min(response[0] for response in pending))
    assert refused_after_first == 0
    assert clock.now == pytest.approx(120 / (rpm / 60), rel=0.1)  # and at the budget's pace, not slower


def test_a_spent_budget_without_a_limit_holds_new_sends_until_its_reset() -> None:
    clock = Clock()
    pacer = ServerPacer(clock)
    assert not pacer.observe(RateLimits(Budget(None, 0, 1.5)), pacer.sending(0))
    assert pacer.hold_remaining() == pytest.approx(1.5)
    clock.now = 2.0
    assert pacer.hold_remaining() == 0
