"""A run survives what goes wrong around it (issue 9): signals at any stage, a timeout reached
while the suites are checked, an observer or a scorer that raises, an error that quotes the key.

Real runs against the simulated provider on 127.0.0.1, real signals sent to a real process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import arithmetic_cases, local_config, local_settings, write_suite

from evalrun import Runner
from evalrun.scoring import AssertionScorer
from evalrun.settings import Settings, load_settings
from evalrun.sim import SimProcess
from evalrun.sim.suites import arithmetic_cases as many_cases

SECRET = "sk-SECRET-123456"


def _spawn(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    return subprocess.Popen(
        [sys.executable, "-m", "evalrun", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=clean,
    )


def _reading(process: subprocess.Popen[str], path: Path, deadline: float) -> bool:
    """Whether ``process`` has ``path`` open (it is checking that suite), waiting up to ``deadline``."""
    target = str(path.resolve())
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if any(
                os.readlink(f"/proc/{process.pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{process.pid}/fd")
            ):
                return True
        except OSError:  # a descriptor closed while it was being read
            pass
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def big_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300,000 cases: checking them takes seconds, the window a signal must land in."""
    return write_suite(tmp_path_factory.mktemp("big") / "big.jsonl", list(many_cases(300_000)))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc (Linux) to see the suite being read")
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_suites_are_checked_stops_before_any_request(
    tmp_path: Path, sim: SimProcess, big_suite: Path, signum: int, code: int
) -> None:
    local_config(tmp_path / "config.toml", sim)
    process = _spawn(tmp_path, "eval", "local", "--suite", str(big_suite), "--no-cache", "--output", "r.json")
    try:
        assert _reading(process, big_suite, time.monotonic() + 30), "the suite was never opened"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and signal.Signals(signum).name in stderr
    assert sim.stats()["requests"] == 0


def test_the_timeout_counts_the_suite_check(tmp_path: Path, sim: SimProcess, big_suite: Path) -> None:
    local_config(tmp_path / "config.toml", sim)
    process = _spawn(tmp_path, "eval", "local", "--suite", str(big_suite), "--no-cache", "--timeout", "0.3")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 124, stderr
    assert "Traceback" not in stderr and "timeout" in stderr
    assert sim.stats()["requests"] == 0  # 300,000 cases cannot be checked in 0.3 s: no run began


def test_sigterm_mid_run_exits_143_with_what_finished_written(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=200)
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(60))
    args = ["eval", "local", "--suite", "suite.jsonl", "--no-cache", "--concurrency", "5"]
    process = _spawn(tmp_path, *args, "--output", "r.json", "--events", "events.jsonl")
    events = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 30
    while (not events.exists() or events.read_text().count('"task_finished"') < 5) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 143, stderr
    document = json.loads((tmp_path / "r.json").read_text())
    summary = document["summary"]
    assert summary["passed"] >= 5 and summary["passed"] + summary["not_run"] == 60
    assert len(document["cases"]) == 60 and "SIGTERM" in stderr
    # Nothing is sent after the signal: what the server saw is what finished plus what was in flight.
    assert sim.stats()["requests"] <= summary["passed"] + 5


class _Raising(AssertionScorer):
    """Assertions, then a failure that quotes the key, as a careless plug-in might."""

    async def score(self, case: Any, answer: Any, generate: Any) -> Any:
        raise RuntimeError(f"cannot score with key {SECRET}")


def _keyed_settings(tmp_path: Path, sim: SimProcess, cases: int, **overrides: Any) -> Settings:
    """A run of ``cases`` on the simulated provider whose profile's key, in T_KEY, is ``SECRET``."""
    return load_settings(
        local_config(tmp_path / "config.toml", sim, api_key_env="T_KEY"),
        env={"T_KEY": SECRET},
        provider="local",
        suites=(str(write_suite(tmp_path / "suite.jsonl", arithmetic_cases(cases))),),
        cache_dir=str(tmp_path / "cache"),
        **overrides,
    )


def test_an_error_that_quotes_the_key_is_scrubbed_from_every_output(tmp_path: Path, sim: SimProcess) -> None:
    files = {name: str(tmp_path / name) for name in ("results.json", "junit.xml", "summary.md", "events.jsonl")}
    settings = _keyed_settings(
        tmp_path, sim, 3, output=files["results.json"], junit=files["junit.xml"], summary_md=files["summary.md"],
        events=files["events.jsonl"], max_errors=10,
    )  # fmt: skip
    result = Runner(settings, env={"T_KEY": SECRET}, scorer=_Raising()).run_sync()
    errors = [case["error"] for case in result.cases()]
    assert errors == ["scoring failed: RuntimeError('cannot score with key ***')"] * 3
    for path in files.values():
        assert SECRET not in Path(path).read_text(), path


