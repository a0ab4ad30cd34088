"""``--shard I/N`` and ``evalrun merge`` (issue 13): stable shares by id, recombined into what one run
would have written."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.plan import shard_of
from evalrun.sim import SimProcess

COUNTS = ("total", "passed", "failed", "errors", "not_run", "pass_rate", "retries", "truncated", "cache_hits")


def _cases() -> list[dict[str, Any]]:
    wrong = [{"id": f"w{n}", "category": "text", "prompt": f"say {n}", "expected": "never"} for n in range(7)]
    return arithmetic_cases(53) + wrong


def test_a_case_lands_in_the_same_shard_whatever_the_order_and_shards_partition_the_cases() -> None:
    ids = [case["id"] for case in _cases()]
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    assert {i: shard_of(i, 4) for i in ids} == {i: shard_of(i, 4) for i in shuffled}
    sizes = [sum(shard_of(i, 4) == k for i in ids) for k in (1, 2, 3, 4)]
    assert sum(sizes) == len(ids) and min(sizes) >= 5  # every case in exactly one, none empty
    assert shard_of("case-1", 4) == 3  # stable across processes and machines (sha256, not hash())


def _run(folder: Path, output: str, *args: str) -> dict[str, Any]:
    done = evalrun(folder, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--min-pass-rate", "0.5",
                   "--progress", "none", "--output", output, *args)  # fmt: skip
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads((folder / output).read_text())
    return document


def test_four_shards_merged_equal_one_run_case_for_case_and_in_every_count(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=5, jitter_ms=4)
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases())
    whole = _run(tmp_path, "whole.json")
    shards = [_run(tmp_path, f"shard-{k}.json", "--shard", f"{k}/4") for k in (1, 2, 3, 4)]
    assert sorted(len(s["cases"]) for s in shards) != [60, 0, 0, 0]  # the work was shared
    merged = evalrun(tmp_path, "merge", *[f"shard-{k}.json" for k in (1, 2, 3, 4)], "-o", "all.json",
                     "--junit", "all.xml", "--summary-md", "all.md")  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    document = json.loads((tmp_path / "all.json").read_text())

    def outcome(case: dict[str, Any]) -> tuple[Any, ...]:
        return case["id"], case["status"], case["response"], json.dumps(case["assertions"])

    assert sorted(map(outcome, document["cases"])) == sorted(map(outcome, whole["cases"]))
    for name in COUNTS:
        assert document["summary"][name] == whole["summary"][name], name
    assert document["summary"]["by_category"] == whole["summary"]["by_category"]
    assert document["summary"]["tokens"] == whole["summary"]["tokens"]
    assert document["run"]["exit_code"] == 0 and document["run"]["state"] == "completed"
    # The percentiles come from the shards' histograms added up: within 1 % of the cases' own.
    latencies = sorted(case["latency_ms"] for case in document["cases"])
    for fraction, name in ((0.5, "p50"), (0.95, "p95")):
        exact = latencies[max(1, math.ceil(fraction * len(latencies))) - 1]
        assert abs(document["summary"]["latency_ms"][name] - exact) <= 0.011 * exact + 0.05
    assert (tmp_path / "all.xml").read_text().count("<testcase") == 60
    assert f"{whole['summary']['pass_rate']:.1%} pass rate" in (tmp_path / "all.md").read_text()


def test_overlapping_shards_are_refused_in_one_line(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases())
    _run(tmp_path, "one.json", "--shard", "1/2")
    refused = evalrun(tmp_path, "merge", "one.json", "one.json", "-o", "all.json")
    assert refused.returncode == 2 and "shards must not overlap" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "all.json").exists()
    bad = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--shard", "5/4")
    assert bad.returncode == 2 and "expected I/N with 1 <= I <= N" in bad.stderr


def test_an_empty_shard_passes_and_a_merge_missing_a_shard_or_failing_says_so(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases()[:2])  # two cases, three shards: one is empty
    codes = []
    for k in (1, 2, 3):
        done = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--progress", "none",
                       "--shard", f"{k}/3", "--output", f"s{k}.json")  # fmt: skip
        codes.append(done.returncode)
    assert codes == [0, 0, 0]
    sizes = sorted(len(json.loads((tmp_path / f"s{k}.json").read_text())["cases"]) for k in (1, 2, 3))
    assert sizes[0] == 0 and sum(sizes) == 2  # at least one shard had nothing to run, and passed
    missing = evalrun(tmp_path, "merge", "s1.json", "s3.json", "-o", "all.json")
    assert missing.returncode == 2 and "shard 2/3 missing" in missing.stderr
    whole = evalrun(tmp_path, "merge", "s1.json", "s2.json", "s3.json", "-o", "all.json")
    assert whole.returncode == 0 and "2 cases" in whole.stdout
    write_suite(tmp_path / "s.jsonl", _cases()[-3:])  # cases the model gets wrong: below --min-pass-rate
    for k in (1, 2):
        evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--no-cache", "--progress", "none",
                "--shard", f"{k}/2", "--output", f"f{k}.json")  # fmt: skip
    failing = evalrun(tmp_path, "merge", "f1.json", "f2.json", "-o", "f.json")
    assert failing.returncode == 1 and "exit 1: pass rate 0.0% of all 3 cases" in failing.stdout
    document = json.loads((tmp_path / "f.json").read_text())
    assert document["run"]["exit_code"] == 1 and document["run"]["state"] == "completed"
    legacy = json.loads((tmp_path / "f1.json").read_text())
    del legacy["summary"]["latency_histogram"]
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    old = evalrun(tmp_path, "merge", "old.json", "f2.json", "-o", "x.json")
    assert old.returncode == 2 and "no latency_histogram" in old.stderr and "Traceback" not in old.stderr


def _shard(folder: Path, output: str, *args: str) -> dict[str, Any]:
    """A run's results whatever its verdict (a shard may pass or fail its threshold alone)."""
    done = evalrun(folder, "eval", "local", "--no-cache", "--progress", "none", "--output", output, *args)
    assert done.returncode in (0, 1), done.stderr
    document: dict[str, Any] = json.loads((folder / output).read_text())
    return document


