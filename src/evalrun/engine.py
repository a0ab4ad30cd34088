"""The engine: tasks in, events out.

Tasks (case x model x repeat) are pulled lazily from an iterator, a batch at a time, and looked up
in the cache together, without holding a slot. A hit is scored at once; only a miss waits for a
send slot of the model client, then calls the provider in the shared task group; the client paces,
retries and adapts the number of slots (see ``evalrun.client``). A call waiting out a retry gives
its slot up, so live calls are bounded separately, at ``LIVE_PER_SLOT`` times the concurrency:
the number of coroutines depends on the concurrency, never on the suite.

Every answer goes through the scorer, guarded: a scorer that fails makes its case an error. The
engine knows nothing of displays, settings, stores or HTTP: it speaks to a ``ModelClient``, a
``ResponseCache`` and a ``Scorer``, and emits events.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from .cache.key import cache_key, key_record, task_key
from .cache.responses import ResponseCache
from .client import ModelClient, acquire_promptly
from .events import CacheHit, NotRun, Observer, TaskFinished, TasksNotRun, TaskStarted
from .plan import Task
from .providers.base import ChatResponse, ProviderError
from .schema import CaseResult, RunState, Status
from .scoring import ModelRequest, Scorer, Verdict

__all__ = ["Engine", "EngineOptions", "Outcome"]

_LOOKUP_BATCH = 128  # tasks looked up in the cache together: one store round trip for many keys
_NOT_RUN_CHUNK = 4096  # tasks left over by a stop, told in one event
_NO_RECORD: dict[str, Any] = {}
#: Spawned, unfinished tasks per send slot: calls on the wire, calls waiting out a 429's delay
#: without a slot, and a judge's scoring. Enough that a 429 storm (a fifth of attempts told to
#: wait 1 s) keeps every slot busy; a bound, so that coroutines never grow with the suite.
LIVE_PER_SLOT = 4


@dataclass(frozen=True)
class EngineOptions:
    concurrency: int = 10
    repeat_count: int = 1
    timeout: float | None = None  # the seconds the engine has
    #: The run's timeout as the user gave it, for the message: checking the suites took a share.
    stated_timeout: float | None = None


@dataclass(frozen=True)
class Outcome:
    """How the engine's part of a run ended, and when (``time.monotonic()``, the clock of events)."""

    state: RunState
    message: str
    ended_at: float


@dataclass(slots=True)  # one per task: the cheapest dataclass to make
class _Lookup:
    task: Task
    key: str
    record: dict[str, Any]


@dataclass
class _Ledger:
    """How the run stands, and what it has taken from the source and not yet finished."""

    state: RunState = RunState.COMPLETED
    message: str = ""
    #: Tasks taken from the source and not finished: reported as not run if the run stops.
    unfinished: dict[object, Task] = field(default_factory=dict)
    batch: deque[_Lookup] = field(default_factory=deque)


def _not_answered(task: Task, status: Status, error: str | None = None, attempts: int = 0) -> CaseResult:
    case = task.case
    return CaseResult(case.id, case.category, task.model, task.repeat, status, error=error, attempts=attempts)


