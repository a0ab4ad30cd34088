"""Faults of ``evalrun test`` (issue 9): processes a test leaves in pytest's process group, pytest's
own exit codes (and words) when its session ended badly or never began, and JUnit XML that stays
valid whatever characters a test or a model writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_testrun import evalrun_test, project, results

from evalrun.events import RunFinished, RunStarted, TaskFinished
from evalrun.metrics import RunMetrics
from evalrun.reports import CaseSpool, JUnitCase, JUnitTotals, write_junit, write_reports
from evalrun.schema import CaseResult, RunInfo, RunKind, RunState, Status
from evalrun.testrun.runner import _group_members, _group_members_from_ps

needs_proc = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds processes through /proc")

# -- processes left behind ------------------------------------------------------------------------


def _processes() -> Iterator[tuple[int, bytes, str]]:
    """Every live process as (pid, command line, working directory); zombies are dead."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            if stat[stat.rindex(b")") + 2 :][:1] == b"Z":
                continue
            yield int(entry.name), (entry / "cmdline").read_bytes(), os.readlink(entry / "cwd")
        except OSError:  # gone, or not ours to read
            continue


def _holding(token: str) -> list[int]:
    return sorted(pid for pid, cmdline, _ in _processes() if token.encode() in cmdline)


def _wait_for(count: int, token: str) -> None:
    deadline = time.monotonic() + 60
    while len(_holding(token)) < count:
        assert time.monotonic() < deadline, f"{count} processes holding {token} never ran"
        time.sleep(0.05)


@pytest.fixture
def stubborn(tmp_path: Path) -> Iterator[str]:
    """A unique ``sleep`` duration for processes that ignore SIGINT and SIGTERM. Afterwards, whatever
    holds it or runs in ``tmp_path`` (pytest too, if evalrun was killed) is killed, pass or fail."""
    duration = f"612.{uuid.uuid4().int % 10**6:06d}"
    yield duration
    for pid, cmdline, cwd in _processes():
        if duration.encode() in cmdline or Path(cwd).is_relative_to(tmp_path):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


SPAWNS = """
import subprocess, time
from pathlib import Path

def _running(cmdline):
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if path.read_bytes() == cmdline:
                return True
        except OSError:
            pass
    return False

def test_leaves_a_stubborn_process_behind():
    # "; exit 0" keeps bash from exec-ing sleep: two processes that ignore SIGINT and SIGTERM
    subprocess.Popen(["bash", "-c", "trap '' INT TERM; sleep DURATION; exit 0"])
    deadline = time.monotonic() + 30
    while not _running(b"sleep\\x00DURATION\\x00") and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(STAY)
"""


def _spawning(tmp_path: Path, duration: str, stay: int) -> Path:
    return project(tmp_path, **{"test_spawn.py": SPAWNS.replace("DURATION", duration).replace("STAY", str(stay))})


def _assert_killed_two(root: Path, duration: str, console: str) -> None:
    assert _holding(duration) == [], "bash or sleep outlived evalrun"
    assert results(root)["processes_killed"] == 2
    assert "killed 2 other processes of pytest's process group" in console


