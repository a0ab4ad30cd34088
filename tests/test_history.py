"""The run history: rows and folders as runs begin and end, several processes at once, recovery of runs
whose process died, pruning, a damaged index, and ``evalrun runs`` over it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalrun.cli import runs_cmd
from evalrun.history import RUNNING_STATES, HistoryUnavailable, RunHistory

SUMMARY = {
    "total": 4,
    "passed": 3,
    "failed": 1,
    "errors": 0,
    "not_run": 0,
    "pass_rate": 0.75,
    "cases_per_second": 12.5,
    "wall_seconds": 0.32,
}


def _finished(history: RunHistory, run_id: str, *, started_at: float, kind: str = "eval") -> None:
    history.begin(run_id, kind, origin="cli", request={})
    history.finish(run_id, state="passed", exit_code=0, summary=SUMMARY)
    history.update(run_id, started_at=started_at)


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped, so nothing answers to it)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


# -- recording ---------------------------------------------------------------------------------


def test_nothing_is_written_until_a_run_begins(tmp_path: Path) -> None:
    history = RunHistory(tmp_path / "runs")
    assert history.list() == ([], 0)
    assert history.get("abc123") is None
    assert history.by_session("s") is None
    assert history.recover() == []
    assert history.prune(keep=0) == []
    assert not (tmp_path / "runs").exists()


def test_begin_records_a_running_row_and_makes_the_folder(tmp_path: Path) -> None:
    history = RunHistory(tmp_path / "runs")
    before = time.time()
    folder = history.begin(
        "0123456789ab",
        "eval",
        origin="server",
        request={"suites": ["a.yaml"], "repeat": 2, "where": Path("x")},
        provider="sim",
        models=["m1", "m2"],
        suites=["a.yaml"],
        total=8,
        session_id="sess-1",
    )
    assert folder == tmp_path / "runs" / "0123456789ab" == history.folder("0123456789ab")
    assert folder.is_dir()
    run = history.get("0123456789ab")
    assert run is not None
    assert run["state"] == "running"
    assert run["kind"] == "eval" and run["origin"] == "server" and run["provider"] == "sim"
    assert run["models"] == ["m1", "m2"] and run["suites"] == ["a.yaml"]
    assert run["request"] == {"suites": ["a.yaml"], "repeat": 2, "where": "x"}
    assert run["total"] == 8 and run["session_id"] == "sess-1" and run["pid"] == os.getpid()
    assert before <= run["started_at"] <= time.time()
    assert run["finished_at"] is None and run["exit_code"] is None


def test_the_index_is_shared_safely_and_versioned(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("a1", "eval", origin="cli", request={})
    with sqlite3.connect(tmp_path / "index.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"runs_started_at", "runs_session_id"} <= indexes


def test_a_run_id_is_recorded_once(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("a1", "eval", origin="cli", request={})
    with pytest.raises(ValueError, match="already recorded"):
        history.begin("a1", "test", origin="cli", request={})
    run = history.get("a1")
    assert run is not None and run["kind"] == "eval"


def test_finish_records_the_outcome_and_the_counts(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("a1", "eval", origin="cli", request={}, total=4)
    history.finish("a1", state="failed", exit_code=1, summary=SUMMARY, message="pass rate 75.0% under 80.0%")
    run = history.get("a1")
    assert run is not None
    assert run["state"] == "failed" and run["exit_code"] == 1 and run["message"] == "pass rate 75.0% under 80.0%"
    assert (run["total"], run["passed"], run["failed"], run["errors"], run["not_run"]) == (4, 3, 1, 0, 0)
    assert run["pass_rate"] == 0.75 and run["cases_per_second"] == 12.5
    assert run["finished_at"] >= run["started_at"]
    assert run["duration_s"] == pytest.approx(run["finished_at"] - run["started_at"])


def test_finish_of_a_test_run_keeps_what_its_summary_does_not_say(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("t1", "test", origin="cli", request={}, total=9)
    history.finish("t1", state="passed", exit_code=0, summary={"passed": 9, "skipped": 2, "pass_rate": None})
    run = history.get("t1")
    assert run is not None
    assert run["total"] == 9 and run["passed"] == 9 and run["failed"] == 0 and run["not_run"] == 0
    assert run["pass_rate"] is None and run["cases_per_second"] is None  # unknown, not a made-up 0.0


def test_finish_refuses_a_running_state_and_an_unknown_run(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("a1", "eval", origin="cli", request={})
    for state in sorted(RUNNING_STATES):
        with pytest.raises(ValueError):
            history.finish("a1", state=state, exit_code=0, summary={})
    with pytest.raises(KeyError):
        history.finish("zz", state="passed", exit_code=0, summary={})


def test_update_changes_known_columns_only(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("a1", "eval", origin="cli", request={})
    history.update("a1", total=12, state="collecting", models=["m3"])
    run = history.get("a1")
    assert run is not None and (run["total"], run["state"], run["models"]) == (12, "collecting", ["m3"])
    with pytest.raises(ValueError, match="bogus"):
        history.update("a1", bogus=1)
    with pytest.raises(ValueError):
        history.update("a1", id="b2")  # the key names the folder
    with pytest.raises(KeyError):
        history.update("zz", total=1)


@pytest.mark.parametrize("run_id", ["../up", "a/b", "..", ".", "", "a b", "id\n", "x" * 65, "é1"])
def test_a_run_id_that_is_not_one_safe_folder_name_is_refused(tmp_path: Path, run_id: str) -> None:
    history = RunHistory(tmp_path / "runs")
    with pytest.raises(ValueError, match="not a run id"):
        history.folder(run_id)
    with pytest.raises(ValueError, match="not a run id"):
        history.begin(run_id, "eval", origin="cli", request={})
    with pytest.raises(ValueError, match="not a run id"):
        history.get(run_id)
    assert not (tmp_path / "runs").exists()


# -- reading -------------------------------------------------------------------------------------


def test_list_is_newest_first_paged_and_filtered(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    now = time.time()
    for age, run_id, kind in [(5, "r5", "eval"), (1, "r1", "test"), (3, "r3", "eval"), (2, "r2", "eval")]:
        _finished(history, run_id, started_at=now - age, kind=kind)
    history.begin("r0", "eval", origin="cli", request={})  # now: the newest, still running

    first, total = history.list(limit=2)
    second, _ = history.list(limit=2, offset=2)
    last, _ = history.list(limit=2, offset=4)
    assert total == 5
    assert [run["id"] for run in first + second + last] == ["r0", "r1", "r2", "r3", "r5"]

    evals, matching = history.list(kind="eval", limit=2)
    assert matching == 4 and [run["id"] for run in evals] == ["r0", "r2"]
    running, matching = history.list(state="running")
    assert matching == 1 and [run["id"] for run in running] == ["r0"]
    assert history.list(kind="test", state="running") == ([], 0)
    with pytest.raises(ValueError):
        history.list(limit=-1)


def test_by_session_gives_the_newest_run_of_the_session(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("s1", "eval", origin="server", request={}, session_id="sess")
    history.begin("s2", "eval", origin="server", request={}, session_id="sess")
    history.begin("o1", "eval", origin="server", request={}, session_id="other")
    history.update("s1", started_at=time.time() - 60)
    run = history.by_session("sess")
    assert run is not None and run["id"] == "s2"
    assert history.by_session("nobody") is None


# -- several processes ---------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from evalrun.history import RunHistory

    root, prefix, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    go.with_name(f"ready-{prefix}").touch()  # imported: only the signal to go is awaited now
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:  # start together, so that the writes overlap
        time.sleep(0.001)
    history = RunHistory(root)
    for i in range(50):
        run_id = f"{prefix}{i:02d}"
        history.begin(run_id, "eval", origin=prefix, request={"i": i})
        history.finish(run_id, state="passed", exit_code=0, summary={"total": 1, "passed": 1})
    """
)


