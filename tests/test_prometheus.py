"""Prometheus metrics: real events through RunExporter, read back from its registry and its text file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from helpers import arithmetic_cases, local_settings
from prometheus_client.parser import text_string_to_metric_families

from evalrun import Runner
from evalrun.events import (
    CacheHit,
    CollectError,
    ConcurrencyChanged,
    NotRun,
    RetryResumed,
    RetryScheduled,
    RunFinished,
    RunStarted,
    TaskFinished,
    TasksNotRun,
    TaskStarted,
    TestFinished,
)
from evalrun.reports.prometheus import MetricFamilies, RunExporter, write_textfile
from evalrun.schema import CaseResult, RunKind, RunState, Status, TestOutcome
from evalrun.sim import SimProcess


def started(provider: str = "groq", concurrency: int = 8) -> RunStarted:
    return RunStarted("run-1", RunKind.EVAL, total=10, provider=provider, models=("m",), concurrency=concurrency)


def finished(
    case_id: str,
    status: Status,
    category: str = "math",
    cached: bool = False,
    latency_ms: float = 100.0,
    error: str | None = None,
    attempts: int = 1,
    response: str | None = None,
) -> TaskFinished:
    if response is None and status in (Status.PASS, Status.FAIL):
        response = "4"
    result = CaseResult(
        case_id,
        category,
        "m",
        0,
        status,
        response=response,
        latency_ms=latency_ms,
        cached=cached,
        attempts=0 if cached else attempts,
        error=error,
    )
    return TaskFinished(result)


def value(families: MetricFamilies, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series never touched (prometheus_client says None)."""
    found = families.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def feed(exporter: RunExporter, *events: Any) -> None:
    for event in events:
        exporter(event)


def cases(families: MetricFamilies, status: str, category: str = "math", provider: str = "groq") -> float:
    labels = {"kind": "eval", "status": status, "provider": provider, "model": "m", "category": category}
    return value(families, "evalrun_cases_total", **labels)


def test_cases_are_counted_by_status_and_category_tasks_not_run_each() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    feed(exporter, started(), *(TaskStarted(f"c{i}", "math", "m", 0) for i in range(3)))
    feed(
        exporter,
        finished("c0", Status.PASS),
        finished("c1", Status.FAIL, category="logic"),
        finished("c2", Status.ERROR, error="HTTP 500: boom"),
        CacheHit("c3", "math", "m", 0),
        finished("c3", Status.PASS, cached=True),
        TasksNotRun((NotRun("c4", "math", "m", 0), NotRun("c5", "math", "m", 0), NotRun("c6", "logic", "m", 0))),
        RunFinished(RunState.TIMEOUT),
    )
    assert cases(families, "pass") == 2  # a cache hit is a case too
    assert cases(families, "fail", "logic") == 1 and cases(families, "fail") == 0
    assert cases(families, "error") == 1
    assert cases(families, "not_run") == 2 and cases(families, "not_run", "logic") == 1
    assert value(families, "evalrun_runs_total", kind="eval", state="timeout") == 1


def test_requests_are_counted_by_status_from_answers_retries_and_error_texts() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    feed(exporter, started(), *(TaskStarted(f"c{i}", "math", "m", 0) for i in range(5)))
    feed(
        exporter,
        RetryScheduled("c0", "m", 1, 0.5, "HTTP 429: slow down", 429),
        RetryResumed("c0", "m", 2),
        RetryScheduled("c0", "m", 2, 0.1, "HTTP 429: too many concurrent requests", 429, slot_released=False),
        RetryScheduled("c1", "m", 1, 0.2, "ReadTimeout", None),
        RetryResumed("c1", "m", 2),
        finished("c0", Status.PASS, attempts=3),
        finished("c1", Status.FAIL, attempts=2),
        finished("c2", Status.ERROR, error="HTTP 500: internal server error", attempts=1),
        finished("c3", Status.ERROR, error="ConnectError: connection refused", attempts=1),
        # Answered, then the scorer failed: the call was a 200 all the same.
        finished("c4", Status.ERROR, error="scoring failed: ValueError()", response="4"),
        finished("c5", Status.PASS, cached=True),  # no request at all
        RunFinished(RunState.COMPLETED),
    )

    def requests(status: str) -> float:
        return value(families, "evalrun_requests_total", provider="groq", status=status)

    assert requests("200") == 3  # c0, c1, c4 at their last attempt
    assert requests("429") == 2
    assert requests("500") == 1
    assert requests("none") == 2  # c1's timeout, c3's refused connection
    assert value(families, "evalrun_retries_total", provider="groq") == 3
    assert value(families, "evalrun_rate_limited_total", provider="groq") == 2


