"""What a person reads on the console (issue 10): the version, a selection that takes nothing,
and counts in the number they take."""

from __future__ import annotations

import io
import json
import logging
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.display.eval_tables import print_summary
from evalrun.metrics import Counts, RunMetrics
from evalrun.progress import counted
from evalrun.sim import SimProcess


def test_version() -> None:
    done = evalrun(Path.cwd(), "--version")
    assert (done.returncode, done.stdout) == (0, f"evalrun {version('evalrun')}\n")


def test_a_category_that_matches_nothing_lists_the_ones_there_are(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(2, "math"))
    done = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--category", "nosuch")
    assert done.returncode == 2 and sim.stats()["requests"] == 0
    assert done.stderr.strip().endswith("(the suites' categories: math)")


def test_one_task_is_one_task(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(1))
    done = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--progress", "plain")
    assert "evalrun: 1 task on local" in done.stderr
    assert [counted(n, "case") for n in (0, 1, 2, 1200)] == ["0 cases", "1 case", "2 cases", "1,200 cases"]


def test_failures_errors_and_the_reason_for_the_exit_code_are_on_stdout(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    wrong = [{"id": f"w{i}", "prompt": f"What is {i}+{i}?", "expected": "nope", "category": "math"} for i in range(12)]
    write_suite(tmp_path / "s.jsonl", wrong)
    failing = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--output", "r.json")
    assert failing.returncode == 1
    assert "Failed cases (12): the first 10, all in r.json" in failing.stdout and "w0 " in failing.stdout
    assert failing.stdout.rstrip().endswith(
        "evalrun: exit 1: pass rate 0.0% of all 12 cases is below --min-pass-rate 100.0%"
    )

    sim.control(rate_500=1.0)
    erring = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--retries", "0")
    assert erring.returncode == 3
    assert "Errors (12)" in erring.stdout and "HTTP 500" in erring.stdout
    assert erring.stdout.rstrip().endswith("evalrun: exit 3: 12 errors, more than --max-errors 0")


def test_progress_none_prints_only_warnings_and_why_a_run_did_not_pass(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(3))
    args = ("eval", "local", "--suite", "s.jsonl", "--no-cache", "--progress", "none", "--output", "r.json")
    quiet = evalrun(tmp_path, *args)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    write_suite(tmp_path / "s.jsonl", [{"id": "w", "prompt": "What is 1+1?", "expected": "nope"}])
    failing = evalrun(tmp_path, *args)
    assert (failing.returncode, failing.stdout) == (1, "")
    assert failing.stderr == "evalrun: exit 1: pass rate 0.0% of all 1 case is below --min-pass-rate 100.0%\n"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "cache.db").write_bytes(b"not a database" * 100)  # a warning the run survives
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(3))
    warned = evalrun(tmp_path, *[arg for arg in args if arg != "--no-cache"], "--cache-dir", "cache")
    assert warned.returncode == 0 and warned.stdout == ""
    assert warned.stderr.startswith("evalrun: warning: ") and len(warned.stderr.splitlines()) == 1


def test_init_writes_a_project_whose_suggested_command_passes_and_keeps_what_is_there(tmp_path: Path) -> None:
    first = evalrun(tmp_path, "init")
    assert (
        first.returncode == 0 and "wrote config.toml" in first.stdout and "wrote suites/example.jsonl" in first.stdout
    )
    command = first.stdout.split("next: ", 1)[1].split("   ")[0].split()
    assert command[:3] == ["evalrun", "eval", "sim"]
    done = evalrun(tmp_path, *command[1:], "--no-cache", "--output", "r.json")
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["summary"]["passed"] == document["summary"]["total"] >= 6
    from evalrun.assertions import ASSERTION_TYPES

    shown = {a["type"].removeprefix("not-") for case in document["cases"] for a in case["assertions"]}
    assert shown == set(ASSERTION_TYPES)  # the example shows every kind of assertion
    (tmp_path / "config.toml").write_text("# mine\n")
    again = evalrun(tmp_path, "init")
    assert "kept config.toml" in again.stdout and (tmp_path / "config.toml").read_text() == "# mine\n"


