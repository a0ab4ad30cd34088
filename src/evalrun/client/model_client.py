"""The model client: every call a run makes goes through here, under one set of limits.

It owns what sits between the engine and a provider: the send slots (an ``anyio.CapacityLimiter``
whose size the concurrency controller sets), the pacing (the client's RPM/TPM and the server's
stated budgets) and the retry loop. A call waiting out a retry delay gives its slot up, so that
one "come back in 2 s" does not idle a slot the server would have used; a call refused by a 429
that names no wait (a concurrency cap) keeps it, since handing it on would only send another
request into the same refusal.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ..events import ConcurrencyChanged, Observer, PaceChanged, RetryResumed, RetryScheduled
from ..providers.base import (
    ChatResponse,
    Provider,
    ProviderError,
    RateLimits,
    Reply,
    TransientError,
    estimate_tokens,
)
from .breaker import Breaker, Trip
from .concurrency import ConcurrencyController, Outcome
from .pacing import ServerPacer, Ticket, TokenBucket
from .policy import UNTOLD_429_MAX_DELAY, CallPolicy, backoff_delay

if TYPE_CHECKING:
    from .shared_budget import SharedBudget

__all__ = ["CallLimits", "ModelClient", "acquire_promptly"]


async def acquire_promptly(limiter: anyio.CapacityLimiter, holder: object) -> None:
    """``limiter.acquire_on_behalf_of`` without its checkpoint while there is room, for callers
    with a checkpoint of their own (a full limiter still waits, and yields)."""
    try:
        limiter.acquire_on_behalf_of_nowait(holder)
    except anyio.WouldBlock:
        await limiter.acquire_on_behalf_of(holder)


class CallLimits:
    """The limits calls to one provider share: send slots, the concurrency they adapt to, the
    client's RPM/TPM buckets and the budgets the server states. A run makes its own; a server
    running several runs against one provider gives them one, so that together they never send
    more than one run would be allowed to."""

    def __init__(self, policy: CallPolicy, shared: SharedBudget | None = None) -> None:
        """``shared``: the key's budgets in Redis, shared with every runner of the same key."""
        self.slots = anyio.CapacityLimiter(policy.concurrency)
        self.controller = ConcurrencyController(policy.concurrency)
        self.shared = shared
        self._paced_by_server: set[str] = set()  # shared budgets set from the server's headers
        self.rpm = self._bucket("requests", policy.rpm)
        self.tpm = self._bucket("tokens", policy.tpm)
        self.server = ServerPacer()

    def _bucket(self, kind: str, per_minute: float | None) -> Pacer | None:
        if not per_minute:
            return None
        return self.shared.bucket(kind, per_minute) if self.shared is not None else TokenBucket(per_minute)

    def learned(self, stated: Mapping[str, float]) -> None:
        """The server stated its budgets: with a shared budget, every runner paces by them together
        (alone, each runner's ``ServerPacer`` does)."""
        if self.shared is None:
            return
        for kind, attribute in (("requests", "rpm"), ("tokens", "tpm")):
            per_minute = stated.get(kind)
            configured = getattr(self, attribute) is not None and kind not in self._paced_by_server
            if per_minute and not configured:  # a budget the user set stands; the server's follows it
                setattr(self, attribute, self.shared.bucket(kind, per_minute))
                self._paced_by_server.add(kind)


class Pacer(Protocol):
    """A budget a call takes from before it is sent: a local ``TokenBucket`` or a ``SharedBucket``."""

    async def take(self, amount: float = 1.0) -> None: ...

    def adjust(self, amount: float) -> None: ...


class AnswerSizes:
    """What a run's answers cost in tokens, learned as they come: the answer's share of the
    estimate a call takes from a TPM budget before it is sent, when the request does not cap its
    answer (a request with ``max_tokens`` reserves that, as OpenAI's own limiter does).

    Why learn it: a fixed guess (256 tokens, a paragraph) is fifty times what the short answers
    evals mostly ask for cost (a number, a label, a word). Each call's true cost is settled when
    it is answered, so a minute's budget holds whatever the estimate; but until then the estimate
    is what a call holds of the budget, and a budget held by guesses paces the run by them, not by
    what its calls cost. Why an average and not the largest seen: an under-estimate is settled
    too (the calls after it wait the debt), so the estimate only decides how far ahead of its
    settling the pace runs, and an average errs least both ways. Moving (each answer weighs
    ``WEIGHT``), so that a suite whose answers grow is followed within a few calls; per model,
    since two models answer the same case at their own length.
    """

    WEIGHT = 0.2

    def __init__(self) -> None:
        self._mean: dict[str, float] = {}

    def expected(self, model: str) -> float | None:
        """Tokens an answer of ``model`` is expected to cost; None before the first one."""
        return self._mean.get(model)

    def seen(self, model: str, tokens: int) -> None:
        mean = self._mean.get(model)
        self._mean[model] = float(tokens) if mean is None else mean + self.WEIGHT * (tokens - mean)