@pytest.mark.parametrize("kind", ["subscriber", "progress callback", "two subscribers"])
def test_an_observer_that_raises_is_dropped_and_the_run_goes_on(tmp_path: Path, sim: SimProcess, kind: str) -> None:
    output = tmp_path / "results.json"
    settings = _keyed_settings(tmp_path, sim, 10, output=str(output), events=str(tmp_path / "e.jsonl"))
    calls: list[object] = []

    def broken(event: Any) -> None:  # an observer and a progress callback alike
        calls.append(event)
        raise ValueError(f"observer bug, key {SECRET}")

    runner = Runner(settings, env={"T_KEY": SECRET})
    runner.subscribe(broken) if kind != "progress callback" else runner.on_progress(broken, interval=0)
    if kind == "two subscribers":  # the second fails on the first one's warning too
        runner.subscribe(lambda event: broken(event))
    result = runner.run_sync()
    failing = 2 if kind == "two subscribers" else 1
    assert result.summary["passed"] == 10 and result.exit_code == 0 and len(calls) == failing
    warnings = json.loads(output.read_text())["summary"]["warnings"]
    assert len(warnings) == failing and all("observer bug, key ***" in w and "no longer called" in w for w in warnings)
    assert '"run_warning"' in (tmp_path / "e.jsonl").read_text() and SECRET not in (tmp_path / "e.jsonl").read_text()


def test_a_scorer_that_raises_makes_its_cases_errors_on_misses_and_on_cache_hits(
    tmp_path: Path, sim: SimProcess
) -> None:
    for run in ("miss", "hit"):
        settings = local_settings(
            tmp_path, sim, arithmetic_cases(4), output=str(tmp_path / f"{run}.json"), max_errors=10
        )
        result = Runner(settings, env={}, scorer=_Raising()).run_sync()
        cases = list(result.cases())
        assert [case["status"] for case in cases] == ["error"] * 4, run
        assert all(case["cached"] == (run == "hit") and case["response"] for case in cases), run
    assert sim.stats()["requests"] == 4  # the second run was all cache hits


def test_a_lone_surrogate_in_an_answer_keeps_every_report_readable(tmp_path: Path) -> None:
    from evalrun.eventlog import JsonLinesLog
    from evalrun.events import TaskFinished
    from evalrun.metrics import RunMetrics
    from evalrun.reports import CaseSpool, write_reports
    from evalrun.schema import CaseResult, RunInfo, Status

    answer = "4 \ud800 and \x1b[31m"
    result = CaseResult("c1", "math", "m", 0, Status.FAIL, response=answer, error=None, attempts=1)
    spool = CaseSpool()
    with open(tmp_path / "events.jsonl", "w", encoding="utf-8", errors="backslashreplace") as log:
        for observer in (spool, JsonLinesLog(log)):
            observer(TaskFinished(result))
    run: RunInfo = {
        "id": "r",
        "provider": "p",
        "models": ["m"],
        "suites": [],
        "started_at": "",
        "settings": {},
        "state": "completed",
        "exit_code": 0,
        "exit_reason": "",
    }
    paths = {name: str(tmp_path / name) for name in ("results.json", "summary.md", "junit.xml")}
    write_reports(spool, run, RunMetrics().summary(), output=paths["results.json"], junit=paths["junit.xml"],
                  summary_md=paths["summary.md"])  # fmt: skip
    assert json.loads(Path(paths["results.json"]).read_text())["cases"][0]["response"] == answer
    assert json.loads((tmp_path / "events.jsonl").read_text())["result"]["response"] == answer
    assert Path(paths["summary.md"]).read_text(encoding="utf-8").startswith("## evalrun")


def test_a_million_slots_for_twenty_cases_cost_nothing(tmp_path: Path, sim: SimProcess) -> None:
    settings = local_settings(tmp_path, sim, arithmetic_cases(20), concurrency=1_000_000)
    result = Runner(settings, env={}).run_sync()  # was a MemoryError: one client per slot, made up front
    assert result.summary["passed"] == 20 and sim.stats()["requests"] == 20


def test_sigterm_to_the_whole_group_with_the_bundled_simulator_exits_143(tmp_path: Path) -> None:
    """What CI and ``docker stop`` do: the signal reaches the simulator's process too."""
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(2000))  # 10 s or more: it is stopped long before
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    args = ["eval", "sim", "--suite", "suite.jsonl", "--no-cache", "--concurrency", "2", "--output", "r.json"]
    process = subprocess.Popen(
        [sys.executable, "-m", "evalrun", *args, "--events", "events.jsonl"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=clean, start_new_session=True,
    )  # fmt: skip
    events = tmp_path / "events.jsonl"
    deadline = time.monotonic() + 30
    while (not events.exists() or '"task_finished"' not in events.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["passed"] >= 1


def test_cases_left_by_a_timeout_are_listed_by_the_ids_and_categories_a_full_read_gives(
    tmp_path: Path, sim: SimProcess
) -> None:
    from evalrun.suite import load_suites

    sim.control(latency_ms=400)
    cases = [{"prompt": f"What is {i}+{i}?", "expected": str(2 * i), "category": f"c{i % 3}"} for i in range(30)]
    settings = local_settings(tmp_path, sim, cases, concurrency=2, timeout=0.6, output=str(tmp_path / "r.json"))
    result = Runner(settings, env={}).run_sync()  # no ids: each is derived from the case's content
    listed = {(case["id"], case["category"]) for case in result.cases()}
    full = {(case.id, case.category) for case in load_suites([str(tmp_path / "suite.jsonl")])}
    assert result.summary["not_run"] >= 20 and listed == full
