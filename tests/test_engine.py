"""The engine end to end through the Python API, against the simulated provider on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import arithmetic_cases, local_settings

from evalrun import Runner, RunResult
from evalrun.cache import cache_key, key_record
from evalrun.events import ConcurrencyChanged, Event, PaceChanged
from evalrun.sim import SimProcess


def run(
    tmp_path: Path,
    sim: SimProcess,
    cases: list[dict[str, Any]] | None = None,
    observer: Any = None,
    progress: Any = None,
    **overrides: Any,
) -> RunResult:
    chosen = cases if cases is not None else arithmetic_cases(20)
    output = str(tmp_path / "results.json")
    settings = local_settings(tmp_path, sim, chosen, retry_base_delay=0.005, output=output, **overrides)
    runner = Runner(settings, env={})
    if observer is not None:
        runner.subscribe(observer)
    if progress is not None:
        runner.on_progress(progress, interval=0)
    return runner.run_sync()


def test_concurrency_never_exceeds_the_limit_as_the_server_sees_it(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=40)
    result = run(tmp_path, sim, arithmetic_cases(60), concurrency=7)
    stats = sim.stats()
    assert stats["requests"] == 60
    # The property is "never more than 7"; "several at once" shows the limit is not a lock. Exactly
    # 7 is what an idle machine sees, not what a busy core promises.
    assert 2 <= stats["peak_inflight"] <= 7
    assert 2 <= result.summary["peak_concurrency"] <= 7
    assert result.summary["avg_concurrency"] <= 7
    assert result.summary["passed"] == 60 and result.exit_code == 0


def test_second_run_is_served_from_cache_even_at_another_concurrency(tmp_path: Path, sim: SimProcess) -> None:
    first = run(tmp_path, sim, concurrency=4)
    assert first.summary["cache_hits"] == 0 and sim.stats()["requests"] == 20
    sim.reset_stats()
    second = run(tmp_path, sim, concurrency=9, retries=1, request_timeout=7)
    assert second.summary["cache_hits"] == 20 and second.summary["cache_efficiency"] == 1.0
    assert sim.stats()["requests"] == 0
    assert [c["status"] for c in second.cases()] == ["pass"] * 20
    assert all(c["cached"] and c["attempts"] == 0 for c in second.cases())


def test_cache_key_changes_with_everything_that_changes_the_answer() -> None:
    provider = {"name": "groq", "base_url": "https://x/v1"}
    base: dict[str, Any] = {
        "model": "m",
        "category": "c",
        "messages": [{"role": "user", "content": "hi"}],
        "params": {"temperature": 0},
    }
    key = cache_key(key_record(provider, **base))
    for change in (
        {"model": "m2"},
        {"params": {"temperature": 0.7}},
        {"params": {"temperature": 0, "seed": 1}},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"category": "d"},
    ):
        assert cache_key(key_record(provider, **{**base, **change})) != key, change
    for other in ({"name": "groq", "base_url": "https://y/v1"}, {"name": "openai", "base_url": "https://x/v1"}):
        assert cache_key(key_record(other, **base)) != key, other
    assert cache_key(key_record(provider, **base, repeat=1)) != cache_key(key_record(provider, **base, repeat=2))
    assert cache_key(key_record(provider, **{**base, "params": {"temperature": 0}})) == key  # canonical, stable


def test_cache_key_is_the_one_earlier_versions_wrote() -> None:
    """A warm cache stays warm across this version: the record and its hash are unchanged."""
    messages = [{"role": "user", "content": "hi"}]
    record = key_record({"name": "sim", "base_url": "sim://evalrun"}, "sim-1", messages, {}, "x")
    assert record == {
        "v": 1,
        "provider": {"name": "sim", "base_url": "sim://evalrun"},
        "model": "sim-1",
        "messages": [{"role": "user", "content": "hi"}],
        "params": {},
        "category": "x",
    }
    assert cache_key(record) == "e7a84ae9d57d0a073e8ad9a316bbd128d83b35f126a4c80a859faca279775ce4"


def test_no_cache_neither_reads_nor_writes_and_refresh_only_writes(tmp_path: Path, sim: SimProcess) -> None:
    run(tmp_path, sim, cache="off")
    run(tmp_path, sim, cache="off")
    assert sim.stats()["requests"] == 40
    refreshed = run(tmp_path, sim, cache="refresh")
    assert refreshed.summary["cache_hits"] == 0 and sim.stats()["requests"] == 60
    assert run(tmp_path, sim).summary["cache_hits"] == 20 and sim.stats()["requests"] == 60


def test_errors_are_never_cached(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(rate_500=1.0)
    failed = run(tmp_path, sim, retries=0, max_errors=100)
    assert failed.summary["errors"] == 20 and failed.exit_code == 1
    sim.control(rate_500=0.0)
    healed = run(tmp_path, sim)
    assert healed.summary["cache_hits"] == 0 and healed.summary["passed"] == 20


def test_repeat_runs_each_case_k_times_with_distinct_keys(tmp_path: Path, sim: SimProcess) -> None:
    result = run(tmp_path, sim, arithmetic_cases(5), repeat=3)
    assert result.summary["total"] == 15 and sim.stats()["requests"] == 15
    assert sorted(c["repeat"] for c in result.cases()) == [0] * 5 + [1] * 5 + [2] * 5


def test_several_models_are_counted_per_model(tmp_path: Path, sim: SimProcess) -> None:
    result = run(tmp_path, sim, arithmetic_cases(5), models=("a", "b"))
    assert result.summary["total"] == 10
    assert {m: c.passed for m, c in result.metrics.by_model.items()} == {"a": 5, "b": 5}


def _limits_seen(tmp_path: Path, sim: SimProcess, cases: int, **overrides: Any) -> tuple[RunResult, list[int]]:
    changes: list[int] = []

    def observe(event: Event) -> None:
        if isinstance(event, ConcurrencyChanged):
            changes.append(event.limit)

    return run(tmp_path, sim, arithmetic_cases(cases), observer=observe, **overrides), changes


def test_a_server_capped_in_flight_brings_the_limit_down_and_no_case_is_lost(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(max_inflight=6, latency_ms=40)
    result, changes = _limits_seen(tmp_path, sim, 150, concurrency=16, retries=0)
    assert result.summary["passed"] == 150  # retries=0: the 429s were never a failure's to spend
    assert changes and min(changes) <= 8 and max(changes) <= 16
    assert result.metrics.rate_limited > 0


def test_random_429s_that_name_a_wait_leave_the_limit_alone(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(rate_429=0.2, retry_after_ms=5, latency_ms=5, seed=1)
    result, changes = _limits_seen(tmp_path, sim, 200, concurrency=16, retries=0)
    assert result.summary["passed"] == 200 and result.metrics.rate_limited > 20
    assert all(limit >= 13 for limit in changes)  # 80 % of 16


def test_fault_run_ends_with_correct_scores_and_counts_retries(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(rate_429=0.2, rate_500=0.05, retry_after_ms=2, seed=7)
    cases = arithmetic_cases(500)
    cases[0]["expected"] = "wrong"  # one deliberate failure: scores must still be computed, not guessed
    result = run(tmp_path, sim, cases, concurrency=50, retries=20)
    summary = result.summary
    assert (summary["passed"], summary["failed"], summary["errors"]) == (499, 1, 0)
    stats = sim.stats()
    assert summary["retries"] == stats["requests"] - 500 > 50
    assert stats["by_status"]["429"] > stats["by_status"]["500"] > 0
    assert result.metrics.rate_limited == stats["by_status"]["429"]
    retried = [c for c in result.cases() if c["attempts"] > 1]
    assert retried and all(c["status"] == "pass" for c in retried)


def test_run_timeout_stops_cleanly_and_lists_what_did_not_run(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=150)
    result = run(tmp_path, sim, arithmetic_cases(40), concurrency=5, timeout=1.0)  # about 6 waves of 8
    assert result.state == "timeout" and int(result.exit_code) == 124
    summary = result.summary
    assert 0 < summary["passed"] < 40  # some finished, some did not (how many: the machine's speed)
    assert summary["passed"] + summary["not_run"] == 40
    document = json.loads((tmp_path / "results.json").read_text())
    statuses = [c["status"] for c in document["cases"]]
    assert len(statuses) == 40 and statuses.count("not_run") == summary["not_run"]
    rerun = run(tmp_path, sim, arithmetic_cases(40), concurrency=5)
    assert rerun.summary["cache_hits"] == summary["passed"]  # finished work was kept: a resume


def test_a_warm_run_still_hears_its_timeout(tmp_path: Path, sim: SimProcess) -> None:
    """Cache hits never wait on anything: the engine must still let the run's deadline in."""
    sim.control(latency_ms=0)
    cases = arithmetic_cases(1000)
    assert run(tmp_path, sim, cases, concurrency=100).summary["passed"] == 1000
    warm = run(tmp_path, sim, cases, timeout=0.005)
    assert warm.state == "timeout" and warm.summary["not_run"] > 0
    assert warm.summary["cache_hits"] + warm.summary["not_run"] == 1000