def test_plain_lines_keep_coming_while_nothing_finishes() -> None:
    import io

    from evalrun.display.eval_plain import PlainEvalDisplay
    from evalrun.events import RunStarted, Tick
    from evalrun.schema import RunKind

    now = [100.0]
    stream = io.StringIO()
    display = PlainEvalDisplay(stream, interval=5.0, clock=lambda: now[0])
    display(RunStarted("r", RunKind.EVAL, 10, "p", ("m",), 2, {"c": 10}, at=now[0]))
    for second in range(1, 12):  # a hung provider: only the clock moves
        now[0] = 100.0 + second
        display(Tick(at=now[0]))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 + 2 and all(line.startswith("[  0.0%] 0/10 cases") for line in lines[1:])


def test_a_run_ticks_while_its_calls_hang_and_the_log_keeps_no_tick(tmp_path: Path, sim: SimProcess) -> None:
    from helpers import local_settings

    from evalrun import Runner
    from evalrun.events import Tick

    sim.control(rate_timeout=1.0)  # never answers
    events = tmp_path / "e.jsonl"
    settings = local_settings(tmp_path, sim, arithmetic_cases(1), request_timeout=2.5, retries=0, events=str(events))
    seen: list[object] = []

    def watch(event: object) -> None:
        seen.append(event)

    Runner(settings, env={}).subscribe(watch).run_sync()
    ticks = [event for event in seen if isinstance(event, Tick)]
    assert len(ticks) >= 2 and '"tick"' not in events.read_text()
    assert type(seen[-1]).__name__ == "RunFinished"  # the ticker stops with the run


def test_a_fully_cached_rerun_says_its_figures_are_the_original_calls(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(3))
    args = ("eval", "local", "--suite", "s.jsonl", "--cache-dir", "cache")
    first, again = evalrun(tmp_path, *args), evalrun(tmp_path, *args)
    assert "all cached" not in first.stdout
    assert "(of the original calls: all cached)" in again.stdout and "none: all cached" in again.stdout


def test_the_status_line_names_the_top_error_reason() -> None:
    from evalrun.display.eval_plain import progress_line
    from evalrun.events import RunStarted, TaskFinished
    from evalrun.metrics import RunMetrics
    from evalrun.schema import CaseResult, RunKind, Status

    metrics = RunMetrics()
    metrics(RunStarted("r", RunKind.EVAL, 3, "p", ("m",), 2, {"c": 3}))
    for case_id, error in (("a", "ConnectError: refused"), ("b", "HTTP 500: boom"), ("c", "HTTP 500: boom")):
        metrics(TaskFinished(CaseResult(case_id, "c", "m", 0, Status.ERROR, error=error, attempts=1)))
    assert "error 3 (top: HTTP 500: boom)" in progress_line(metrics)


def test_the_library_logs_through_the_evalrun_logger(
    tmp_path: Path, sim: SimProcess, caplog: pytest.LogCaptureFixture
) -> None:
    from helpers import local_settings

    from evalrun import Runner

    settings = local_settings(tmp_path, sim, arithmetic_cases(2))

    def broken(event: object) -> None:
        raise ValueError("observer bug")

    with caplog.at_level(logging.DEBUG, logger="evalrun"):
        Runner(settings, env={}).subscribe(broken).run_sync()
    messages = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "evalrun"]
    assert any(level == "DEBUG" and text.startswith("suites checked in") for level, text in messages)
    assert any(level == "DEBUG" and text.startswith("call: ") for level, text in messages)
    assert any(level == "WARNING" and "observer bug" in text for level, text in messages)


def test_log_level_writes_to_stderr_never_into_json_progress(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(2))
    done = evalrun(
        tmp_path,
        "eval",
        "local",
        "--suite",
        "s.jsonl",
        "--no-cache",
        "--progress",
        "json",
        env={"EVALRUN_LOG_LEVEL": "debug"},
    )
    assert done.returncode == 0 and " evalrun DEBUG call: " in done.stderr
    assert all(json.loads(line) for line in done.stdout.splitlines())  # stdout: JSON lines only
    info = evalrun(tmp_path, "-v", "eval", "local", "--suite", "s.jsonl", "--progress", "none")
    assert " evalrun INFO run " in info.stderr and " DEBUG " not in info.stderr
    assert "started: 2 tasks on local" in info.stderr


