"""One vocabulary of states and messages (issue 10): the metrics' status, told the same way by the
progress dict, the plain lines, the ``state_changed`` events of ``--events`` and ``--progress
json``, and the state results.json ends in."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import arithmetic_cases, evalrun, local_config, local_settings, write_suite

from evalrun import Runner
from evalrun.events import RetryScheduled, RunStarted, StateChanged, TaskFinished, TaskStarted
from evalrun.metrics import RunMetrics
from evalrun.schema import CaseResult, ProgressDict, RunKind, Status
from evalrun.sim import SimProcess


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _started(metrics: RunMetrics, clock: Clock) -> None:
    metrics(RunStarted("r", RunKind.EVAL, 50, "groq", ("m",), 4, {"reasoning": 40, "math": 10}, at=clock.now))


def test_a_run_reads_starting_until_its_first_task_then_names_the_category_it_evaluates() -> None:
    clock = Clock()
    metrics = RunMetrics(clock=clock)
    _started(metrics, clock)
    assert metrics.status == ("starting", "starting: 50 tasks on groq")
    metrics(TaskStarted("a", "reasoning", "m", 0, at=clock.now))
    for n in range(12):
        metrics(TaskFinished(CaseResult(f"r{n}", "reasoning", "m", 0, Status.PASS), at=clock.now))
    assert metrics.status == ("running", "evaluating category reasoning: 12/40")
    assert metrics.progress()["status"] == "running"
    assert metrics.progress()["message"] == "evaluating category reasoning: 12/40"


def test_a_wait_for_a_429_reads_backing_off_for_the_rate_limit_and_counts_down() -> None:
    clock = Clock()
    metrics = RunMetrics(clock=clock)
    _started(metrics, clock)
    metrics(TaskStarted("a", "math", "m", 0, at=clock.now))
    metrics(RetryScheduled("a", "m", 1, 4.0, "HTTP 429", 429, at=clock.now))
    assert metrics.status == ("backing off", "waiting 4 s for the rate limit")
    clock.now += 2.5
    assert metrics.status == ("backing off", "waiting 2 s for the rate limit")
    metrics(RetryScheduled("b", "m", 1, 6.0, "HTTP 503", 503, at=clock.now))  # ends last: its reason
    assert metrics.status == ("backing off", "waiting 6 s to retry")
    clock.now += 7
    assert metrics.status == ("running", "evaluating category math: 0/10")


def test_every_output_tells_the_same_states_and_a_run_of_errors_ends_in_error(tmp_path: Path, sim: SimProcess) -> None:
    """Every call fails (500, no retry): the state is ``error`` and exit 3, in the events, the
    progress dict, results.json and the plain lines alike, after ``starting`` and ``running``."""
    sim.control(rate_500=1.0, latency_ms=0)
    events, output = tmp_path / "events.jsonl", tmp_path / "results.json"
    seen: list[ProgressDict] = []
    told: list[StateChanged] = []
    settings = local_settings(
        tmp_path, sim, arithmetic_cases(6), retries=0, output=str(output), events=str(events), cache="off"
    )
    runner = Runner(settings, env={}).on_progress(seen.append, interval=0)
    runner.subscribe(lambda event: told.append(event) if isinstance(event, StateChanged) else None)
    result = runner.run_sync()
    assert result.state == "error" and result.exit_code == 3
    assert [(e.state, e.message) for e in told[:2]] == [
        ("starting", "starting: 6 tasks on local"),
        ("running", "evaluating category math: 0/6"),
    ]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    logged = [(r["state"], r["message"]) for r in records if r["event"] == "state_changed"]
    assert logged == [(e.state, e.message) for e in told]
    assert records[-1]["state"] == "error" and records[-1]["message"] == "6 errors, more than --max-errors 0"
    assert seen[0]["status"] == "starting" and seen[-1]["status"] == "error"
    run = json.loads(output.read_text())["run"]
    assert run["state"] == "error" and run["exit_reason"] == "exit 3: 6 errors, more than --max-errors 0"


def test_the_plain_lines_and_progress_json_speak_the_same_words(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=0)
    suite = write_suite(tmp_path / "s.jsonl", arithmetic_cases(8, category="reasoning"))
    config = local_config(tmp_path / "config.toml", sim)
    base = ["eval", "local", "--config", str(config), "--suite", str(suite), "--no-cache"]
    plain = evalrun(tmp_path, *base, "--progress", "plain")
    lines = plain.stderr.splitlines()
    assert "running (evaluating category reasoning: " in lines[1]
    [last] = [line for line in lines if line.startswith("[100.0%]")]
    assert "running (all 8 tasks ended: writing the results)" in last  # not a category's 8/8
    as_json = evalrun(tmp_path, *base, "--progress", "json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    told = [(r["state"], r["message"]) for r in records if r["event"] == "state_changed"]
    assert told[0] == ("starting", "starting: 8 tasks on local") and told[1][0] == "running"
    assert records[-2]["event"] == "run_finished" and records[-2]["state"] == "completed"