def test_cache_hits_and_misses() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    feed(exporter, started(), TaskStarted("a", "math", "m", 0))
    for case_id in ("b", "c"):
        feed(exporter, CacheHit(case_id, "math", "m", 0), finished(case_id, Status.PASS, cached=True))
    feed(exporter, finished("a", Status.PASS), RunFinished(RunState.COMPLETED))
    assert value(families, "evalrun_cache_hits_total", provider="groq") == 2
    assert value(families, "evalrun_cache_misses_total", provider="groq") == 1


def test_counters_of_a_run_are_exported_at_zero_from_its_start() -> None:
    families = MetricFamilies()
    RunExporter(families)(started())
    for name in ("evalrun_retries_total", "evalrun_rate_limited_total", "evalrun_cache_hits_total"):
        assert families.registry.get_sample_value(name, {"provider": "groq"}) == 0.0


def test_in_flight_follows_slots_and_is_back_to_zero_after_the_run_with_calls_outstanding() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)

    def inflight() -> float:
        return value(families, "evalrun_inflight_requests", provider="groq")

    feed(exporter, started(), *(TaskStarted(f"c{i}", "math", "m", 0) for i in range(4)))
    assert inflight() == 4
    exporter(RetryScheduled("c0", "m", 1, 1.0, "HTTP 500: x", 500))  # gives its slot up while it waits
    assert inflight() == 3
    exporter(RetryScheduled("c1", "m", 1, 0.1, "HTTP 429: x", 429, slot_released=False))  # keeps it
    assert inflight() == 3
    exporter(RetryResumed("c0", "m", 2))
    assert inflight() == 4
    feed(exporter, finished("c2", Status.PASS), finished("c3", Status.NOT_RUN, attempts=0))
    assert inflight() == 3  # a task not run took no slot back: the run's end does
    exporter(RunFinished(RunState.INTERRUPTED))
    assert inflight() == 0


def test_two_runs_on_one_provider_share_the_in_flight_gauge_each_taking_back_its_own() -> None:
    families = MetricFamilies()
    first, second, elsewhere = RunExporter(families), RunExporter(families), RunExporter(families)
    feed(first, started(), *(TaskStarted(f"a{i}", "math", "m", 0) for i in range(3)))
    feed(second, started(), *(TaskStarted(f"b{i}", "math", "m", 0) for i in range(2)))
    feed(elsewhere, started("openai"), TaskStarted("x", "math", "m", 0))

    def inflight(provider: str = "groq") -> float:
        return value(families, "evalrun_inflight_requests", provider=provider)

    assert inflight() == 5 and inflight("openai") == 1
    feed(first, finished("a0", Status.PASS), RunFinished(RunState.TIMEOUT))  # a1, a2 still out
    assert inflight() == 2  # the second run's two, untouched
    feed(second, finished("b0", Status.PASS))
    assert inflight() == 1
    second(RunFinished(RunState.COMPLETED))
    assert inflight() == 0 and inflight("openai") == 1
    assert value(families, "evalrun_cache_misses_total", provider="groq") == 5


def test_latency_histogram_counts_answered_calls_only() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    feed(exporter, started(), *(TaskStarted(f"c{i}", "math", "m", 0) for i in range(3)))
    feed(
        exporter,
        finished("c0", Status.PASS, latency_ms=1500),
        finished("c1", Status.FAIL, latency_ms=250),
        finished("c2", Status.ERROR, latency_ms=0, error="HTTP 503: x"),
        finished("c3", Status.PASS, cached=True, latency_ms=9000),  # the recorded call's latency, not this run's
        RunFinished(RunState.COMPLETED),
    )
    labels = {"provider": "groq", "model": "m"}
    assert value(families, "evalrun_request_latency_seconds_count", **labels) == 2
    assert value(families, "evalrun_request_latency_seconds_sum", **labels) == 1.75
    assert value(families, "evalrun_request_latency_seconds_bucket", le="0.25", **labels) == 1
    assert value(families, "evalrun_request_latency_seconds_bucket", le="2.0", **labels) == 2
    assert value(families, "evalrun_request_latency_seconds_bucket", le="120.0", **labels) == 2