def test_user_text_in_the_tables_is_never_read_as_markup(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    case = {"id": "q[/x]", "category": "c[bold]", "prompt": "repeat: [/y] [red]no", "expected": "nope"}
    write_suite(tmp_path / "s.jsonl", [case])
    done = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--min-pass-rate", "0")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "q[/x]" in done.stdout and "c[bold]" in done.stdout and "[red]no" in done.stdout


def test_init_says_in_one_line_what_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "suites").write_text("a file where the folder would go")
    done = evalrun(tmp_path, "init")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == "evalrun: suites/example.jsonl: suites is there and is not a folder\n"
    assert not (tmp_path / "config.toml").exists()  # nothing written before the check


def test_the_live_view_fits_80_columns_in_the_16_standard_colours() -> None:
    import io
    import re

    from rich.console import Console

    from evalrun.display.eval_live import RichEvalDisplay
    from evalrun.events import RunStarted, TaskFinished
    from evalrun.schema import CaseResult, RunKind, Status

    display = RichEvalDisplay(io.StringIO())
    display.metrics(RunStarted("r", RunKind.EVAL, 48, "sim", ("sim-1",), 10, {"math": 48}))

    def screen() -> tuple[str, str]:
        out = io.StringIO()
        Console(file=out, width=80, color_system="standard", force_terminal=True).print(display._render())
        return out.getvalue(), re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())

    for i in range(10):
        display.metrics(TaskFinished(CaseResult(f"c{i}", "math", "sim-1", 0, Status.PASS, response="4", cached=True)))
    running, _ = screen()
    for i in range(10, 48):
        display.metrics(TaskFinished(CaseResult(f"c{i}", "math", "sim-1", 0, Status.PASS, response="4", cached=True)))
    finished, text = screen()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert not any(line.lstrip().startswith(("flight", "tokens")) for line in text.splitlines()), text  # no wrap
    # Standard colours, as a 16-colour terminal shows them: cyan while running, green when done.
    assert "\x1b[36m" in running and "\x1b[32m" in finished


def test_with_repeats_the_end_says_how_often_each_case_passed(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    cases = [
        {"id": "good", "prompt": "What is 1+1?", "expected": "2"},
        {"id": "bad", "prompt": "What is 2+2?", "expected": "5"},
    ]
    write_suite(tmp_path / "s.jsonl", cases)
    done = evalrun(
        tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--repeat", "2", "--summary-md", "s.md"
    )
    assert done.returncode == 1
    assert "Cases that did not pass all 2 repeats (1)" in done.stdout
    assert re.search(r"bad\s+.*sim-1\s+.*0/2", done.stdout) and "good " not in done.stdout.split("repeats (1)")[1]
    assert "| `bad` #1/2 |" in (tmp_path / "s.md").read_text() and "| `bad` #2/2 |" in (tmp_path / "s.md").read_text()


def test_a_run_where_nothing_ran_shows_no_rate_and_no_latency_rather_than_zeros() -> None:
    """A server out of reach: 0.0 % and 'p50 0 ms' would read as figures; they are none."""
    summary = RunMetrics().summary()
    summary["total"] = summary["not_run"] = 48
    out = io.StringIO()
    print_summary(summary, {"math": Counts(total=48)}, {}, stream=out)
    text = out.getvalue()
    assert "- (no case ran)" in text and "- (no answer)" in text and "0.0%" not in text.replace("(0.0% eff", "")
    assert re.search(r"not run .*\n.*math .* 48 .* - ", text, re.S)


def test_httpx_command_line_is_left_out_of_start_up_until_it_is_run() -> None:
    """With uvicorn installed (evalrun[serve]) click is too, and httpx then imports its own command
    line with click, rich and pygments: 60 ms of every start-up."""
    import subprocess
    import sys

    probe = "import evalrun, httpx, sys; print(sorted(m for m in ('click', 'pygments') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
    called = (
        "import evalrun, httpx\ntry:\n    httpx.main(['--help'])\nexcept SystemExit as e:\n    print('exit', e.code)"
    )
    done = subprocess.run([sys.executable, "-c", called], capture_output=True, text=True, timeout=60)
    assert "exit 0" in done.stdout and "Usage" in done.stdout  # the real one, when it is run
