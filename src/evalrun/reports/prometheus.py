"""Prometheus metrics from a run's events: an observer (``RunExporter``) per run, one set of
families (``MetricFamilies``) for as many runs as share a process, and the text file that
node-exporter's textfile collector reads (``write_textfile``).

Everything is derived from the typed events (``evalrun.events``), so an exporter sees what the
``--events`` log and the summary see, and no other part of evalrun knows it exists. Importing
this module imports ``prometheus_client`` (tens of milliseconds): only a command that exports
metrics should import it.

The families, their names and labels, are a contract (dashboards and alerts are written
against them); ``kind`` is ``eval`` or ``test``, ``provider`` the profile a run uses:

``evalrun_cases_total{kind, status, provider, model, category}`` (counter)
    Cases as they end. Eval runs: ``status`` is ``pass``, ``fail``, ``error`` or ``not_run``
    (each task a stopped run leaves over counts, ``TasksNotRun`` included). Test runs: the
    outcome of each phase pytest reports (``passed``, ``failed``, ``skipped``, ``xfailed``,
    ``xpassed``, ``error``: a call, or a setup or teardown that did not pass; a file that could
    not be collected is one ``error``), as pytest's own summary line counts them; ``provider``,
    ``model`` and ``category`` are empty.
``evalrun_requests_total{provider, status}`` (counter)
    HTTP attempts by status code as text (``"200"``, ``"429"``, ``"500"``...; ``"none"`` for an
    attempt that got no HTTP answer: a timeout, a refused connection). Every answered call was
    a 200 at its last attempt; every retry says the status of the attempt it retries; a case in
    error says its last attempt's status in its error text (``HTTP 500: ...``).
``evalrun_retries_total{provider}``, ``evalrun_rate_limited_total{provider}`` (counters)
    Retries scheduled, and those of them that answered a 429.
``evalrun_cache_hits_total{provider}``, ``evalrun_cache_misses_total{provider}`` (counters)
    Tasks answered from the cache, and tasks that called the provider.
``evalrun_inflight_requests{provider}`` (gauge)
    Calls holding a send slot now, over every run on the provider in this process.
``evalrun_concurrency_limit{provider}`` (gauge)
    The limit of calls in flight the last run to say so set (it moves with 429s).
``evalrun_active_runs{kind}`` (gauge)
    Runs started and not finished.
``evalrun_request_latency_seconds{provider, model}`` (histogram)
    Latency of the calls that were answered (cache hits take none), from 50 ms to 2 minutes.
``evalrun_runs_total{kind, state}`` (counter)
    Runs as they end, by final state (``completed``, ``failed``, ``error``, ``timeout``,
    ``interrupted``).

``prometheus_client`` also exports a ``*_created`` sample (a Unix time) beside each counter and
histogram series: its standard behaviour, left as it is.
"""

from __future__ import annotations

import re
from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from ..events import (
    CacheHit,
    CollectError,
    ConcurrencyChanged,
    Event,
    RetryResumed,
    RetryScheduled,
    RunFinished,
    RunStarted,
    TaskFinished,
    TasksNotRun,
    TaskStarted,
    TestFinished,
)
from ..schema import CaseResult, RunKind, Status

__all__ = ["LATENCY_BUCKETS", "MetricFamilies", "RunExporter", "write_textfile"]

#: Upper bounds, in seconds, of ``evalrun_request_latency_seconds``' buckets (``+Inf`` is added):
#: LLM calls take from tens of milliseconds (a small model, a short answer) to minutes (a long
#: completion from a large one), so the buckets span that range, about doubling each time.
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

#: The status code in a failed call's error text (``providers/http.py`` writes ``HTTP 503: ...``).
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")
_NO_ANSWER = "none"  # the status of an attempt that got no HTTP answer
_ANSWERED = frozenset({Status.PASS, Status.FAIL})