def test_two_processes_record_runs_at_once(tmp_path: Path) -> None:
    root, go = tmp_path / "runs", tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(root), prefix, str(go)], stderr=subprocess.PIPE, text=True)
        for prefix in ("cli", "srv")
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready-{prefix}").exists() for prefix in ("cli", "srv")):  # both imported
        assert time.monotonic() < deadline
        time.sleep(0.01)
    go.touch()  # both start at once: the first write of each meets the other's
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors
    runs, total = RunHistory(root).list(limit=1000)
    assert total == 100
    assert {run["id"] for run in runs} == {f"{prefix}{i:02d}" for prefix in ("cli", "srv") for i in range(50)}
    assert {run["state"] for run in runs} == {"passed"}
    assert all((root / run["id"]).is_dir() for run in runs)


# -- recovery and pruning ------------------------------------------------------------------------


def test_recover_interrupts_the_runs_whose_process_died(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    dead = _dead_pid()
    history.begin("dead1", "eval", origin="cli", request={}, pid=dead)
    history.begin("dead2", "test", origin="cli", request={}, pid=dead)
    history.update("dead2", state="collecting")
    history.begin("mine", "eval", origin="cli", request={})  # this process: alive, and left alone
    history.begin("done", "eval", origin="cli", request={}, pid=dead)
    history.finish("done", state="passed", exit_code=0, summary=SUMMARY)

    assert sorted(history.recover()) == ["dead1", "dead2"]
    for run_id in ("dead1", "dead2"):
        run = history.get(run_id)
        assert run is not None and run["state"] == "interrupted"
        assert run["message"] == "the process running it ended without finishing it"
    mine, done = history.get("mine"), history.get("done")
    assert mine is not None and mine["state"] == "running"
    assert done is not None and done["state"] == "passed" and done["message"] == ""
    assert history.recover() == []


def test_prune_keeps_the_newest_finished_runs_and_every_running_one(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    now = time.time()
    for age in range(1, 6):
        _finished(history, f"f{age}", started_at=now - age * 60)
    history.begin("going", "eval", origin="cli", request={})
    history.update("going", started_at=now - 3600)  # the oldest of all, and still running
    (history.folder("f5") / "results.json").write_text("{}", encoding="utf-8")

    assert history.prune(keep=2) == ["f3", "f4", "f5"]
    runs, _ = history.list()
    assert [run["id"] for run in runs] == ["f1", "f2", "going"]
    assert not history.folder("f5").exists() and not history.folder("f3").exists()
    assert history.folder("f1").is_dir() and history.folder("going").is_dir()
    assert history.prune(keep=0) == ["f1", "f2"]
    assert [run["id"] for run in history.list()[0]] == ["going"]


def test_prune_by_age_spares_recent_and_running_runs(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    day = 86400.0
    now = time.time()
    _finished(history, "old", started_at=now - 10 * day)
    _finished(history, "recent", started_at=now - 3600)
    history.begin("stuck", "eval", origin="cli", request={})
    history.update("stuck", started_at=now - 40 * day)
    history.begin("gone", "eval", origin="cli", request={}, pid=_dead_pid())
    history.update("gone", started_at=now - 20 * day)

    assert history.prune(older_than_seconds=7 * day) == ["old"]
    assert history.recover() == ["gone"]  # interrupted is finished: it may go now
    assert history.prune(older_than_seconds=7 * day) == ["gone"]
    assert sorted(run["id"] for run in history.list()[0]) == ["recent", "stuck"]
    assert not history.folder("old").exists()


def test_prune_with_both_limits_deletes_what_either_names(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    now = time.time()
    for run_id, age in [("a", 1), ("b", 2), ("c", 3)]:
        _finished(history, run_id, started_at=now - age * 86400)
    assert history.prune(older_than_seconds=2.5 * 86400, keep=1) == ["b", "c"]


def test_prune_needs_a_limit(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    with pytest.raises(ValueError):
        history.prune()
    with pytest.raises(ValueError):
        history.prune(keep=-1)


# -- an unusable history ---------------------------------------------------------------------------

_CALLS: dict[str, Callable[[RunHistory], Any]] = {
    "begin": lambda h: h.begin("a1", "eval", origin="cli", request={}),
    "update": lambda h: h.update("a1", total=1),
    "finish": lambda h: h.finish("a1", state="passed", exit_code=0, summary={}),
    "get": lambda h: h.get("a1"),
    "by_session": lambda h: h.by_session("s"),
    "list": lambda h: h.list(),
    "recover": lambda h: h.recover(),
    "prune": lambda h: h.prune(keep=1),
}


@pytest.mark.parametrize("call", sorted(_CALLS))
def test_a_damaged_index_is_one_clear_error_from_every_method(tmp_path: Path, call: str) -> None:
    (tmp_path / "index.db").write_bytes(b"this is not a database, only garbage bytes\x00\xff" * 100)
    with pytest.raises(HistoryUnavailable) as raised:
        _CALLS[call](RunHistory(tmp_path))
    assert raised.value.damaged
    assert "damaged" in str(raised.value) and "\n" not in str(raised.value)


def test_a_root_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    history = RunHistory(tmp_path / "file" / "runs")
    with pytest.raises(HistoryUnavailable) as raised:
        history.begin("a1", "eval", origin="cli", request={})
    assert not raised.value.damaged and str(tmp_path / "file" / "runs") in str(raised.value)


def test_an_index_from_a_newer_evalrun_is_refused(tmp_path: Path) -> None:
    RunHistory(tmp_path).begin("a1", "eval", origin="cli", request={})
    with sqlite3.connect(tmp_path / "index.db") as db:
        db.execute("PRAGMA user_version = 2")
    with pytest.raises(HistoryUnavailable, match="schema version 2"):
        RunHistory(tmp_path).list()


# -- evalrun runs ----------------------------------------------------------------------------------


def _runs(*args: str) -> Any:
    return CliRunner().invoke(runs_cmd.app, list(args))


def _sample(root: Path) -> RunHistory:
    history = RunHistory(root)
    now = time.time()
    _finished(history, "older0000001", started_at=now - 120)
    _finished(history, "newer0000002", started_at=now - 60, kind="test")
    history.begin("dead00000003", "eval", origin="server", request={}, pid=_dead_pid(), total=7)
    return history


def test_runs_lists_newest_first_in_a_table(tmp_path: Path) -> None:
    _sample(tmp_path)
    result = _runs("--history-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("dead00000003") < out.index("newer0000002") < out.index("older0000001")
    assert "interrupted" in out  # its process is gone: listing says so rather than 'running'
    assert "3/4" in out and "75.0%" in out and "12.5" in out
    assert time.strftime("%Y-%m-%d", time.localtime()) in out

    tests_only = _runs("--history-dir", str(tmp_path), "--kind", "test")
    assert "newer0000002" in tests_only.stdout and "older0000001" not in tests_only.stdout
    first = _runs("--history-dir", str(tmp_path), "--limit", "1")
    assert "dead00000003" in first.stdout and "newer0000002" not in first.stdout
    assert "of 3 runs" in first.stdout


def test_runs_with_nothing_recorded_says_so(tmp_path: Path) -> None:
    result = _runs("--history-dir", str(tmp_path / "none"))
    assert result.exit_code == 0
    assert result.stdout.strip() == f"no runs recorded under {tmp_path / 'none'}"


def test_runs_show_prints_the_row_as_json(tmp_path: Path) -> None:
    history = _sample(tmp_path)
    result = _runs("show", "older0000001", "--history-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == history.get("older0000001")
    # --history-dir given before the subcommand counts too.
    before = _runs("--history-dir", str(tmp_path), "show", "newer0000002")
    assert before.exit_code == 0 and json.loads(before.stdout)["kind"] == "test"


@pytest.mark.parametrize("run_id", ["nosuchrun", "../etc"])
def test_runs_show_of_an_unknown_run_is_one_line_and_exit_2(tmp_path: Path, run_id: str) -> None:
    _sample(tmp_path)
    result = _runs("show", run_id, "--history-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and run_id in result.stderr


def test_runs_prune(tmp_path: Path) -> None:
    history = _sample(tmp_path)
    result = _runs("prune", "--keep", "1", "--history-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    # the dead run was recovered first, so three finished runs: the newest is kept
    assert result.stdout.strip() == "pruned 2 runs"
    assert [run["id"] for run in history.list()[0]] == ["dead00000003"]
    assert not history.folder("older0000001").exists()
    again = _runs("prune", "--older-than", "30d", "--history-dir", str(tmp_path))
    assert again.exit_code == 0 and again.stdout.strip() == "pruned 0 runs"


@pytest.mark.parametrize("args", [[], ["--older-than", "3x"], ["--older-than", "30"], ["--keep", "-1"]])
def test_runs_prune_refuses_bad_input(tmp_path: Path, args: list[str]) -> None:
    _sample(tmp_path)
    result = _runs("prune", *args, "--history-dir", str(tmp_path))
    assert result.exit_code == 2
    assert len(RunHistory(tmp_path).list()[0]) == 3


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45)])
def test_prune_durations(text: str, seconds: float) -> None:
    assert runs_cmd.parse_duration(text) == seconds


@pytest.mark.parametrize("args", [[], ["show", "a1"], ["prune", "--keep", "1"]])
def test_runs_on_a_damaged_index_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "index.db").write_bytes(b"garbage" * 500)
    result = _runs(*args, "--history-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stderr.splitlines()) == 1 and "damaged" in result.stderr and "index.db" in result.stderr


def test_an_index_moved_aside_is_made_anew_by_the_same_instance(tmp_path: Path) -> None:
    history = RunHistory(tmp_path)
    history.begin("a1", "eval", origin="cli", request={})
    (tmp_path / "index.db").rename(tmp_path / "index.db.old")
    for leftover in tmp_path.glob("index.db-*"):
        leftover.unlink()
    history.begin("b2", "eval", origin="cli", request={})
    assert [run["id"] for run in history.list()[0]] == ["b2"]


def test_a_pass_rate_of_a_run_cut_short_says_of_how_many() -> None:
    from evalrun.history import pass_rate_text

    assert pass_rate_text({"pass_rate": 1.0, "total": 240, "not_run": 214}) == "100.0% of 26"
    assert pass_rate_text({"pass_rate": 0.75, "total": 4, "not_run": 0}) == "75.0%"
    assert pass_rate_text({"pass_rate": 0.0, "total": 4, "not_run": 4}) == "-"  # none ran
    assert pass_rate_text({"pass_rate": None, "total": 7, "not_run": None}) == "-"  # still going
