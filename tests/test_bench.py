from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalrun.bench import BenchSettings, run_bench


def test_bench_measures_every_mode_against_the_sequential_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = run_bench(BenchSettings(cases=20, latency_ms=30, concurrency=5, repeats=1))
    rows = {row.mode: row for row in report.rows}
    assert list(rows) == [
        "sequential, no cache",
        "concurrent, no cache",
        "concurrent, cold cache",
        "concurrent, warm cache",
    ]
    before = rows["sequential, no cache"]
    assert before.speedup == 1.0 and before.concurrency == 1 and before.ideal_seconds == 0.6
    assert rows["concurrent, no cache"].speedup > 2 and rows["concurrent, no cache"].ideal_seconds == 0.12
    assert rows["concurrent, cold cache"].cache_hits == 0
    warm = rows["concurrent, warm cache"]
    assert warm.cache_hits == 20 and warm.efficiency is None and warm.speedup > rows["concurrent, cold cache"].speedup
    assert all(row.peak_rss_mb and row.peak_rss_mb > 10 for row in report.rows)
    assert "Concurrency 5 ran" in report.verdict and "warm cache" in report.verdict
    concurrent = rows["concurrent, no cache"]
    assert concurrent.efficiency is not None
    assert f"at {concurrent.efficiency:.0%} efficiency" in report.verdict  # the column's figure, not another


def test_bench_cli_compare_cache_plain_table_and_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalrun",
            "bench",
            "--compare-cache",
            "--cases",
            "10",
            "--latency-ms",
            "20",
            "--concurrency",
            "5",
            "--repeats",
            "2",
            "--output",
            "bench.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout and "\x1b[" not in done.stderr
    assert "┃ mode" in done.stdout  # boxes, as eval draws its tables
    finished = [line for line in done.stderr.splitlines() if line.startswith("evalrun bench: [")]
    assert len(finished) == 6 and finished[0].startswith("evalrun bench: [1/6] sequential, no cache, run 1: 10 cases")
    assert "sequential, no cache" in done.stdout and "concurrent, warm cache" in done.stdout
    assert "concurrent, no cache" not in done.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [row["mode"] for row in report["rows"]] == [
        "sequential, no cache",
        "concurrent, cold cache",
        "concurrent, warm cache",
    ]
    assert all(len(row["walls"]) == 2 for row in report["rows"])
    assert report["machine"]["cpus"] and report["verdict"]


def test_calls_without_latency_have_no_efficiency_and_rates_come_unrounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = run_bench(BenchSettings(cases=20, latency_ms=0, concurrency=5, repeats=1))
    row = next(row for row in report.rows if row.mode == "concurrent, no cache")
    assert row.ideal_seconds is None and row.efficiency is None and "efficiency" not in report.verdict
    assert row.cases_per_second == round(20 / row.walls[0], 1)  # not from a wall rounded to the millisecond
