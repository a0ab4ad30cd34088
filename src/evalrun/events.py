"""Typed events: the only thing a run tells the outside world, for eval and test runs alike.

Displays, the ``--events`` log, progress callbacks and the metrics behind a summary are all
observers of these. Every run starts with ``RunStarted`` and ends with ``RunFinished``; between
them, an eval run's engine emits the task events and a test run's runner turns each line of the
pytest plugin into a test event. A new observer needs no change anywhere else.

``at`` is ``time.monotonic()`` when the event happened; the JSON-lines log turns it into Unix time.
``schemas/events.schema.json`` in the repository describes the log, one record per event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

from .schema import CaseResult, RunKind, RunState, Status, TestOutcome, not_run_json

__all__ = [
    "CacheHit",
    "CollectError",
    "CollectionFinished",
    "ConcurrencyChanged",
    "Event",
    "Fanout",
    "NotRun",
    "Observer",
    "PaceChanged",
    "RetryResumed",
    "RetryScheduled",
    "RunFinished",
    "RunStarted",
    "RunWarning",
    "SessionFinished",
    "SessionStarted",
    "StateChanged",
    "TaskFinished",
    "TaskStarted",
    "TasksNotRun",
    "TestFinished",
    "TestStarted",
    "TestsReplayed",
    "Tick",
    "event_name",
    "redacted",
]


def _now() -> float:
    return time.monotonic()


# -- every run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    """A run began. Eval runs say what they run; test runs learn their total from collection."""

    run_id: str
    kind: RunKind
    total: int = 0
    provider: str = ""
    models: tuple[str, ...] = ()
    concurrency: int = 0
    categories: Mapping[str, int] = field(default_factory=dict)
    pid: int | None = None  # test runs: pytest's process
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunFinished:
    """A run ended; ``exit_code`` is what the command exits with. Nothing follows it."""

    state: RunState
    message: str = ""
    exit_code: int = 0
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class StateChanged:
    """What a run is doing changed: its state (``starting``, ``running``, ``backing off``), or the
    category it evaluates. ``message`` is the status line every display shows ("evaluating
    category reasoning: 12/40", "waiting 4 s for the rate limit"): the same words for programs
    that read the event log. A new category is told at most once a second."""

    state: RunState
    message: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunWarning:
    """Something went wrong that the run survives (a broken cache, a failing observer): said once,
    in one line, and the run goes on."""

    message: str
    at: float = field(default_factory=_now)


# -- eval runs: the engine ---------------------------------------------------------------------


@dataclass(frozen=True)
class _TaskEvent:
    case_id: str
    category: str
    model: str
    repeat: int
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskStarted(_TaskEvent):
    """A cache miss took a slot and is about to call the provider."""


@dataclass(frozen=True)
class CacheHit(_TaskEvent):
    """A task answered from the cache, without a slot or a call."""


@dataclass(frozen=True)
class RetryScheduled:
    """A call failed in a way worth retrying; the retry waits ``delay`` seconds."""

    case_id: str
    model: str
    attempt: int
    delay: float
    reason: str
    status: int | None
    #: The call gave its send slot up while it waits (``RetryResumed`` follows when it has one
    #: again); a call refused by a 429 that named no wait keeps its slot.
    slot_released: bool = True
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class RetryResumed:
    """A call that gave its slot up to wait out a retry has one again and makes ``attempt``."""

    case_id: str
    model: str
    attempt: int
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ConcurrencyChanged:
    """The limit of calls in flight changed: 429s showed the server refusing that many, or recovery."""

    limit: int
    reason: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class PaceChanged:
    """The server's rate headers set (or changed) the pace of sends, per minute (``None``: not stated)."""

    requests_per_minute: float | None
    tokens_per_minute: float | None
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TaskFinished:
    """A task ended, whatever way: its result record, exactly as in results.json."""

    result: CaseResult
    at: float = field(default_factory=_now)


class NotRun(NamedTuple):
    """A task the run will never run: what names it in its ``not_run`` record."""

    case_id: str
    category: str
    model: str
    repeat: int

    def result(self) -> CaseResult:
        return CaseResult(self.case_id, self.category, self.model, self.repeat, Status.NOT_RUN)

    def json(self) -> str:
        """``self.result().json``, from a template (``not_run_json``)."""
        return not_run_json(*self)


@dataclass(frozen=True)
class TasksNotRun:
    """Tasks left over when the run stopped (timeout, signal), in bulk: each one says what a
    ``TaskFinished`` with status ``not_run`` would, and the ``--events`` log writes it as one. One
    event for thousands: a run stopped early on a million-case suite lists the rest in seconds.
    (Tasks taken up before the stop end in a ``TaskFinished`` of their own, not run or not.)"""

    tasks: tuple[NotRun, ...]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class Tick:
    """A second of a run went by. Sent while an eval run runs, whatever else happens, so that
    displays and progress callbacks keep time when nothing finishes (a hung provider). Never
    written to the ``--events`` log: it says nothing a timestamp does not."""

    at: float = field(default_factory=_now)


# -- test runs: the pytest plugin's stream -----------------------------------------------------


@dataclass(frozen=True)
class SessionStarted:
    """pytest is up and collecting."""

    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class CollectionFinished:
    count: int
    ids: tuple[str, ...]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class CollectError:
    """A file or module could not be collected (it counts as one test in error)."""

    id: str
    message: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TestStarted:
    __test__ = False  # not a pytest test class, whatever its name

    id: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TestFinished:
    """A test phase reported: the call, or a setup/teardown phase that did not pass."""

    __test__ = False  # not a pytest test class, whatever its name

    id: str
    when: str
    outcome: TestOutcome
    duration: float
    message: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class SessionFinished:
    exit_status: int
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class TestsReplayed:
    """``evalrun test --cache``: nothing changed, the last result stands (its total and counts)."""

    __test__ = False  # not a pytest test class, whatever its name

    recorded_at: str
    total: int
    counts: Mapping[TestOutcome, int]
    at: float = field(default_factory=_now)


Event = (
    RunStarted
    | RunFinished
    | StateChanged
    | RunWarning
    | TaskStarted
    | CacheHit
    | RetryScheduled
    | RetryResumed
    | ConcurrencyChanged
    | PaceChanged
    | TaskFinished
    | TasksNotRun
    | Tick
    | SessionStarted
    | CollectionFinished
    | CollectError
    | TestStarted
    | TestFinished
    | SessionFinished
    | TestsReplayed
)


class Observer(Protocol):
    """Anything that watches a run: called with every event, in order, on the run's thread."""

    def __call__(self, event: Event) -> None: ...


class Fanout:
    """One observer made of several, each called in turn with every event.

    The ``essential`` ones (the metrics and the spool behind the reports) are the run's own: an
    error there is evalrun's bug and stops the run. The ``guarded`` ones (the event log, displays,
    subscribers, progress callbacks) are extras: one that raises is dropped with a ``RunWarning``
    to the others, and the run and its results go on without it. With ``scrub``, every event's
    free text is scrubbed (``redacted``) before anyone sees it, the warnings of its own included.
    """

    def __init__(
        self,
        essential: Iterable[Observer],
        guarded: Iterable[Observer] = (),
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self._essential = tuple(essential)
        self._guarded = list(guarded)
        self._scrub = scrub

    def __call__(self, event: Event) -> None:
        if self._scrub is not None:
            event = redacted(event, self._scrub)
        for observer in self._essential:
            observer(event)
        failed = []
        for observer in self._guarded:
            try:
                observer(event)
            except Exception as error:  # whatever an extra does wrong, the run goes on
                failed.append((observer, error))
        for observer, _ in failed:  # all gone before any warning: one may fail on it too
            self._guarded.remove(observer)
        for observer, problem in failed:
            name = getattr(observer, "__qualname__", type(observer).__qualname__)
            self(RunWarning(f"{name} failed on {event_name(event)} ({problem!r}); it is no longer called"))


def redacted(event: Event, scrub: Callable[[str], str]) -> Event:
    """``event`` with every free text that a server, an exception or a scorer wrote passed through
    ``scrub`` (which masks the API key): the one place such text leaves the run."""
    if isinstance(event, TaskFinished) and event.result.error:
        error = scrub(event.result.error)
        return event if error == event.result.error else replace(event, result=replace(event.result, error=error))
    if isinstance(event, RetryScheduled):
        reason = scrub(event.reason)
        return event if reason == event.reason else replace(event, reason=reason)
    if isinstance(event, (RunFinished, RunWarning)) and event.message:
        message = scrub(event.message)
        return event if message == event.message else replace(event, message=message)
    return event


def event_name(event: Event) -> str:
    """The stable snake_case name of an event, as written to ``--events`` logs."""
    return _NAMES[type(event)]


_NAMES: dict[type, str] = {
    RunStarted: "run_started",
    RunFinished: "run_finished",
    StateChanged: "state_changed",
    RunWarning: "run_warning",
    TaskStarted: "task_started",
    CacheHit: "cache_hit",
    RetryScheduled: "retry_scheduled",
    RetryResumed: "retry_resumed",
    ConcurrencyChanged: "concurrency_changed",
    PaceChanged: "pace_changed",
    TaskFinished: "task_finished",
    TasksNotRun: "task_finished",  # in the log, one task_finished a task: what each one stands for
    Tick: "tick",  # never in the log
    SessionStarted: "session_started",
    CollectionFinished: "collection_finished",
    CollectError: "collect_error",
    TestStarted: "test_started",
    TestFinished: "test_finished",
    SessionFinished: "session_finished",
    TestsReplayed: "tests_replayed",
}
