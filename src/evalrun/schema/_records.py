"""The records evalrun writes and other programs read: results.json, test results, progress dicts.

Field names and units here are a contract (``schemas/*.schema.json`` in the repository is the
same contract for programs; the tests check real outputs against it). ``SCHEMA_VERSION`` is the
one version of every document evalrun writes; it changes only when a key changes meaning or goes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ._states import Status, TestOutcome

__all__ = [
    "SCHEMA_VERSION",
    "AssertionResult",
    "CaseResult",
    "CategoryProgress",
    "CategorySummary",
    "LatencySummary",
    "ProgressCounts",
    "ProgressDict",
    "ResultsDocument",
    "RunInfo",
    "Summary",
    "TestCounts",
    "TestRecord",
    "TestResultsDocument",
    "TestSummary",
    "Tokens",
    "not_run_json",
]

SCHEMA_VERSION = 1


class Tokens(TypedDict):
    prompt: int
    completion: int


#: One assertion's verdict on one answer ("pass" is a keyword, hence the functional form).
AssertionResult = TypedDict("AssertionResult", {"type": str, "pass": bool, "score": float, "reason": str})


#: Built once: ``json.dumps`` with an option builds a new encoder on every call.
_encode = json.JSONEncoder(ensure_ascii=False).encode
_text = json.encoder.encode_basestring  # a JSON string literal, written in C


def not_run_json(case_id: str, category: str, model: str, repeat: int) -> str:
    """``CaseResult(case_id, category, model, repeat, Status.NOT_RUN).json``, written from a
    template: a million tasks left over when a run stops are listed in seconds, not a minute
    (tests/test_schemas.py holds the two to the same text)."""
    return (
        f'{{"id": {_text(case_id)}, "category": {_text(category)}, "model": {_text(model)}, "repeat": {repeat}, '
        '"status": "not_run", "score": 0.0, "response": null, "assertions": [], "latency_ms": 0.0, '
        '"tokens": {"prompt": 0, "completion": 0}, "cached": false, "attempts": 0, "error": null, "refusal": null, '
        '"finish_reason": null}'
    )


@dataclass(frozen=True)
class CaseResult:
    """One case x model x repeat, as it ended; ``to_dict`` is its record in results.json."""

    id: str
    category: str
    model: str
    repeat: int
    status: Status
    score: float = 0.0
    response: str | None = None
    assertions: list[AssertionResult] = field(default_factory=list)
    latency_ms: float = 0.0
    tokens: Tokens = field(default_factory=lambda: Tokens(prompt=0, completion=0))
    cached: bool = False
    attempts: int = 0
    error: str | None = None
    #: What the model said instead of answering, when its API says so (OpenAI's ``refusal``).
    refusal: str | None = None
    #: Why the answer ended, in the API's words (``stop``, ``length``: cut at the token limit).
    finish_reason: str | None = None

    @functools.cached_property
    def json(self) -> str:
        """``to_dict`` as JSON text, encoded once for the spool and the event log alike."""
        return _encode(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "model": self.model,
            "repeat": self.repeat,
            "status": self.status,
            "score": self.score,
            "response": self.response,
            "assertions": self.assertions,
            "latency_ms": round(self.latency_ms, 3),
            "tokens": self.tokens,
            "cached": self.cached,
            "attempts": self.attempts,
            "error": self.error,
            "refusal": self.refusal,
            "finish_reason": self.finish_reason,
        }


class CategorySummary(TypedDict):
    total: int
    passed: int
    pass_rate: float | None  # of its cases that ran; None when none did (a run cut short)


class LatencySummary(TypedDict):
    p50: float
    p95: float


class Summary(TypedDict):
    """The ``summary`` of results.json: what the run amounted to."""

    total: int
    passed: int
    failed: int
    errors: int
    not_run: int
    pass_rate: float  # of the cases that ran: passed / (passed + failed + errors)
    wall_seconds: float
    cases_per_second: float
    cache_hits: int
    cache_efficiency: float  # a fraction, 0 to 1
    avg_concurrency: float
    peak_concurrency: int
    retries: int
    tokens: Tokens
    latency_ms: LatencySummary
    by_category: dict[str, CategorySummary]
    truncated: int  # answers cut at the token limit (finish_reason length / max_tokens)
    warnings: list[str]  # what went wrong that the run survived, one line each
    latency_histogram: LatencyBuckets  # what the percentiles come from: shards merge exactly by it


class LatencyBuckets(TypedDict):
    """The latency histogram behind ``latency_ms``: bucket ``i`` holds latencies in
    [growth**i, growth**(i+1)) ms; its midpoint is within 1 % of any of them."""

    growth: float
    buckets: dict[str, int]  # bucket index (as text: JSON keys) -> answered calls


class RunInfo(TypedDict):
    """The ``run`` of results.json: what was run, and how (settings hold no secret)."""

    id: str
    provider: str
    models: list[str]
    suites: list[str]
    started_at: str
    settings: Mapping[str, Any]
    state: str  # how the run ended (a final RunState)
    exit_code: int
    exit_reason: str  # why the exit code is what it is, in one line


class ResultsDocument(TypedDict):
    """results.json as a whole (written streamed: ``cases`` never sits in memory)."""

    schema: int
    run: RunInfo
    summary: Summary
    cases: list[dict[str, Any]]


class _ProgressBase(TypedDict):
    status: str
    progress_percentage: float
    completed: int
    total: int
    message: str
    eta_seconds: float | None
    eta_formatted: str
    elapsed_seconds: float


class CategoryProgress(TypedDict):
    """One category's share of a run so far: its cases (times models and repeats), how many ended,
    and how many passed."""

    total: int
    done: int
    passed: int


class ProgressCounts(TypedDict, total=False):
    """The counters of a progress dict: an eval run's case counters, or a test run's outcome
    counts (``passed``, ``failed``, ``skipped``...), ``in_flight`` and ``tests_per_second``."""

    passed: int
    failed: int
    errors: int
    cache_hits: int
    retries: int
    rate_limited: int
    in_flight: int
    concurrency_limit: int
    cases_per_second: float
    top_error: str  # the most frequent reason of the cases in error so far ("" when none)
    categories: dict[str, CategoryProgress]  # whole counts: a dashboard that joins late is right at once
    skipped: int
    xfailed: int
    xpassed: int
    error: int
    tests_per_second: float


class ProgressDict(_ProgressBase, ProgressCounts):
    """What a progress callback receives, for eval and test runs alike: the common keys, then
    the run kind's counters."""


@dataclass
class TestRecord:
    """One pytest test, as it ended."""

    __test__ = False  # not a pytest test class, whatever its name

    id: str
    outcome: TestOutcome
    duration: float = 0.0
    message: str = ""


class TestCounts(TypedDict):
    """Tests by outcome, in pytest's words."""

    passed: int
    failed: int
    skipped: int
    xfailed: int
    xpassed: int
    error: int


class TestSummary(TestCounts):
    total: int
    in_flight: int
    not_run: int
    duration_seconds: float
    tests_per_second: float


class TestResultsDocument(TypedDict):
    """The ``evalrun test --output`` document, built from the plugin's event stream."""

    schema: int
    kind: str
    state: str
    message: str
    exit_code: int
    pytest_exit_status: int | None
    processes_killed: int  # processes of pytest's group, pytest aside, that evalrun sent SIGTERM or SIGKILL
    replayed: bool
    command: list[str]
    started_at: str
    summary: TestSummary
    stages: dict[str, float | None]
    tests: list[dict[str, Any]]
    in_flight: list[str]
    not_run: list[str]