def test_active_runs_runs_by_state_and_the_concurrency_limit() -> None:
    families = MetricFamilies()
    first, second = RunExporter(families), RunExporter(families)
    first(started(concurrency=8))
    second(started(concurrency=4))  # the last run to say so sets the provider's limit
    assert value(families, "evalrun_active_runs", kind="eval") == 2
    assert value(families, "evalrun_concurrency_limit", provider="groq") == 4
    second(ConcurrencyChanged(3, "429s"))
    assert value(families, "evalrun_concurrency_limit", provider="groq") == 3
    first(RunFinished(RunState.COMPLETED))
    assert value(families, "evalrun_active_runs", kind="eval") == 1
    second(RunFinished(RunState.ERROR))
    first(RunFinished(RunState.COMPLETED))  # told twice: ignored
    assert value(families, "evalrun_active_runs", kind="eval") == 0
    assert value(families, "evalrun_runs_total", kind="eval", state="completed") == 1
    assert value(families, "evalrun_runs_total", kind="eval", state="error") == 1


def test_events_outside_a_run_are_ignored_and_an_exporter_can_observe_another_run() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    exporter(TaskStarted("early", "math", "m", 0))  # no labels known yet
    assert value(families, "evalrun_cache_misses_total", provider="") == 0
    feed(exporter, started(), RunFinished(RunState.COMPLETED), TaskStarted("late", "math", "m", 0))
    assert value(families, "evalrun_inflight_requests", provider="groq") == 0
    feed(exporter, started("openai"), TaskStarted("next", "math", "m", 0))
    assert value(families, "evalrun_cache_misses_total", provider="openai") == 1
    assert value(families, "evalrun_cache_misses_total", provider="groq") == 0


def test_test_runs_count_each_reported_phase_by_outcome() -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    feed(
        exporter,
        RunStarted("run-t", RunKind.TEST),
        TestFinished("t.py::a", "call", TestOutcome.PASSED, 0.1, ""),
        TestFinished("t.py::b", "call", TestOutcome.FAILED, 0.1, "assert 1 == 2"),
        TestFinished("t.py::c", "setup", TestOutcome.SKIPPED, 0.0, "no GPU"),
        TestFinished("t.py::a", "teardown", TestOutcome.ERROR, 0.0, "fixture broke"),  # as pytest counts it
        CollectError("t_broken.py", "SyntaxError"),
    )
    assert value(families, "evalrun_active_runs", kind="test") == 1
    exporter(RunFinished(RunState.FAILED, exit_code=1))

    def outcome(status: str) -> float:
        labels = {"kind": "test", "status": status, "provider": "", "model": "", "category": ""}
        return value(families, "evalrun_cases_total", **labels)

    assert (outcome("passed"), outcome("failed"), outcome("skipped"), outcome("error")) == (1, 1, 1, 2)
    assert value(families, "evalrun_active_runs", kind="test") == 0
    assert value(families, "evalrun_runs_total", kind="test", state="failed") == 1
    assert families.registry.get_sample_value("evalrun_inflight_requests", {"provider": ""}) is None


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_textfile_holds_every_family_and_is_replaced_whole(tmp_path: Path) -> None:
    families = MetricFamilies()
    exporter = RunExporter(families)
    feed(exporter, started(), TaskStarted("c0", "math", "m", 0), finished("c0", Status.PASS, latency_ms=300))
    path = tmp_path / "evalrun.prom"
    write_textfile(str(path), families)
    with path.open() as before:  # a reader that opened the first file, as a scrape may have
        exporter(RunFinished(RunState.COMPLETED))
        write_textfile(str(path), families)
        old = before.read()
    assert os.listdir(tmp_path) == ["evalrun.prom"]  # no temporary file left behind

    # The first file was replaced by a rename, never rewritten in place: its reader read it whole,
    # as it was before the run finished.
    before_end = samples_of(old)
    assert before_end[("evalrun_active_runs", (("kind", "eval"),))] == 1
    assert not any(name == "evalrun_runs_total" for name, _ in before_end)

    parsed = {family.name: family for family in text_string_to_metric_families(path.read_text())}
    assert {
        "evalrun_cases",
        "evalrun_requests",
        "evalrun_retries",
        "evalrun_rate_limited",
        "evalrun_cache_hits",
        "evalrun_cache_misses",
        "evalrun_inflight_requests",
        "evalrun_concurrency_limit",
        "evalrun_active_runs",
        "evalrun_request_latency_seconds",
        "evalrun_runs",
    } <= set(parsed)
    samples = samples_of(path.read_text())
    assert samples[("evalrun_runs_total", (("kind", "eval"), ("state", "completed")))] == 1
    assert samples[("evalrun_requests_total", (("provider", "groq"), ("status", "200")))] == 1
    assert samples[("evalrun_request_latency_seconds_sum", (("model", "m"), ("provider", "groq")))] == 0.3
    assert samples[("evalrun_active_runs", (("kind", "eval"),))] == 0