class Engine:
    """Runs tasks against one provider, one cache and one scorer, emitting events as it goes."""

    def __init__(
        self,
        client: ModelClient,
        identity: Mapping[str, str],
        cache: ResponseCache,
        scorer: Scorer,
        options: EngineOptions,
        emit: Observer,
    ) -> None:
        """``identity`` is the provider's, as the cache key records it."""
        self._client = client
        self._identity = identity
        self._cache = cache
        self._scorer = scorer
        self._options = options
        self._emit = emit
        self._live = anyio.CapacityLimiter(LIVE_PER_SLOT * options.concurrency)
        # Scoring that never calls a model is done where the answer is, at once; a scorer that may
        # call one (a judge) is spawned for cache hits too, so that a warm cache does not judge one
        # case at a time. Every spawned task holds a place of ``_live`` until it is done.
        self._inline_scoring = not getattr(scorer, "calls_models", True)
        self._scope: anyio.CancelScope | None = None
        self._run = _Ledger()

    @property
    def stopped(self) -> bool:
        """Whether the run was stopped (timeout, signal): the tasks still to come will not run."""
        return self._run.state != RunState.COMPLETED

    def cancel(self, state: RunState = RunState.INTERRUPTED, message: str = "") -> None:
        """Stop the run from outside (Ctrl-C): in-flight calls are cancelled, the rest is not run."""
        if self._run.state == RunState.COMPLETED:
            self._run.state, self._run.message = state, message
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, tasks: Iterable[Task]) -> Outcome:
        """Run every task; every one ends in exactly one ``TaskFinished``, or, if the run stopped
        before taking it up, in a ``TasksNotRun``."""
        source, run = iter(tasks), self._run
        with anyio.CancelScope() as scope:
            self._scope = scope
            if run.state != RunState.COMPLETED:  # cancelled before it began: nothing is sent
                scope.cancel()
            if self._options.timeout is not None:
                scope.deadline = anyio.current_time() + self._options.timeout
            try:
                async with anyio.create_task_group() as calls:
                    await self._feed(source, calls)
            except Exception as exc:  # a task group's ExceptionGroup (a builtin only from 3.11)
                raise _first_error(exc) from None
        if scope.cancelled_caught and run.state == RunState.COMPLETED:
            run.state = RunState.TIMEOUT
            run.message = f"run timeout of {self._options.stated_timeout or self._options.timeout:g} s reached"
        not_run = self._emit_not_run(source)
        if not_run and not run.message:
            run.message = f"tasks not run: {not_run}"
        return Outcome(run.state, run.message, time.monotonic())

    def _emit_not_run(self, source: Iterator[Task]) -> int:
        """Every task that will not run: those taken up (a ``TaskFinished`` each), then the rest of
        the source, streamed (it may be millions) and told in bulk (``TasksNotRun``)."""
        run = self._run
        taken = [*run.unfinished.values(), *(lookup.task for lookup in run.batch)]
        for task in taken:
            self._emit(TaskFinished(_not_answered(task, Status.NOT_RUN)))
        count = len(taken)
        left = (NotRun(task.case.id, task.case.category, task.model, task.repeat) for task in source)
        while chunk := tuple(itertools.islice(left, _NOT_RUN_CHUNK)):
            self._emit(TasksNotRun(chunk))
            count += len(chunk)
        return count

    async def _feed(self, source: Iterator[Task], calls: anyio.abc.TaskGroup) -> None:
        run, repeat_count, identity = self._run, self._options.repeat_count, self._identity
        keyed = self._cache.active
        while True:
            batch = itertools.islice(source, _LOOKUP_BATCH)
            if keyed:
                run.batch.extend(_Lookup(task, *task_key(identity, task, repeat_count)) for task in batch)
            else:  # no cache: no key to hash
                run.batch.extend(_Lookup(task, "", _NO_RECORD) for task in batch)
            if not run.batch:
                return
            await anyio.lowlevel.checkpoint()  # a warm run never waits: let timers and signals in
            answers = await self._cache.lookup_many([lookup.key for lookup in run.batch])
            for answer in answers:
                lookup = run.batch.popleft()
                token, task = object(), lookup.task
                run.unfinished[token] = task  # still listed if the run stops before it ends
                if answer is not None:
                    self._emit(CacheHit(task.case.id, task.case.category, task.model, task.repeat))
                    if self._inline_scoring:
                        self._done(token, await self._scored(task, answer, cached=True, attempts=0))
                        continue
                await acquire_promptly(self._live, token)
                if answer is not None:
                    calls.start_soon(self._judge_hit, token, task, answer)
                else:
                    await self._client.acquire(token)
                    calls.start_soon(self._call, lookup, token)

    async def _call(self, lookup: _Lookup, token: object) -> None:
        """A miss: the call (the client releases its slot), the scoring, the result."""
        task = lookup.task
        case = task.case
        try:
            self._emit(TaskStarted(case.id, case.category, task.model, task.repeat))
            try:
                answer, attempts = await self._client.complete(token, task.model, case.messages, case.params, case.id)
                self._cache.keep(lookup.key, lookup.record, answer, case.id)
            except ProviderError as exc:
                self._done(token, _not_answered(task, Status.ERROR, str(exc), exc.attempts))
                return
            except Exception as exc:  # a bug must not lose the rest of the run
                self._done(token, _not_answered(task, Status.ERROR, f"internal error: {exc!r}"))
                return
            self._done(token, await self._scored(task, answer, cached=False, attempts=attempts))
        finally:
            self._live.release_on_behalf_of(token)

    async def _judge_hit(self, token: object, task: Task, answer: ChatResponse) -> None:
        """A cache hit for a scorer that calls models: scored in a task of its own."""
        try:
            self._done(token, await self._scored(task, answer, cached=True, attempts=0))
        finally:
            self._live.release_on_behalf_of(token)

    async def _scored(self, task: Task, answer: ChatResponse, cached: bool, attempts: int) -> CaseResult:
        """The result of an answer: scored, guarded (a failing scorer makes its case an error)."""
        case = task.case

        async def generate(request: ModelRequest) -> ChatResponse:  # the scorer's calls, told as this case's
            return await self.generate(request, label=case.id)

        status, error = Status.FAIL, None
        try:
            verdict = await self._scorer.score(case, answer, generate)
            status = Status.PASS if verdict.passed else Status.FAIL
        except Exception as exc:  # a scorer's failure is its case's, never the run's
            reason = str(exc) if isinstance(exc, ProviderError) else repr(exc)
            status, error, verdict = Status.ERROR, f"scoring failed: {reason}", Verdict(False, 0.0, [])
        return CaseResult(
            case.id,
            case.category,
            task.model,
            task.repeat,
            status,
            score=verdict.score,
            response=answer.text,  # kept even when scoring failed: the answer was paid for
            assertions=verdict.assertions,
            latency_ms=answer.latency_ms,
            tokens={"prompt": answer.prompt_tokens, "completion": answer.completion_tokens},
            cached=cached,
            attempts=attempts,
            error=error,
            refusal=answer.refusal,
            finish_reason=answer.finish_reason,
        )

    def _done(self, token: object, result: CaseResult) -> None:
        del self._run.unfinished[token]
        self._emit(TaskFinished(result))

    async def generate(self, request: ModelRequest, label: str = "") -> ChatResponse:
        """A model call for a scorer: from the cache, or through a slot and the rate buckets.
        ``label`` names the call in retry events (the case being scored)."""
        record = key_record(self._identity, request.model, request.messages, request.params, request.category)
        key = cache_key(record)
        [cached] = await self._cache.lookup_many([key])
        if cached is not None:
            return cached
        holder = object()
        await self._client.acquire(holder)
        label = label or request.category
        answer, _ = await self._client.complete(holder, request.model, request.messages, request.params, label)
        self._cache.keep(key, record, answer, request.category)
        return answer


def _first_error(error: BaseException) -> BaseException:
    """A call task's error as itself, not wrapped in the task group's: the caller reads an
    ``OSError`` (the disk under the case spool filled up) as one line; the calls that failed
    alongside it failed the same way."""
    grouped: tuple[BaseException, ...] = getattr(error, "exceptions", ())
    return _first_error(grouped[0]) if grouped else error
