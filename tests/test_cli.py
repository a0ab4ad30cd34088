"""The command line as CI uses it: a real process, no terminal, exit codes, files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.sim import SimProcess

CONTRACT_SUMMARY = {
    "total",
    "passed",
    "failed",
    "errors",
    "not_run",
    "pass_rate",
    "wall_seconds",
    "cases_per_second",
    "cache_hits",
    "cache_efficiency",
    "avg_concurrency",
    "peak_concurrency",
    "retries",
    "tokens",
    "latency_ms",
    "by_category",
    "truncated",
    "warnings",
    "latency_histogram",
}
CONTRACT_CASE = {
    "id",
    "category",
    "model",
    "repeat",
    "status",
    "score",
    "response",
    "assertions",
    "latency_ms",
    "tokens",
    "cached",
    "attempts",
    "error",
    "refusal",
    "finish_reason",
}


def eval_local(
    tmp_path: Path,
    sim: SimProcess,
    cases: list[dict[str, Any]],
    *args: str,
    env: dict[str, str] | None = None,
    **provider: Any,
) -> subprocess.CompletedProcess[str]:
    local_config(tmp_path / "config.toml", sim, **provider)
    write_suite(tmp_path / "suite.jsonl", cases)
    return evalrun(tmp_path, "eval", "local", "--suite", "suite.jsonl", "--cache-dir", "cache", *args, env=env)


def test_exit_0_and_plain_output_without_a_terminal(tmp_path: Path, sim: SimProcess) -> None:
    done = eval_local(tmp_path, sim, arithmetic_cases(12), "--output", "results.json")
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout + done.stderr  # no ANSI codes in CI logs
    assert "[100.0%] 12/12 cases" in done.stderr
    assert "evalrun: completed" in done.stderr
    assert "pass rate" in done.stdout and "100.0%" in done.stdout and "By category" in done.stdout


def test_exit_1_below_the_pass_rate(tmp_path: Path, sim: SimProcess) -> None:
    cases = arithmetic_cases(4)
    cases[0]["expected"] = "nope"
    assert eval_local(tmp_path, sim, cases).returncode == 1
    assert eval_local(tmp_path, sim, cases, "--min-pass-rate", "0.75").returncode == 0


def test_exit_2_for_a_bad_suite_with_every_problem_and_no_request(tmp_path: Path, sim: SimProcess) -> None:
    cases: list[dict[str, Any]] = [*arithmetic_cases(2), {"id": "x", "prompt": ""}, {"id": "y", "expected": "1"}]
    done = eval_local(tmp_path, sim, cases)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("evalrun: suite.jsonl:3: ") and lines[-1].startswith("evalrun: suite.jsonl:4: ")
    assert "Traceback" not in done.stderr
    assert sim.stats()["requests"] == 0


def test_exit_2_for_bad_flags_config_and_unknown_provider(tmp_path: Path, sim: SimProcess) -> None:
    assert eval_local(tmp_path, sim, arithmetic_cases(1), "--concurrency", "0").returncode == 2
    assert eval_local(tmp_path, sim, arithmetic_cases(1), "--concurrency", "many").returncode == 2
    twice = eval_local(tmp_path, sim, arithmetic_cases(1), "-m", "a", "-m", "a")
    assert twice.returncode == 2 and "'a' named more than once" in twice.stderr
    empty = eval_local(tmp_path, sim, arithmetic_cases(1), "-m", "")
    assert empty.returncode == 2 and "a model name is empty" in empty.stderr
    nothing = eval_local(tmp_path, sim, arithmetic_cases(2), "--category", "nope")
    assert nothing.returncode == 2 and "no case matches" in nothing.stderr
    unknown = evalrun(tmp_path, "eval", "nosuch")
    assert unknown.returncode == 2 and "unknown provider 'nosuch'" in unknown.stderr
    (tmp_path / "config.toml").write_text("[run]\nconcurency = 3\n")
    typo = evalrun(tmp_path, "eval", "sim")
    assert typo.returncode == 2 and "unknown setting 'concurency'" in typo.stderr
    bad_env = evalrun(tmp_path, "eval", "sim", "--config", "none.toml", env={"EVALRUN_CONCURRENCY": "x"})
    assert bad_env.returncode == 2 and "Traceback" not in bad_env.stderr


def test_exit_2_before_any_request_when_a_results_file_cannot_be_written(tmp_path: Path, sim: SimProcess) -> None:
    (tmp_path / "folder").mkdir()
    for flag, path in (("--output", "/proc/x.json"), ("--junit", "folder"), ("--summary-md", "/proc/s.md")):
        done = eval_local(tmp_path, sim, arithmetic_cases(2), flag, path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"evalrun: {flag} {path}: ") and len(done.stderr.strip().splitlines()) == 1
    twice = eval_local(tmp_path, sim, arithmetic_cases(2), "--output", "r.out", "--junit", "./r.out")
    assert twice.returncode == 2 and "--junit ./r.out: --output writes there too" in twice.stderr
    assert sim.stats()["requests"] == 0 and not list(tmp_path.glob("**/*.tmp"))


def test_a_disk_that_fills_up_mid_run_is_one_line_and_exit_2(tmp_path: Path, sim: SimProcess) -> None:
    """The case spool's writes fail in the engine's call tasks: the error leaves as itself, not as
    a task group's traceback."""
    import resource
    import signal

    def small_files() -> None:  # in the child: files stop at 4 KiB, "File too large" (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(300))
    command = [sys.executable, "-m", "evalrun", "eval", "local", "--suite", "suite.jsonl", "--no-cache",
               "--history-dir", "", "--progress", "none"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "File too large" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_exit_2_when_the_api_key_is_missing(tmp_path: Path, sim: SimProcess) -> None:
    done = eval_local(tmp_path, sim, arithmetic_cases(3), api_key_env="EVALRUN_TEST_KEY")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "evalrun: EVALRUN_TEST_KEY is not set: provider 'local' needs an API key (export EVALRUN_TEST_KEY=...)"
    )
    assert sim.stats()["requests"] == 0


