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