def _refused(folder: Path, *files: str) -> str:
    """``evalrun merge`` of ``files`` in both orders: refused alike, in one line, nothing written."""
    lines = set()
    for order in (files, files[::-1]):
        done = evalrun(folder, "merge", *order, "-o", "all.json")
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert not (folder / "all.json").exists()
        lines.add(done.stderr.strip())
    assert len(lines) == 1  # the same line whatever the order
    return lines.pop()


def test_shards_held_to_other_thresholds_are_refused_whatever_the_order(tmp_path: Path, sim: SimProcess) -> None:
    """The merge took the first file's --min-pass-rate: g1 h2 exited 1, h2 g1 exited 0."""
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases())
    _shard(tmp_path, "g1.json", "--suite", "s.jsonl", "--shard", "1/2", "--min-pass-rate", "0.9")
    _shard(tmp_path, "h2.json", "--suite", "s.jsonl", "--shard", "2/2", "--min-pass-rate", "0.1")
    line = _refused(tmp_path, "g1.json", "h2.json")
    assert "g1.json and h2.json are not shards of one run: min_pass_rate 0.9 vs 0.1" in line
    _shard(tmp_path, "h3.json", "--suite", "s.jsonl", "--shard", "2/2", "--min-pass-rate", "0.1", "--max-errors", "5")
    assert "min_pass_rate 0.9 vs 0.1; max_errors 0 vs 5" in _refused(tmp_path, "g1.json", "h3.json")
    # What is a runner's own may differ: its output, concurrency, retries, timeouts, the cache.
    _shard(tmp_path, "g2.json", "--suite", "s.jsonl", "--shard", "2/2", "--min-pass-rate", "0.9",
           "--concurrency", "3", "--retries", "1", "--request-timeout", "30", "--junit", "g2.xml")  # fmt: skip
    codes = set()
    for order in (("g1.json", "g2.json"), ("g2.json", "g1.json")):
        merged = evalrun(tmp_path, "merge", *order, "-o", "all.json")
        assert merged.returncode in (0, 1), merged.stderr
        document = json.loads((tmp_path / "all.json").read_text())
        codes.add((merged.returncode, document["run"]["exit_reason"], json.dumps(document["cases"])))
    assert len(codes) == 1  # the same verdict and cases, in the same order, whichever file comes first
    assert document["run"]["settings"]["min_pass_rate"] == 0.9 and document["summary"]["total"] == 60


def test_shards_of_other_models_are_refused(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases()[:8])
    _shard(tmp_path, "m1.json", "--suite", "s.jsonl", "--shard", "1/2", "-m", "other-model")
    _shard(tmp_path, "m2.json", "--suite", "s.jsonl", "--shard", "2/2")
    line = _refused(tmp_path, "m1.json", "m2.json")
    assert 'm1.json and m2.json are not shards of one run: models ["other-model"] vs ["sim-1"]' in line


def test_whole_runs_of_different_suites_are_not_merged(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases()[:5])
    write_suite(tmp_path / "t.jsonl", arithmetic_cases(4, "other"))
    _shard(tmp_path, "s.json", "--suite", "s.jsonl")
    _shard(tmp_path, "t.json", "--suite", "t.jsonl")
    assert 'suites ["s.jsonl"] vs ["t.jsonl"]' in _refused(tmp_path, "s.json", "t.json")
    # The same run twice is no merge either, even when its cases cannot be matched up one by one.
    _shard(tmp_path, "s2.json", "--suite", "s.jsonl")
    assert "s.json and s2.json are both whole runs (no --shard): shards must not overlap" in _refused(
        tmp_path, "s.json", "s2.json"
    )


def test_shards_of_different_splits_are_refused_as_such_not_as_overlapping(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", _cases())
    _shard(tmp_path, "shard-1.json", "--suite", "s.jsonl", "--shard", "1/3")
    _shard(tmp_path, "shard-2.json", "--suite", "s.jsonl", "--shard", "2/2")
    line = _refused(tmp_path, "shard-1.json", "shard-2.json")
    assert "shard-1.json and shard-2.json are not shards of one run: --shard 1/3 vs --shard 2/2" in line
    assert "overlap" not in line
    _shard(tmp_path, "whole.json", "--suite", "s.jsonl")
    assert "whole.json and shard-1.json are not shards of one run: no --shard vs --shard 1/3" in _refused(
        tmp_path, "shard-1.json", "whole.json"
    )


def test_shards_that_name_their_suite_by_other_paths_merge(tmp_path: Path, sim: SimProcess) -> None:
    """A CI matrix names one suite by each machine's own path (its checkout's folder)."""
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(12))
    for shard, suite in (("1/2", "s.jsonl"), ("2/2", str(tmp_path / "s.jsonl"))):
        done = evalrun(tmp_path, "eval", "local", "--suite", suite, "--no-cache", "--progress", "none",
                       "--shard", shard, "--output", f"shard-{shard[0]}.json")  # fmt: skip
        assert done.returncode == 0, done.stderr
    merged = evalrun(tmp_path, "merge", "shard-1.json", "shard-2.json", "-o", "all.json")
    assert merged.returncode == 0, merged.stderr
    assert json.loads((tmp_path / "all.json").read_text())["summary"]["total"] == 12