def test_exit_2_for_a_malformed_key_which_is_never_shown(tmp_path: Path, sim: SimProcess) -> None:
    for key in ("sk-SECRET-123456\r", "sk-SECRET-123456\n", "sk-SECRET-1234é56"):
        done = eval_local(
            tmp_path, sim, arithmetic_cases(2), env={"EVALRUN_TEST_KEY": key}, api_key_env="EVALRUN_TEST_KEY"
        )
        assert done.returncode == 2 and "EVALRUN_TEST_KEY holds" in done.stderr, done.stderr
        assert "SECRET" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert sim.stats()["requests"] == 0


def test_exit_3_when_provider_errors_exceed_max_errors(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(rate_500=1.0)
    done = eval_local(tmp_path, sim, arithmetic_cases(3), "--retries", "0", "--output", "r.json")
    assert done.returncode == 3, done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["errors"] == 3
    assert (
        eval_local(
            tmp_path, sim, arithmetic_cases(3), "--retries", "0", "--max-errors", "3", "--min-pass-rate", "0"
        ).returncode
        == 0
    )


def test_exit_124_on_run_timeout_with_results_written(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=3000)
    done = eval_local(tmp_path, sim, arithmetic_cases(6), "--timeout", "0.5", "--junit", "j.xml", "--output", "r.json")
    assert done.returncode == 124 and "run timeout of 0.5 s reached" in done.stderr  # the figure given
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["not_run"] == 6 and summary["by_category"]["math"] == {"total": 6, "passed": 0, "pass_rate": None}
    assert len(ET.parse(tmp_path / "j.xml").getroot().findall(".//skipped")) == 6


def test_results_json_junit_markdown_and_events(tmp_path: Path, sim: SimProcess) -> None:
    cases = [*arithmetic_cases(6, "math"), {"id": "t1", "category": "text", "prompt": "repeat: hi", "expected": "ho"}]
    done = eval_local(
        tmp_path,
        sim,
        cases,
        "--output",
        "out/results.json",
        "--junit",
        "junit.xml",
        "--summary-md",
        "summary.md",
        "--events",
        "events.jsonl",
        "--html",
        "report.html",
        "--min-pass-rate",
        "0.5",
    )
    assert done.returncode == 0, done.stderr
    files = "out/results.json, junit.xml, summary.md, report.html, events.jsonl"
    assert f"results written: {files}" in done.stderr and (tmp_path / "report.html").is_file()
    document = json.loads((tmp_path / "out/results.json").read_text())
    assert set(document) == {"schema", "run", "summary", "cases"} and document["schema"] == 1
    assert set(document["run"]) == {
        *("id", "provider", "models", "suites", "started_at", "settings"),
        *("state", "exit_code", "exit_reason"),
    }
    assert document["run"]["state"] == "completed" and document["run"]["exit_code"] == 0
    assert f"evalrun: {document['run']['exit_reason']}" in done.stdout.splitlines()
    assert set(document["summary"]) == CONTRACT_SUMMARY
    assert set(document["summary"]["tokens"]) == {"prompt", "completion"}
    assert set(document["summary"]["latency_ms"]) == {"p50", "p95"}
    assert document["summary"]["by_category"]["text"] == {"total": 1, "passed": 0, "pass_rate": 0.0}
    assert all(set(case) == CONTRACT_CASE for case in document["cases"])
    [failed] = [c for c in document["cases"] if c["status"] == "fail"]
    reason = "expected 'ho', got 'hi'"
    assert failed["assertions"] == [{"type": "equals", "pass": False, "score": 0.0, "reason": reason}]
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "7" and suite.get("failures") == "1"
    assert len(suite.findall("testcase")) == 7
    markdown = (tmp_path / "summary.md").read_text()
    assert "85.7% pass rate" in markdown and "`t1`" in markdown
    events = [json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert events.count("task_finished") == 7 and events.count("task_started") == 7


def test_api_key_never_reaches_any_file_the_run_writes(tmp_path: Path, sim: SimProcess) -> None:
    secret = "sk-evalrun-secret-4f9c2d81"
    sim.control(api_key=secret)
    env = {"EVALRUN_TEST_KEY": secret}
    cases = [*arithmetic_cases(5), {"id": "echo", "prompt": "repeat: hello", "expected": "hello"}]
    args = ("--output", "r.json", "--junit", "j.xml", "--summary-md", "s.md", "--events", "e.jsonl")
    done = eval_local(tmp_path, sim, cases, *args, env=env, api_key_env="EVALRUN_TEST_KEY")
    assert done.returncode == 0, done.stderr
    sim.control(api_key="another-key")  # now every call is refused: error messages must not leak either
    failed = eval_local(tmp_path, sim, cases, "--no-cache", *args, env=env, api_key_env="EVALRUN_TEST_KEY")
    assert failed.returncode == 3
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.parent.name == "cache" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in done.stdout + done.stderr + failed.stdout + failed.stderr


def test_validate_and_providers(tmp_path: Path) -> None:
    from evalrun.settings import BUNDLED_SUITE

    ok = evalrun(tmp_path, "validate", BUNDLED_SUITE)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 48 cases in 5 categories")
    write_suite(tmp_path / "bad.jsonl", [{"id": "a", "prompt": "p", "assert": [{"type": "nope"}]}])
    bad = evalrun(tmp_path, "validate", "bad.jsonl")
    assert bad.returncode == 2
    assert bad.stderr.startswith("evalrun: bad.jsonl:1: assertion 1 (nope): unknown assertion type")
    listing = evalrun(tmp_path, "providers", env={"GROQ_API_KEY": ""})
    assert listing.returncode == 0 and "GROQ_API_KEY NOT set" in listing.stdout


def test_cache_stats_explain_and_clear(tmp_path: Path, sim: SimProcess) -> None:
    eval_local(tmp_path, sim, arithmetic_cases(3))
    common = ("--provider", "local", "--suite", "suite.jsonl", "--cache-dir", "cache")
    hit = evalrun(tmp_path, "cache", "explain", "c00001", *common)
    assert hit.returncode == 0 and hit.stdout.startswith("hit: c00001")
    changed = arithmetic_cases(3)
    changed[1]["params"] = {"temperature": 0.5}
    write_suite(tmp_path / "suite.jsonl", changed)
    miss = evalrun(tmp_path, "cache", "explain", "c00001", *common, "--model", "other")
    assert miss.returncode == 0
    assert 'model: "sim-1" -> "other"' in miss.stdout and "params.temperature: added 0.5" in miss.stdout
    stats = evalrun(tmp_path, "cache", "stats", "--cache-dir", "cache")
    assert "3 entries" in stats.stdout
    assert "removed 3 entries" in evalrun(tmp_path, "cache", "clear", "--cache-dir", "cache").stdout
    for command in (("stats",), ("prune",), ("clear",), ("explain", "c00001", "--suite", "suite.jsonl")):
        looked = evalrun(tmp_path, "cache", *command, "--cache-dir", "nowhere")
        assert looked.returncode == 0, looked.stderr
    assert not (tmp_path / "nowhere").exists()  # looking at a cache that is not there does not make one


def _finished_tasks(events: Path) -> int:
    return events.read_text().count('"task_finished"') if events.exists() else 0


def test_ctrl_c_stops_cleanly_with_exit_130_and_results_written(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=300)
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(30))
    command = ["eval", "local", "--suite", "suite.jsonl", "--cache-dir", "cache", "--concurrency", "10"]
    process = subprocess.Popen(
        [sys.executable, "-m", "evalrun", *command, "--output", "r.json", "--events", "events.jsonl"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while _finished_tasks(tmp_path / "events.jsonl") < 10 and time.monotonic() < deadline:
        time.sleep(0.02)  # until one wave of 10 has finished (the events file says so)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "evalrun: exit 130: stopped by SIGINT" in stdout
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["passed"] >= 10 and summary["passed"] + summary["not_run"] == 30


def test_progress_json_is_one_object_per_line_on_stdout(tmp_path: Path, sim: SimProcess) -> None:
    done = eval_local(tmp_path, sim, arithmetic_cases(3), "--progress", "json")
    assert done.returncode == 0
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records[0]["event"] == "run_started"
    assert records[-2]["event"] == "run_finished" and records[-1]["event"] == "summary"
    assert records[-1]["passed"] == 3 and records[-1]["exit_code"] == 0
