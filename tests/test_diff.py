"""``evalrun diff`` (issue 12): regressions and fixes between two real runs, and its CI gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.compare import compare, load_results
from evalrun.errors import ConfigError
from evalrun.sim import SimProcess


def _run(tmp_path: Path, cases: list[dict[str, Any]], output: str) -> dict[str, Any]:
    write_suite(tmp_path / "suite.jsonl", cases)
    done = evalrun(tmp_path, "eval", "local", "--suite", "suite.jsonl", "--no-cache", "--min-pass-rate", "0",
                   "--progress", "none", "--output", output)  # fmt: skip
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads((tmp_path / output).read_text())
    return document


def _two_runs(tmp_path: Path, sim: SimProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    local_config(tmp_path / "config.toml", sim)
    cases = arithmetic_cases(6)
    broken = [dict(case) for case in cases]
    broken[1]["expected"], broken[4]["expected"] = "nope", "nope"  # the answers stay; the suite moves
    fixed_before = [dict(case) for case in cases]
    fixed_before[5]["expected"] = "wrong before"
    return _run(tmp_path, fixed_before, "old.json"), _run(tmp_path, broken, "new.json")


def test_regressions_and_fixes_are_the_cases_whose_outcome_changed(tmp_path: Path, sim: SimProcess) -> None:
    old, new = _two_runs(tmp_path, sim)
    comparison = compare(old, new)
    ids = [case["id"] for case in arithmetic_cases(6)]
    assert [(c.id, c.before, c.after) for c in comparison.regressions] == [
        (ids[1], "pass", "fail"),
        (ids[4], "pass", "fail"),
    ]
    assert all("equals: expected 'nope'" in c.reason for c in comparison.regressions)
    assert [(c.id, c.after) for c in comparison.fixes] == [(ids[5], "pass")]
    assert "wrong before" in comparison.fixes[0].reason
    [math] = comparison.categories
    assert (math.before_rate, math.after_rate) == (5 / 6, 4 / 6)
    assert comparison.added == comparison.removed == comparison.still_failing == 0


def test_a_warm_run_compares_its_answers_latency_like_a_cold_one(tmp_path: Path, sim: SimProcess) -> None:
    """A cached answer's latency is its call's, as in the summary's percentiles (not "-")."""
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(6))
    runs = []
    for output in ("cold.json", "warm.json"):
        done = evalrun(tmp_path, "eval", "local", "--suite", "suite.jsonl", "--progress", "none", "--output", output)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads((tmp_path / output).read_text()))
    assert all(case["cached"] for case in runs[1]["cases"])
    [math] = compare(*runs).categories
    assert math.before_latency_ms is not None and math.after_latency_ms == math.before_latency_ms


def test_the_gate_exits_1_on_a_regression_and_0_without(tmp_path: Path, sim: SimProcess) -> None:
    _two_runs(tmp_path, sim)
    gated = evalrun(tmp_path, "diff", "old.json", "new.json", "--fail-on-regression")
    assert gated.returncode == 1 and "2 regressions, 1 fix" in gated.stdout
    assert "Regressions: passed before, not now (2)" in gated.stdout
    assert gated.stdout.strip().splitlines()[-1] == "evalrun: exit 1: 2 regressed (--fail-on-regression)"
    assert evalrun(tmp_path, "diff", "old.json", "new.json").returncode == 0  # a report, not a gate
    assert evalrun(tmp_path, "diff", "new.json", "new.json", "--fail-on-regression").returncode == 0


def test_a_file_that_is_not_results_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text('{"not": "results"}')
    for name, words in (("junk.json", "not an evalrun results file"), ("missing.json", "No such file")):
        done = evalrun(tmp_path, "diff", name, name)
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    (tmp_path / "old-schema.json").write_text('{"schema": 0, "summary": {}, "cases": []}')
    try:
        load_results(tmp_path / "old-schema.json")
    except ConfigError as exc:
        assert "results schema 0" in str(exc)
    else:
        raise AssertionError("an unknown schema was read")