def test_progress_callback_receives_the_documented_dict(tmp_path: Path, sim: SimProcess) -> None:
    seen: list[dict[str, Any]] = []
    run(tmp_path, sim, progress=seen.append)
    assert {"status", "progress_percentage", "completed", "total", "message", "eta_seconds", "eta_formatted"} <= set(
        seen[0]
    )
    assert seen[0]["status"] == "starting" and seen[0]["completed"] == 0
    assert seen[-1]["status"] == "completed" and seen[-1]["progress_percentage"] == 100.0
    assert seen[-1]["completed"] == seen[-1]["total"] == 20 and seen[-1]["eta_formatted"] == "00:00:00"
    done = [s["completed"] for s in seen]
    assert done == sorted(done)


def test_rpm_bucket_paces_requests(tmp_path: Path, sim: SimProcess) -> None:
    result = run(tmp_path, sim, arithmetic_cases(40), rpm=1200, concurrency=40)  # 20 a second, burst of 20
    assert result.summary["passed"] == 40
    assert result.summary["wall_seconds"] >= 0.9  # 20 at once, then 20 more at 20 a second


def test_cache_ttl_expires_entries(tmp_path: Path, sim: SimProcess) -> None:
    import time

    run(tmp_path, sim, arithmetic_cases(3), cache_ttl=0.2)
    time.sleep(0.3)
    assert run(tmp_path, sim, arithmetic_cases(3)).summary["cache_hits"] == 0


