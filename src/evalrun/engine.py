"""The engine: tasks in, events out.

Tasks (case x model x repeat) are pulled lazily from an iterator. Each is first looked up in the
cache without holding a slot; only a miss waits for a slot of the ``CapacityLimiter``, then for the
RPM/TPM buckets, then calls the provider in the shared task group. The number of live coroutines is
therefore bounded by the concurrency, not by the suite. On a 429 the limiter's size is halved
(AIMD) and grows back one by one while calls succeed.

The engine knows nothing of displays or files: it emits events, and that is all it says.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from .assertions import score_case
from .cache import ResponseCache, cache_key, key_record
from .client import ChatResponse, ProviderError, RetryNotice, estimate_tokens
from .events import (
    CacheHit,
    ConcurrencyChanged,
    Event,
    RetryScheduled,
    RunFinished,
    TaskFinished,
    TaskStarted,
)
from .ratelimit import AimdController, TokenBucket
from .results import CaseResult
from .suite import Case

__all__ = ["Completer", "Engine", "EngineOptions", "Task", "task_record"]

_YIELD_EVERY = 64  # cache hits in a row before the producer lets other tasks (timers, signals) run
_FLUSH_SECONDS = 0.05  # answers reach the disk cache within this, in batches


@dataclass(frozen=True)
class Task:
    case: Case
    model: str
    repeat: int


class Completer(Protocol):
    """What the engine needs of a provider client."""

    async def complete(
        self,
        model: str,
        messages: Any,
        params: Mapping[str, Any],
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> tuple[ChatResponse, int]: ...


@dataclass(frozen=True)
class EngineOptions:
    provider: str
    cache_base_url: str
    concurrency: int = 10
    rpm: int | None = None
    tpm: int | None = None
    repeat_count: int = 1
    timeout: float | None = None


def _scored(task: Task, response: ChatResponse, cached: bool, attempts: int) -> CaseResult:
    case = task.case
    passed, score, checks = score_case(case.assertions, response.text, response.latency_ms, case.threshold)
    return CaseResult(
        id=case.id,
        category=case.category,
        model=task.model,
        repeat=task.repeat,
        status="pass" if passed else "fail",
        score=score,
        response=response.text,
        assertions=[{"type": c.type, "pass": c.passed, "score": round(c.score, 6), "reason": c.reason} for c in checks],
        latency_ms=response.latency_ms,
        tokens={"prompt": response.prompt_tokens, "completion": response.completion_tokens},
        cached=cached,
        attempts=attempts,
    )


def _unfinished(task: Task, status: str, error: str | None = None, attempts: int = 0) -> CaseResult:
    case = task.case
    return CaseResult(
        id=case.id,
        category=case.category,
        model=task.model,
        repeat=task.repeat,
        status=status,
        error=error,
        attempts=attempts,
    )


@dataclass
class _RunState:
    outcome: str = "completed"
    message: str = ""
    in_flight: dict[object, Task] = field(default_factory=dict)


def task_record(task: Task, options: EngineOptions) -> dict[str, Any]:
    """The cache key record of a task (the repeat index counts only when the run repeats)."""
    case = task.case
    return key_record(
        options.provider,
        options.cache_base_url,
        task.model,
        case.messages,
        case.params,
        case.category,
        task.repeat if options.repeat_count > 1 else None,
    )


class Engine:
    """Runs tasks against one provider client and one cache, emitting events as it goes."""

    def __init__(
        self, client: Completer, cache: ResponseCache, options: EngineOptions, emit: Callable[[Event], None]
    ) -> None:
        self._client = client
        self._cache = cache
        self._options = options
        self._emit = emit
        self._limiter = anyio.CapacityLimiter(options.concurrency)
        self._aimd = AimdController(options.concurrency)
        self._rpm = TokenBucket(options.rpm) if options.rpm else None
        self._tpm = TokenBucket(options.tpm) if options.tpm else None
        self._scope: anyio.CancelScope | None = None
        self._state = _RunState()

    def cancel(self, outcome: str = "interrupted", message: str = "") -> None:
        """Stop the run from outside (Ctrl-C): in-flight calls are cancelled, the rest is not run."""
        if self._state.outcome == "completed":
            self._state.outcome, self._state.message = outcome, message
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, tasks: Iterable[Task]) -> str:
        """Run every task; return how the run ended (completed, timeout, interrupted)."""
        remaining = iter(tasks)
        state = self._state
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._options.timeout is not None:
                scope.deadline = anyio.current_time() + self._options.timeout
            async with anyio.create_task_group() as background:
                background.start_soon(self._flush_cache_every, _FLUSH_SECONDS)
                async with anyio.create_task_group() as calls:
                    await self._feed(remaining, calls)
                background.cancel_scope.cancel()
        self._cache.flush()  # whatever way the run ended, every answer received is kept
        if scope.cancelled_caught and state.outcome == "completed":
            state.outcome = "timeout"
            state.message = f"run timeout of {self._options.timeout:g} s reached"
        not_run = self._emit_not_run(list(state.in_flight.values()), remaining)
        if not_run and not state.message:
            state.message = f"{not_run} task(s) did not run"
        self._emit(RunFinished(state.outcome, state.message))
        return state.outcome

    async def _flush_cache_every(self, seconds: float) -> None:
        while True:
            await anyio.sleep(seconds)
            self._cache.flush()

    def _emit_not_run(self, cancelled: Iterable[Task], remaining: Iterator[Task]) -> int:
        count = 0
        for task in itertools.chain(cancelled, remaining):  # streamed: the rest may be millions
            self._emit(TaskFinished(_unfinished(task, "not_run")))
            count += 1
        return count

    async def _feed(self, tasks: Iterator[Task], group: anyio.abc.TaskGroup) -> None:
        hits_in_a_row = 0
        for task in tasks:
            record = task_record(task, self._options)
            key = cache_key(record)
            cached = self._cache.get(key)
            if cached is not None:
                case = task.case
                self._emit(CacheHit(case.id, case.category, task.model, task.repeat))
                self._emit(TaskFinished(_scored(task, cached, cached=True, attempts=0)))
                hits_in_a_row += 1
                if hits_in_a_row % _YIELD_EVERY == 0:
                    await anyio.lowlevel.checkpoint()
                continue
            hits_in_a_row = 0
            slot = object()
            self._state.in_flight[slot] = task  # still listed if cancelled while waiting: it did not run
            await self._limiter.acquire_on_behalf_of(slot)
            group.start_soon(self._call, task, key, record, slot)

    async def _call(self, task: Task, key: str, record: dict[str, Any], slot: object) -> None:
        case = task.case
        try:
            self._emit(TaskStarted(case.id, case.category, task.model, task.repeat))
            try:
                result = await self._complete(task, key, record)
            except Exception as exc:  # a bug must not lose the rest of the run
                result = _unfinished(task, "error", f"internal error: {exc!r}")
            del self._state.in_flight[slot]
            self._emit(TaskFinished(result))
        finally:
            self._limiter.release_on_behalf_of(slot)

    async def _complete(self, task: Task, key: str, record: dict[str, Any]) -> CaseResult:
        case = task.case
        estimate = estimate_tokens(case.messages, case.params) if self._tpm else 0
        if self._rpm is not None:
            await self._rpm.take()
        if self._tpm is not None:
            await self._tpm.take(estimate)

        def on_retry(notice: RetryNotice) -> None:
            self._emit(RetryScheduled(case.id, task.model, notice.attempt, notice.delay, notice.reason, notice.status))
            if notice.status == 429 and self._aimd.on_rate_limited():
                self._set_limit("rate limited (429)")

        try:
            response, attempts = await self._client.complete(task.model, case.messages, case.params, on_retry)
        except ProviderError as exc:
            return _unfinished(task, "error", str(exc), exc.attempts)
        if self._tpm is not None:
            self._tpm.adjust(response.prompt_tokens + response.completion_tokens - estimate)
        self._cache.put(key, record, response, case.id)
        if self._aimd.on_success():
            self._set_limit("recovering")
        return _scored(task, response, cached=False, attempts=attempts)

    def _set_limit(self, reason: str) -> None:
        self._limiter.total_tokens = self._aimd.limit
        self._emit(ConcurrencyChanged(self._aimd.limit, reason))