class MetricFamilies:
    """Every family evalrun exports, registered in one CollectorRegistry (a fresh one by default; the server keeps
    one for its lifetime).

    A registry of its own, not prometheus_client's global one: two sets of families (two tests, a
    library user's process with metrics of its own) never clash over a name. Any number of
    ``RunExporter`` objects may update one set, from as many threads: each series is thread-safe.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        into = self.registry
        self.cases = Counter(
            "evalrun_cases_total",
            "Cases (eval runs) and test phases (test runs) as they end, by status.",
            ("kind", "status", "provider", "model", "category"),
            registry=into,
        )
        self.requests = Counter(
            "evalrun_requests_total",
            'HTTP attempts by status code ("none": no HTTP answer).',
            ("provider", "status"),
            registry=into,
        )
        self.retries = Counter("evalrun_retries_total", "Retries scheduled.", ("provider",), registry=into)
        self.rate_limited = Counter(
            "evalrun_rate_limited_total", "Retries scheduled after a 429.", ("provider",), registry=into
        )
        self.cache_hits = Counter(
            "evalrun_cache_hits_total", "Tasks answered from the cache.", ("provider",), registry=into
        )
        self.cache_misses = Counter(
            "evalrun_cache_misses_total", "Tasks that called the provider.", ("provider",), registry=into
        )
        self.inflight = Gauge(
            "evalrun_inflight_requests", "Calls holding a send slot, over every run.", ("provider",), registry=into
        )
        self.concurrency_limit = Gauge(
            "evalrun_concurrency_limit", "The limit of calls in flight.", ("provider",), registry=into
        )
        self.active_runs = Gauge("evalrun_active_runs", "Runs started and not finished.", ("kind",), registry=into)
        self.latency = Histogram(
            "evalrun_request_latency_seconds",
            "Latency of answered calls (cache hits excluded).",
            ("provider", "model"),
            registry=into,
            buckets=LATENCY_BUCKETS,
        )
        self.runs = Counter("evalrun_runs_total", "Runs by final state.", ("kind", "state"), registry=into)


class RunExporter:
    """The observer of one run: updates `families` with the labels of that run (provider from RunStarted).

    Called for every event of runs of 10,000+ cases, so an event costs a dict lookup and, at
    most, a few series updates: the labelled series (children) are looked up once each and kept.
    Events before ``RunStarted`` and after ``RunFinished`` are ignored (the labels are not known,
    or the run is over); after ``RunFinished``, the next ``RunStarted`` begins another run.

    The in-flight gauge of a provider is shared by every run on it, so an exporter adds and
    subtracts only its own run's calls, and counts them: at ``RunFinished`` it takes back exactly
    what its run still held (calls cancelled by a timeout or a signal end with the run, unseen).
    """

    # The series of the run's own labels, bound at RunStarted (the eval ones for eval runs only).
    _active: Gauge
    _retries: Counter
    _rate_limited: Counter
    _hits: Counter
    _misses: Counter
    _inflight_gauge: Gauge
    _limit: Gauge

    def __init__(self, families: MetricFamilies) -> None:
        self.families = families
        self._handlers = _BEFORE_START
        self._kind = ""
        self._provider = ""
        self._inflight = 0  # this run's part of the in-flight gauge
        # Series of this run, by the labels that vary within it.
        self._cases: dict[tuple[str, str, str], Counter] = {}  # (status, model, category)
        self._requests: dict[str, Counter] = {}  # status code as text
        self._latency: dict[str, Histogram] = {}  # model

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    # -- the run --------------------------------------------------------------------------------

    def _on_run_started(self, event: RunStarted) -> None:
        families = self.families
        self._kind, self._provider, self._inflight = str(event.kind), event.provider, 0
        self._cases, self._requests, self._latency = {}, {}, {}
        self._active = families.active_runs.labels(self._kind)
        self._active.inc()
        if event.kind == RunKind.EVAL:
            # Bound now: a counter at 0 from the start, so that rate() sees its first increase.
            provider = event.provider
            self._retries = families.retries.labels(provider)
            self._rate_limited = families.rate_limited.labels(provider)
            self._hits = families.cache_hits.labels(provider)
            self._misses = families.cache_misses.labels(provider)
            self._inflight_gauge = families.inflight.labels(provider)
            self._limit = families.concurrency_limit.labels(provider)
            self._limit.set(event.concurrency)
            self._handlers = _EVAL_HANDLERS
        else:
            self._handlers = _TEST_HANDLERS

    def _on_run_finished(self, event: RunFinished) -> None:
        if self._inflight:  # what the run still held: cancelled calls end with it
            self._inflight_gauge.dec(self._inflight)
            self._inflight = 0
        self._active.dec()
        self.families.runs.labels(self._kind, str(event.state)).inc()
        self._handlers = _BEFORE_START

    # -- eval runs ------------------------------------------------------------------------------

    def _on_task_started(self, event: TaskStarted) -> None:
        self._misses.inc()
        self._inflight_gauge.inc()
        self._inflight += 1

    def _on_cache_hit(self, event: CacheHit) -> None:
        self._hits.inc()

    def _on_retry(self, event: RetryScheduled) -> None:
        self._retries.inc()
        status = event.status
        if status == 429:
            self._rate_limited.inc()
        self._request(_NO_ANSWER if status is None else str(status)).inc()
        if event.slot_released:  # waiting, not in flight, until it resumes
            self._inflight_gauge.dec()
            self._inflight -= 1

    def _on_resumed(self, event: RetryResumed) -> None:
        self._inflight_gauge.inc()
        self._inflight += 1

    def _on_concurrency(self, event: ConcurrencyChanged) -> None:
        self._limit.set(event.limit)

    def _on_task_finished(self, event: TaskFinished) -> None:
        result = event.result
        status = result.status
        self._case(status, result.model, result.category).inc()
        if status == Status.NOT_RUN or result.cached:  # no call of its own ended here
            return
        self._inflight_gauge.dec()
        self._inflight -= 1
        if _answered(result):
            self._request("200").inc()  # the last attempt; the ones before were retries, counted then
            latency = self._latency.get(result.model)
            if latency is None:
                latency = self._latency[result.model] = self.families.latency.labels(self._provider, result.model)
            latency.observe(result.latency_ms / 1000)
        elif result.attempts:  # 0: evalrun failed before any attempt was on record
            found = _HTTP_STATUS.search(result.error or "")
            self._request(found.group(1) if found else _NO_ANSWER).inc()

    def _on_not_run(self, event: TasksNotRun) -> None:
        # Thousands of tasks an event, in a handful of (category, model) pairs: one update a pair.
        pairs = Tally((task.category, task.model) for task in event.tasks)
        for (category, model), count in pairs.items():
            self._case(Status.NOT_RUN, model, category).inc(count)

    # -- test runs ------------------------------------------------------------------------------

    def _on_test_finished(self, event: TestFinished) -> None:
        self._case(event.outcome, "", "").inc()

    def _on_collect_error(self, event: CollectError) -> None:
        self._case("error", "", "").inc()

    # -- series ---------------------------------------------------------------------------------

    def _case(self, status: str, model: str, category: str) -> Counter:
        key = (status, model, category)
        series = self._cases.get(key)
        if series is None:
            provider = self._provider
            series = self._cases[key] = self.families.cases.labels(self._kind, status, provider, model, category)
        return series

    def _request(self, status: str) -> Counter:
        series = self._requests.get(status)
        if series is None:
            series = self._requests[status] = self.families.requests.labels(self._provider, status)
        return series


def _answered(result: CaseResult) -> bool:
    """The call got an answer: a case scored, or one whose scoring failed after its answer came
    (``response`` is kept); a case in error without a response got none."""
    return result.status in _ANSWERED or result.response is not None


_BEFORE_START: dict[type, Callable[[RunExporter, Any], None]] = {RunStarted: RunExporter._on_run_started}

_EVAL_HANDLERS: dict[type, Callable[[RunExporter, Any], None]] = {
    RunFinished: RunExporter._on_run_finished,
    TaskStarted: RunExporter._on_task_started,
    CacheHit: RunExporter._on_cache_hit,
    RetryScheduled: RunExporter._on_retry,
    RetryResumed: RunExporter._on_resumed,
    ConcurrencyChanged: RunExporter._on_concurrency,
    TaskFinished: RunExporter._on_task_finished,
    TasksNotRun: RunExporter._on_not_run,
}

_TEST_HANDLERS: dict[type, Callable[[RunExporter, Any], None]] = {
    RunFinished: RunExporter._on_run_finished,
    TestFinished: RunExporter._on_test_finished,
    CollectError: RunExporter._on_collect_error,
}


def write_textfile(path: str, families: MetricFamilies) -> None:
    """The families in Prometheus' text format, for node-exporter's textfile collector: written atomically
    (prometheus_client.write_to_textfile does a temp file + rename).

    The collector reads the file whenever it is scraped, so it must never see one half written:
    the temporary file is in the same directory (a rename within one file system), and the
    collector only reads names ending in ``.prom``.
    """
    write_to_textfile(path, families.registry)
