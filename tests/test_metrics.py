from __future__ import annotations

import io
import random
from pathlib import Path

from helpers import arithmetic_cases, local_settings

from evalrun import Runner
from evalrun.display.eval_plain import PlainEvalDisplay
from evalrun.events import RetryResumed, RetryScheduled, RunFinished, RunStarted, TaskFinished, TaskStarted
from evalrun.metrics import LatencyHistogram, RunMetrics
from evalrun.progress import figures, format_eta
from evalrun.schema import CaseResult, RunKind, RunState, Status
from evalrun.sim import SimProcess


def test_histogram_percentiles_are_within_the_stated_error() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(4, 1) for _ in range(20_000)]
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)
    ordered = sorted(values)
    for fraction in (0.5, 0.95, 0.99):
        exact = ordered[int(fraction * len(ordered)) - 1]
        assert abs(histogram.percentile(fraction) - exact) / exact <= LatencyHistogram.relative_error + 1e-3
    assert len(histogram.buckets) < 1000  # bounded, whatever the number of values


def test_eta_format() -> None:
    assert format_eta(0) == "00:00:00"
    assert format_eta(3723.4) == "01:02:03"
    assert format_eta(None) == "--:--:--"


def test_one_progress_computation_for_every_kind_of_run() -> None:
    halfway = figures(done=50, total=200, elapsed=12.0, working=10.0, finished=False)
    assert (halfway.rate, halfway.eta, halfway.percentage) == (5.0, 30.0, 25.0)
    assert figures(0, 10, 1.0, 0.0, finished=False).eta is None  # no rate yet: no guess
    assert figures(3, 10, 1.0, 1.0, finished=True).eta == 0.0  # a stopped run has nothing left to wait for
    assert figures(0, 0, 1.0, 0.0, finished=True).percentage == 100.0  # nothing to do, and done
    assert figures(0, 0, 1.0, 0.0, finished=False).percentage == 0.0  # still collecting


def _result(i: int, status: Status = Status.PASS) -> TaskFinished:
    return TaskFinished(
        CaseResult(id=f"c{i}", category="x", model="m", repeat=0, status=status, cached=True, latency_ms=5)
    )


def test_plain_display_prints_at_each_quarter_and_on_a_timer_without_ansi() -> None:
    now = [0.0]
    stream = io.StringIO()
    display = PlainEvalDisplay(stream, interval=5.0, clock=lambda: now[0])
    display(RunStarted("r", RunKind.EVAL, 100, "sim", ("m",), 4, {"x": 100}, at=0.0))
    for i in range(100):
        now[0] = i * 0.01
        display(_result(i, Status.FAIL if i == 3 else Status.PASS))
    display(RunFinished(RunState.COMPLETED, at=1.0))
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines[1:-1]] == ["[ 25.0%", "[ 50.0%", "[ 75.0%", "[100.0%"]
    assert "pass 99 fail 1 error 0" in lines[-2]
    assert lines[-1] == "evalrun: completed"
    assert "\x1b" not in stream.getvalue()
    stream.truncate(0)
    now[0] = 20.0  # a quiet stretch: the timer adds a line
    display(_result(100))
    assert stream.getvalue().count("\n") == 1


def test_rich_displays_render_a_whole_run(tmp_path: Path, sim: SimProcess) -> None:
    from evalrun.display.eval_live import RichEvalDisplay
    from evalrun.display.tests_live import RichTestDisplay
    from evalrun.settings import load_test_settings
    from evalrun.testrun.runner import TestRunner

    stream = io.StringIO()
    display = RichEvalDisplay(stream)
    cases = arithmetic_cases(12)
    cases[0]["expected"] = "wrong"
    Runner(local_settings(tmp_path, sim, cases), env={}).subscribe(display).run_sync()
    display.close()
    screen = stream.getvalue()
    assert "completed" in screen and "12/12" in screen and "100.0%" in screen and "math" in screen

    (tmp_path / "test_x.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    assert 0\n")
    stream = io.StringIO()
    test_display = RichTestDisplay(stream)
    TestRunner(load_test_settings(env={}, workdir=str(tmp_path))).subscribe(test_display).run()
    screen = stream.getvalue()
    assert "failed" in screen and "2/2" in screen and "test_x.py::test_b" in screen


def test_a_call_waiting_out_a_retry_without_its_slot_is_not_in_flight() -> None:
    metrics = RunMetrics()
    metrics(RunStarted("r", RunKind.EVAL, 2, "p", ("m",), 2, {"c": 2}, at=0.0))
    metrics(TaskStarted("a", "c", "m", 0, at=0.0))
    metrics(TaskStarted("b", "c", "m", 0, at=0.0))
    metrics(RetryScheduled("a", "m", 1, 1.0, "HTTP 429", 429, slot_released=True, at=0.1))
    metrics(RetryScheduled("b", "m", 1, 0.1, "HTTP 429", 429, slot_released=False, at=0.1))
    assert metrics.inflight == 1 and metrics.retries == 2 and metrics.rate_limited == 2
    metrics(RetryResumed("a", "m", 2, at=1.1))
    assert metrics.inflight == 2 and metrics.peak_inflight == 2