# -- end to end, against the simulated provider --------------------------------------------------


def run_exported(tmp_path: Path, sim: SimProcess, n: int, **overrides: Any) -> tuple[MetricFamilies, str]:
    families = MetricFamilies()
    settings = local_settings(tmp_path, sim, arithmetic_cases(n), output=str(tmp_path / "results.json"), **overrides)
    runner = Runner(settings, env={})
    runner.subscribe(RunExporter(families))
    result = runner.run_sync()
    return families, str(result.metrics.provider)


def requests_by_status(families: MetricFamilies, provider: str) -> dict[str, float]:
    [family] = [f for f in families.registry.collect() if f.name == "evalrun_requests"]
    return {
        s.labels["status"]: s.value
        for s in family.samples
        if s.name == "evalrun_requests_total" and s.labels["provider"] == provider
    }


def total_cases(families: MetricFamilies) -> float:
    [family] = [f for f in families.registry.collect() if f.name == "evalrun_cases"]
    return sum(s.value for s in family.samples if s.name == "evalrun_cases_total")


def test_a_real_run_counts_every_case_and_every_request_the_server_saw(tmp_path: Path, sim: SimProcess) -> None:
    families, provider = run_exported(tmp_path, sim, 30, concurrency=6)
    assert provider and total_cases(families) == 30
    assert requests_by_status(families, provider) == {"200": sim.stats()["requests"]} == {"200": 30}
    assert value(families, "evalrun_cache_misses_total", provider=provider) == 30
    assert value(families, "evalrun_request_latency_seconds_count", provider=provider, model="sim-1") == 30
    assert value(families, "evalrun_inflight_requests", provider=provider) == 0
    assert value(families, "evalrun_active_runs", kind="eval") == 0
    assert value(families, "evalrun_runs_total", kind="eval", state="completed") == 1

    sim.reset_stats()
    families, provider = run_exported(tmp_path, sim, 30, concurrency=6)  # the same cases: all from the cache
    assert value(families, "evalrun_cache_hits_total", provider=provider) == 30
    assert requests_by_status(families, provider) == {} and sim.stats()["requests"] == 0


def test_a_faulty_server_sees_the_statuses_the_metrics_count(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(rate_429=0.2, rate_500=0.3, retry_after_ms=1, seed=11)
    families, provider = run_exported(
        tmp_path, sim, 40, concurrency=4, retries=1, retry_base_delay=0.005, max_errors=1000
    )
    seen = {status: float(count) for status, count in sim.stats()["by_status"].items()}
    assert {"200", "429", "500"} <= set(seen)
    assert requests_by_status(families, provider) == seen
    assert total_cases(families) == 40 and value(families, "evalrun_inflight_requests", provider=provider) == 0
    assert value(families, "evalrun_rate_limited_total", provider=provider) <= seen["429"]
