"""What a person reads on the console (issue 10): the version, a selection that takes nothing,
and counts in the number they take."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from helpers import arithmetic_cases, evalrun, local_config, write_suite

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