@needs_proc
def test_leftovers_of_a_passing_run_are_killed(tmp_path: Path, stubborn: str) -> None:
    root = _spawning(tmp_path, stubborn, stay=0)
    done = evalrun_test(root, "--grace", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert results(root)["state"] == "completed"
    _assert_killed_two(root, stubborn, done.stdout)


@needs_proc
def test_leftovers_of_a_timed_out_run_are_killed(tmp_path: Path, stubborn: str) -> None:
    root = _spawning(tmp_path, stubborn, stay=600)
    # 12 s: ample for the interpreter, pytest and the spawn to come first on a busy machine
    done = evalrun_test(root, "--timeout", "12", "--grace", "1")
    assert done.returncode == 124, done.stdout + done.stderr
    assert results(root)["in_flight"] == ["test_spawn.py::test_leaves_a_stubborn_process_behind"]
    _assert_killed_two(root, stubborn, done.stdout)


@needs_proc
def test_leftovers_are_killed_when_evalrun_gets_sigterm(tmp_path: Path, stubborn: str) -> None:
    root = _spawning(tmp_path, stubborn, stay=600)
    process = subprocess.Popen(
        [sys.executable, "-m", "evalrun", "test", "--output", "r.json", "--grace", "1"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for(2, stubborn)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143  # 128 + SIGTERM, as an eval run
    assert results(root)["state"] == "interrupted"
    _assert_killed_two(root, stubborn, stdout)


@needs_proc
@pytest.mark.skipif(shutil.which("ps") is None, reason="no ps")
def test_group_members_from_proc_and_from_ps_agree(stubborn: str) -> None:
    """Where there is no /proc (macOS) ``ps`` names the group; here both must name the same two sleeps."""
    leader = subprocess.Popen(["bash", "-c", f"sleep {stubborn} & sleep {stubborn}; wait"], start_new_session=True)
    try:
        _wait_for(3, stubborn)
        sleeps = set(_holding(stubborn)) - {leader.pid}
        assert len(sleeps) == 2
        assert _group_members(leader.pid) == _group_members_from_ps(leader.pid) == sleeps
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


# -- pytest's own exit codes ----------------------------------------------------------------------

HOOK_RAISES = "def pytest_collection_modifyitems(items):\n    raise RuntimeError('hook exploded')\n"
START_RAISES = "def pytest_sessionstart(session):\n    raise RuntimeError('start exploded')\n"
OK = "def test_ok():\n    pass\n"


@pytest.mark.parametrize(
    ("files", "args", "code", "said"),
    [
        pytest.param(
            {"conftest.py": "import nosuchmodule\n", "test_ok.py": OK},
            (),
            4,
            "ModuleNotFoundError: No module named 'nosuchmodule'",
            id="conftest-import-error",
        ),
        pytest.param(
            {"test_ok.py": OK},
            ("--", "--no-such-option"),
            4,
            "unrecognized arguments: --no-such-option",
            id="unknown-option",
        ),
        pytest.param({"test_ok.py": OK}, ("--", "missing_test.py"), 4, "not found: missing_test.py", id="no-such-file"),
        pytest.param({"conftest.py": HOOK_RAISES, "test_ok.py": OK}, (), 3, "hook exploded", id="internal-error"),
        pytest.param({"conftest.py": START_RAISES, "test_ok.py": OK}, (), 3, "start exploded", id="error-at-start"),
        pytest.param(
            {"test_stop.py": "def test_stop():\n    raise KeyboardInterrupt\n"},
            (),
            2,
            "pytest was interrupted",
            id="interrupted-by-a-test",
        ),
    ],
)
def test_pytest_codes_pass_through_with_pytest_s_words(
    tmp_path: Path, files: dict[str, str], args: tuple[str, ...], code: int, said: str
) -> None:
    done = evalrun_test(project(tmp_path, **files), *args)
    assert done.returncode == code, done.stdout + done.stderr
    document = results(tmp_path)
    assert document["exit_code"] == code and document["state"] == "error"
    assert said in document["message"]
    last = done.stdout.splitlines()[-1]
    assert last.startswith("evalrun test: error (pytest ") and f"exit {code}" in last
    assert said in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_an_interpreter_that_cannot_run_pytest_says_why(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'fake python: No module named pytest' >&2\nexit 1\n")
    fake_python.chmod(0o755)
    done = evalrun_test(project(tmp_path, **{"test_ok.py": OK}), "--python", str(fake_python))
    assert done.returncode == 125 and results(tmp_path)["state"] == "error"
    assert "  | fake python: No module named pytest" in done.stdout.splitlines()


# -- JUnit XML whatever the text ------------------------------------------------------------------

NASTY = "nul\x00 esc\x1b[31m bell\x07 lone\ud800 end"
SHOWN = r"nul\x00 esc\x1b[31m bell\x07 lone\ud800 end"  # what JUnit says instead: Python's escapes


def test_junit_writer_escapes_what_xml_forbids(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    cases = [
        JUnitCase(f"class {NASTY}", f"name {NASTY}", 0.5, "failure", f"response {NASTY}"),
        JUnitCase("ok", f"passed {NASTY}", 0.1),
    ]
    with open(path, "w", encoding="utf-8") as handle:
        write_junit(handle, JUnitTotals(f"suite {NASTY}", 2, 1, 0, 0, 0.6), cases)
    root = ET.parse(path).getroot()
    failed, passed = root.iter("testcase")
    failure = failed.find("failure")
    assert failure is not None
    assert (failed.get("classname"), failed.get("name")) == (f"class {SHOWN}", f"name {SHOWN}")
    assert failure.get("message") == f"response {SHOWN}"
    assert passed.get("name") == f"passed {SHOWN}" and root.get("name") == f"suite {SHOWN}"


def test_eval_junit_stays_valid_with_control_characters_in_ids_and_responses(tmp_path: Path) -> None:
    """The eval run's own path (spool, records, report) to the shared writer."""
    controls = "nul\x00 esc\x1b[31m bell\x07"
    reason = f"expected 4, got {controls}"
    result = CaseResult(
        f"case {controls}",
        f"category {controls}",
        f"model {controls}",
        0,
        Status.FAIL,
        response=controls,
        assertions=[{"type": "contains", "pass": False, "score": 0.0, "reason": reason}],
    )
    spool, metrics = CaseSpool(), RunMetrics()
    for event in (
        RunStarted("run", RunKind.EVAL, 1, "sim", (result.model,)),
        TaskFinished(result),
        RunFinished(RunState.FAILED, "", 1),
    ):
        spool(event)
        metrics(event)
    run: RunInfo = {
        "id": "run",
        "provider": "sim",
        "models": [result.model],
        "suites": [],
        "started_at": "",
        "settings": {},
        "state": "completed",
        "exit_code": 0,
        "exit_reason": "",
    }
    write_reports(spool, run, metrics.summary(), junit=str(tmp_path / "junit.xml"))
    spool.close()
    [case] = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    shown = r"nul\x00 esc\x1b[31m bell\x07"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == f"contains: expected 4, got {shown}"
    assert case.get("name") == f"case {shown} [model {shown}]" and case.get("classname") == f"category {shown}"


NASTY_TESTS = """
import pytest

@pytest.mark.parametrize("value", ["nul\\x00 esc\\x1b[31m bell\\x07"])
def test_fails(value):
    assert False, "message " + value

@pytest.mark.parametrize("value", ["lone\\ud800 end"])
def test_surrogate(value):
    pass
"""


def test_test_run_junit_stays_valid_with_control_characters_in_ids_and_messages(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        **{
            "test_nasty.py": NASTY_TESTS,
            # pytest escapes ids unless told not to, which is how raw characters reach a test id
            "pytest.ini": "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n",
        },
    )
    # pytest's own cache cannot write a lone surrogate and would end the session in a crash
    done = evalrun_test(root, "--", "-p", "no:cacheprovider")
    assert done.returncode == 1, done.stdout + done.stderr
    cases = {c.get("name"): c for c in ET.parse(root / "j.xml").getroot().iter("testcase")}
    shown = r"nul\x00 esc\x1b[31m bell\x07"
    assert set(cases) == {f"test_fails[{shown}]", r"test_surrogate[lone\ud800 end]"}
    failure = cases[f"test_fails[{shown}]"].find("failure")
    assert failure is not None and f"message {shown}" in (failure.get("message") or "")
    assert done.stdout.splitlines()[-1].startswith("evalrun test: failed")  # the console's summary survives it too
    assert "Traceback" not in done.stderr