def test_header_pacing_keeps_a_run_inside_the_servers_budget(tmp_path: Path, sim: SimProcess) -> None:
    """Unpaced, 10 calls of 20 ms in flight would send 500 a second into a budget of 40 a second."""
    sim.control(rpm=2400, latency_ms=20)
    paces: list[float | None] = []

    def observe(event: Event) -> None:
        if isinstance(event, PaceChanged):
            paces.append(event.requests_per_minute)

    result = run(tmp_path, sim, arithmetic_cases(80), observer=observe, concurrency=10)
    stats = sim.stats()
    assert result.summary["passed"] == 80 and paces == [2400]
    assert stats["rate_limited_after_first_response"] == 0 and stats["by_status"] == {"200": 80}


def test_a_report_that_cannot_be_written_costs_only_itself(tmp_path: Path, sim: SimProcess) -> None:
    from evalrun.reports.results import write_reports

    result = run(tmp_path, sim, arithmetic_cases(3))
    junit, markdown = tmp_path / "late" / "junit.xml", tmp_path / "late" / "summary.md"
    with pytest.raises(OSError):  # the disk that filled up since the run began, say
        write_reports(
            result._spool, result.run, result.summary, output="/proc/x.json", junit=str(junit), summary_md=str(markdown)
        )
    assert "testsuites" in junit.read_text() and "math" in markdown.read_text()


def test_a_results_file_the_run_failed_to_write_is_not_recorded_as_its_own(tmp_path: Path, sim: SimProcess) -> None:
    """The file at --output is then an earlier run's: the history must not keep it as this one's."""
    from evalrun.events import RunStarted
    from evalrun.history import RunHistory

    earlier = run(tmp_path, sim, arithmetic_cases(2))

    def block_the_write(event: Event) -> None:  # the disk that filled up, say
        if isinstance(event, RunStarted):
            (tmp_path / "results.json.tmp").mkdir()

    with pytest.raises(OSError):
        run(tmp_path, sim, arithmetic_cases(2), observer=block_the_write)
    runs, _ = RunHistory(tmp_path / "runs").list()
    failed = next(row for row in runs if row["id"] != earlier.run["id"])
    assert failed["state"] == "completed"  # recorded all the same
    assert not (tmp_path / "runs" / failed["id"] / "results.json").exists()
    assert json.loads((tmp_path / "runs" / failed["id"] / "run.json").read_text())["summary"]["passed"] == 2


def test_random_429s_among_failures_do_not_cut_concurrency(tmp_path: Path, sim: SimProcess) -> None:
    """Told 429s are a majority of what succeeded but not of what was sent: no sign of overload."""
    sim.control(rate_429=0.3, rate_500=0.3, retry_after_ms=20, latency_ms=20, seed=3)
    changes: list[Event] = []

    def observe(event: Event) -> None:
        if isinstance(event, ConcurrencyChanged):
            changes.append(event)

    result = run(tmp_path, sim, arithmetic_cases(150), observer=observe, concurrency=20, retries=20)
    assert result.summary["passed"] == 150 and changes == []
