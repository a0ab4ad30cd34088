"""``evalrun test`` on small fixture projects made in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from evalrun.schema import ProgressDict, TestOutcome
from evalrun.settings import load_test_settings
from evalrun.testrun.runner import TestRunner, pytest_command

MIXED = """
    import pytest

    @pytest.fixture
    def broken():
        raise RuntimeError("fixture exploded")

    def test_pass():
        assert True

    def test_fail():
        assert 1 == 2, "one is not two"

    @pytest.mark.skip(reason="not today")
    def test_skip():
        pass

    @pytest.mark.xfail(reason="known bug")
    def test_xfail():
        assert False

    def test_error(broken):
        pass
"""


def project(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def evalrun_test(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALRUN_", "TEST_TIMEOUT", "ENABLE_TEST"))}
    return subprocess.run(
        [sys.executable, "-m", "evalrun", "test", "--output", "r.json", "--junit", "j.xml", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def results(root: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((root / "r.json").read_text())
    return document


def test_outcomes_pass_fail_skip_xfail_and_fixture_error(tmp_path: Path) -> None:
    root = project(tmp_path, **{"test_mixed.py": MIXED})
    done = evalrun_test(root)
    assert done.returncode == 1, done.stdout + done.stderr
    document = results(root)
    outcomes = {t["id"].split("::")[1]: t["outcome"] for t in document["tests"]}
    assert outcomes == {
        "test_pass": "passed",
        "test_fail": "failed",
        "test_skip": "skipped",
        "test_xfail": "xfailed",
        "test_error": "error",
    }
    messages = {t["id"].split("::")[1]: t["message"] for t in document["tests"]}
    assert "one is not two" in messages["test_fail"] and "fixture exploded" in messages["test_error"]
    assert document["state"] == "failed" and document["pytest_exit_status"] == 1
    assert set(document["stages"]) == {"startup", "collection", "run", "teardown"}
    assert all(v is not None and v >= 0 for v in document["stages"].values())
    assert "FAILED: test_mixed.py::test_fail" in done.stderr and "ERROR: test_mixed.py::test_error" in done.stderr
    assert "5 tests: 1 passed, 1 failed, 1 skipped, 1 xfailed, 1 error" in done.stdout
    suite = ET.parse(root / "j.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "1", "2")


def test_collection_error_passes_pytest_code_through(tmp_path: Path) -> None:
    root = project(tmp_path, **{"test_ok.py": "def test_ok(): pass\n", "test_bad.py": "import nosuchmodule\n"})
    done = evalrun_test(root)
    assert done.returncode == 2
    [error] = [t for t in results(root)["tests"] if t["outcome"] == "error"]
    assert error["id"] == "test_bad.py" and "nosuchmodule" in error["message"]
    assert results(root)["message"] == "collection failed: 1 error, no test ran"  # not "interrupted"
    assert "[100.0%] 1/1 tests" in done.stderr + done.stdout  # the module that failed is one of the total


def test_no_tests_is_exit_5(tmp_path: Path) -> None:
    root = project(tmp_path, **{"test_nothing.py": "x = 1\n"})
    done = evalrun_test(root)
    assert done.returncode == 5
    assert results(root)["summary"]["total"] == 0 and "no tests were collected" in done.stdout


def test_hanging_test_hits_the_timeout_cleanly(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        **{
            "test_hang.py": """
        import time

        def test_first():
            pass

        def test_hangs():
            time.sleep(600)

        def test_never_a():
            pass

        def test_never_b():
            pass
    """
        },
    )
    started = time.monotonic()
    done = evalrun_test(root, "--timeout", "4", "--grace", "5")  # time for a slow machine to reach test_hangs
    elapsed = time.monotonic() - started
    assert done.returncode == 124, done.stderr
    assert elapsed < 4 + 5 + 10  # the timeout, the grace period, and the start of two interpreters (a slow one)
    document = results(root)
    assert document["state"] == "timeout" and document["pytest_exit_status"] == 2  # SIGINT was enough
    assert document["in_flight"] == ["test_hang.py::test_hangs"]
    assert document["not_run"] == ["test_hang.py::test_never_a", "test_hang.py::test_never_b"]
    assert [t["id"] for t in document["tests"]] == ["test_hang.py::test_first"]
    junit = ET.parse(root / "j.xml").getroot()
    errors = [c.get("name") for c in junit.iter("testcase") if c.find("error") is not None]
    skipped = [s.get("message") for c in junit.iter("testcase") if (s := c.find("skipped")) is not None]
    assert errors == ["test_hangs"] and skipped == ["not run", "not run"]
    assert "IN FLIGHT test_hang.py::test_hangs" in done.stdout


def test_timeout_escalates_to_kill_when_sigint_is_not_enough(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        **{
            "test_stubborn.py": """
        import signal, time

        def test_ignores_sigint():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            time.sleep(600)
    """
        },
    )
    started = time.monotonic()
    done = evalrun_test(root, "--timeout", "5", "--grace", "1")  # 5 s: the test must have begun
    # The test ignores SIGINT for 600 s: only the escalation to SIGTERM ends it this soon (the
    # bound is loose, for a busy machine; without escalation it would take ten minutes).
    assert done.returncode == 124 and time.monotonic() - started < 40
    assert results(root)["in_flight"] == ["test_stubborn.py::test_ignores_sigint"]


def test_pytest_dying_is_exit_125(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        **{
            "test_die.py": """
        import os

        def test_before():
            pass

        def test_dies():
            os._exit(3)

        def test_after():
            pass
    """
        },
    )
    done = evalrun_test(root)
    assert done.returncode == 125
    document = results(root)
    assert document["state"] == "error" and "died without finishing (exit status 3)" in document["message"]
    assert document["in_flight"] == ["test_die.py::test_dies"] and document["not_run"] == ["test_die.py::test_after"]


def _many(n: int) -> str:
    return "".join(f"def test_{i}():\n    assert {i} >= 0\n\n" for i in range(n))


@pytest.mark.parametrize("parallel", [None, "2"])
def test_with_and_without_xdist(tmp_path: Path, parallel: str | None) -> None:
    pytest.importorskip("xdist")
    root = project(tmp_path, **{"test_a.py": _many(30), "test_b.py": _many(30) + "def test_x():\n    assert 0\n"})
    seen: list[ProgressDict] = []
    settings = load_test_settings(env={}, workdir=str(root), parallel=parallel, output=str(root / "r.json"))
    result = TestRunner(settings).on_progress(seen.append, interval=0).run()
    assert result.exit_code == 1
    counts = result.progress.counts
    assert (result.progress.total, counts[TestOutcome.PASSED], counts[TestOutcome.FAILED]) == (61, 60, 1)
    assert ("-n" in result.document["command"]) == (parallel is not None)
    assert seen[-1]["status"] == "failed" and seen[-1]["completed"] == seen[-1]["total"] == 61
    assert {"status", "progress_percentage", "completed", "total", "message", "eta_formatted"} <= set(seen[0])


def test_parallel_without_xdist_says_so(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/sh\nif [ "$1" = -c ]; then exit 1; fi\nexec {sys.executable} "$@"\n')
    fake_python.chmod(0o755)
    done = evalrun_test(project(tmp_path, **{"test_a.py": _many(1)}), "--parallel", "2", "--python", str(fake_python))
    assert done.returncode == 2 and "--parallel needs pytest-xdist" in done.stderr


def test_cache_replays_an_unchanged_project_and_misses_after_a_data_change(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        **{
            "test_data.py": """
        from pathlib import Path

        def test_data():
            assert Path(__file__).with_name("data.txt").read_text() == "good"
    """,
            "data.txt": "good",
        },
    )
    first = evalrun_test(root, "--cache")
    assert first.returncode == 0 and results(root)["replayed"] is False
    second = evalrun_test(root, "--cache")
    assert second.returncode == 0 and results(root)["replayed"] is True
    assert "replayed from the test cache" in second.stdout
    (root / "data.txt").write_text("bad")
    third = evalrun_test(root, "--cache")
    assert third.returncode == 1 and results(root)["replayed"] is False
    fourth = evalrun_test(root, "--cache")
    assert fourth.returncode == 1 and results(root)["replayed"] is True  # failed runs completed too
    assert evalrun_test(root, "--cache", "--", "-k", "data").returncode == 1
    assert results(root)["replayed"] is False  # other arguments, another fingerprint


def test_plugin_restores_an_ignored_sigint(tmp_path: Path) -> None:
    root = project(tmp_path, **{"test_hang.py": "import time\n\ndef test_hangs():\n    time.sleep(600)\n"})
    events = root / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "evalrun.testrun.plugin", "-q"],
        cwd=root,
        env={**os.environ, "EVALRUN_PYTEST_PLUGIN_EVENTS": str(events)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + 20
    while "test_started" not in (events.read_text() if events.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 2
    last = json.loads(events.read_text().splitlines()[-1])
    assert last == {"event": "session_finished", "t": last["t"], "exit_status": 2}


def test_ctrl_c_interrupts_cleanly_with_exit_130_and_events(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        **{
            "test_hang.py": "import pathlib, time\n\ndef test_ok():\n    pass\n\n"
            "def test_hangs():\n    pathlib.Path('hanging').touch()\n    time.sleep(600)\n"
        },
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "evalrun", "test", "--output", "r.json", "--events", "events.jsonl"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (root / "hanging").exists():  # the hanging test has begun: the interrupt finds it in flight
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=20)
    assert process.returncode == 130
    document = results(root)
    assert document["state"] == "interrupted" and document["in_flight"] == ["test_hang.py::test_hangs"]
    kinds = [json.loads(line)["event"] for line in (root / "events.jsonl").read_text().splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"session_started", "collection_finished", "test_started", "test_finished", "session_finished"} <= set(kinds)


def test_settings_from_environment_and_flags() -> None:
    from evalrun.errors import ConfigError

    assert load_test_settings(env={"TEST_TIMEOUT": "30", "ENABLE_TEST_CACHE": "true"}).timeout == 30.0
    assert load_test_settings(env={"TEST_TIMEOUT": "30"}).cache is False
    assert load_test_settings(env={"ENABLE_TEST_CACHE": "1"}).cache is True
    assert load_test_settings(env={"EVALRUN_TEST_TIMEOUT": "5", "TEST_TIMEOUT": "30"}).timeout == 5.0
    assert load_test_settings(env={"TEST_TIMEOUT": "30"}, timeout=7).timeout == 7
    with pytest.raises(ConfigError, match=r"TEST_TIMEOUT: expected a number \(got string 'soon'\)"):
        load_test_settings(env={"TEST_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match=r"--parallel: expected a number of workers or 'auto' \(got string 'many'\)"):
        load_test_settings(env={}, parallel="many")
    with pytest.raises(ConfigError, match=r"--timeout: must be greater than 0 \(0: no limit\)"):
        load_test_settings(env={}, timeout=-1)
    assert load_test_settings(env={}).timeout == 300.0  # five minutes, as the original system
    assert load_test_settings(env={}, timeout=0).timeout is None
    assert load_test_settings(env={"TEST_TIMEOUT": "0"}).timeout is None
    assert (
        load_test_settings(env={"EVALRUN_TEST_TIMEOUT": "5", "TEST_TIMEOUT": "soon"}).timeout == 5.0
    )  # only the winner
    inherited = load_test_settings(env={"EVALRUN_TEST_EVENTS": "outer.jsonl", "EVALRUN_TEST_PYTEST_ARGS": "-k,a"})
    assert inherited.events is None and inherited.pytest_args == ()  # a nested run must not take the outer's
    command = pytest_command(load_test_settings(env={}, parallel="auto"))
    assert command[3:7] == ["-p", "evalrun_pytest_events", "-n", "auto"]