@dataclass
class _Tries:
    """One call's retry budgets: failures are counted, 429s are timed."""

    begun_at: float  # time.monotonic() of the first attempt
    give_up_at: float  # time.monotonic() after which a 429 is no longer waited out
    failures: int = 0
    rate_limited: int = 0
    holding: bool = True  # whether the call holds its send slot (not while it waits without it)
    unreachable: int = 0  # attempts in a row that never reached the server


class ModelClient:
    """Calls one provider for a whole run: slots, pacing, retries, and the events that tell of them."""

    def __init__(
        self,
        provider: Provider,
        policy: CallPolicy,
        emit: Observer,
        on_trip: Callable[[Trip], None] | None = None,
        limits: CallLimits | None = None,
    ) -> None:
        """``on_trip`` is told, once, when the outcomes show that no call can succeed (``Breaker``);
        ``limits``, when given, are shared with other clients of the same provider."""
        self._provider = provider
        self._policy = policy
        self._emit = emit
        self._breaker = Breaker()
        self._on_trip = on_trip
        self._limits = limits if limits is not None else CallLimits(policy)
        self._slots, self._controller, self._server = self._limits.slots, self._limits.controller, self._limits.server
        self._answers = AnswerSizes()

    @property
    def limit(self) -> int:
        return self._controller.limit

    async def acquire(self, holder: object) -> None:
        """Take a send slot for ``holder``, which then calls ``complete``; it gives the slot back.
        No checkpoint while a slot is free (the caller has its own): a full set of slots still
        waits, and yields."""
        await acquire_promptly(self._slots, holder)

    async def complete(
        self,
        holder: object,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        label: str,
    ) -> tuple[ChatResponse, int]:
        """The answer and the attempts it took, or ``ProviderError``. ``holder`` holds a slot (see
        ``acquire``); it is released when this returns. ``label`` names the call in events."""
        now = time.monotonic()
        tries = _Tries(now, now + self._policy.rate_limit_wait)
        try:
            for attempt in itertools.count(1):
                estimate = self._estimate(model, messages, params)
                ticket = await self._paced(estimate)
                started = time.monotonic()
                try:
                    reply = await self._send(model, messages, params)
                except TransientError as exc:
                    if estimate and _never_served(exc):  # before _learn: what a refusal says is left caps it
                        self._give_back(estimate)
                    tries.unreachable = tries.unreachable + 1 if exc.unreachable else 0
                    if exc.unreachable:
                        self._tell(self._breaker.unreachable(exc.reason, tries.unreachable))
                    elif exc.status is not None:
                        self._breaker.answered()
                    self._learn(exc.limits, ticket, exc.status == 429, exc.delay)
                    delay = self._delay_before_retry(exc, tries, attempt, started)
                    keep = exc.status == 429 and exc.delay is None
                    self._emit(RetryScheduled(label, model, attempt, delay, exc.reason, exc.status, not keep))
                    await self._wait_out(holder, tries, delay, keep)
                    if not keep:
                        self._emit(RetryResumed(label, model, attempt + 1))
                    continue
                except ProviderError as exc:
                    exc.attempts = attempt
                    self._tell(self._breaker.refused(exc.status, str(exc)))
                    if exc.status is not None:
                        self._breaker.answered()
                    raise
                self._breaker.answered()
                self._learn(reply.limits, ticket)
                self._record(Outcome.OK, started, time.monotonic() - started)
                answer = reply.answer
                self._answers.seen(model, answer.completion_tokens)
                if estimate:
                    self._settle(estimate, answer.prompt_tokens + answer.completion_tokens)
                return answer, attempt
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if tries.holding:
                self._slots.release_on_behalf_of(holder)

    def _tell(self, trip: Trip | None) -> None:
        if trip is not None and self._on_trip is not None:
            self._on_trip(trip)

    async def _send(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> Reply:
        try:
            return await self._provider.send(model, messages, params)
        finally:  # whatever came back, or nothing: no longer unanswered
            self._server.answered()

    async def _wait_out(self, holder: object, tries: _Tries, delay: float, keep_slot: bool) -> None:
        """Sleep before a retry, without the slot unless ``keep_slot``; with it again after."""
        if keep_slot:
            await anyio.sleep(delay)
            return
        self._slots.release_on_behalf_of(holder)
        tries.holding = False
        await anyio.sleep(delay)
        await self._slots.acquire_on_behalf_of(holder)
        tries.holding = True

    def _delay_before_retry(self, exc: TransientError, tries: _Tries, attempt: int, sent_at: float) -> float:
        """The wait before the next attempt, or ``ProviderError`` when there is to be none."""
        policy = self._policy
        if exc.status != 429:  # a failure: from the retry budget; no sign about concurrency
            self._record(Outcome.FAILED, sent_at)  # but an attempt of the round all the same
            tries.failures += 1
            if tries.failures > policy.retries:
                raise ProviderError(exc.reason, exc.status, attempt)
            return backoff_delay(exc.delay, tries.failures, policy.retry_base_delay)
        told = exc.delay is not None
        if exc.limits is None or not exc.limits.spent:  # a spent budget is the pacer's to keep, not a sign of overload
            # An untold 429's call keeps its slot and retries: it counts as begun when it first
            # was, so that a limit just cut is not cut again for calls the old limit let in.
            self._record(Outcome.TOLD_429 if told else Outcome.UNTOLD_429, sent_at if told else tries.begun_at)
        tries.rate_limited += 1
        if told:
            delay = backoff_delay(exc.delay, tries.rate_limited, policy.retry_base_delay)
        else:
            # A cap frees a place within a call's latency: retry within one, and do not let the
            # wait grow much, or a call refused three times comes last in the run by seconds.
            # The controller, not the backoff, keeps the number of attempts in check.
            base = min(policy.retry_base_delay, self._controller.round_trip)
            delay = backoff_delay(None, min(tries.rate_limited, 2), base, UNTOLD_429_MAX_DELAY)
        if time.monotonic() + delay > tries.give_up_at:
            waited = f"still rate limited after {policy.rate_limit_wait:g} s (--rate-limit-wait)"
            raise ProviderError(f"{exc.reason}; {waited}", 429, attempt)
        return delay

    def _estimate(self, model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> int:
        """The tokens a call takes from the TPM budgets before it is sent (0: none to take from)."""
        if not (self._limits.tpm or self._server.tokens):
            return 0
        return estimate_tokens(messages, params, self._answers.expected(model))

    def _give_back(self, estimate: int) -> None:
        """An attempt refused before any work (a 408, 429 or 5xx) or that never reached the server
        costs nothing the budgets know of; the next attempt takes its own estimate, so keeping
        this one would count the call twice and pace the retries by calls never served."""
        self._settle(estimate, 0)

    async def _paced(self, estimate: int) -> Ticket:
        limits = self._limits
        if limits.rpm is not None:
            await limits.rpm.take()
        if limits.tpm is not None:
            await limits.tpm.take(estimate)
        return await self._server.wait(estimate)

    def _settle(self, estimate: int, actual: int) -> None:
        if self._limits.tpm is not None:
            self._limits.tpm.adjust(actual - estimate)
        self._server.settle(estimate, actual)

    def _learn(
        self, limits: RateLimits | None, ticket: Ticket, refused: bool = False, delay: float | None = None
    ) -> None:
        if limits is not None and self._server.observe(limits, ticket, refused, delay):
            stated = self._server.stated
            self._limits.learned(stated)
            self._emit(PaceChanged(stated.get("requests"), stated.get("tokens")))

    def _record(self, outcome: Outcome, sent_at: float, latency: float | None = None) -> None:
        reason = self._controller.record(outcome, sent_at, latency)
        if reason is not None:
            self._slots.total_tokens = self._controller.limit
            self._emit(ConcurrencyChanged(self._controller.limit, reason))


def _never_served(failure: TransientError) -> bool:
    """Whether a failed attempt cost the provider nothing: refused, or the server never reached.
    An answer that timed out or came back broken was generated all the same, and billed."""
    status = failure.status
    return failure.unreachable or status in (408, 429) or (status is not None and status >= 500)
