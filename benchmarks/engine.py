"""Engine benchmarks of issue 2: cold run vs the ideal, warm-cache throughput, CLI start-up.

    python benchmarks/engine.py [--runs 5]

Each figure is the median of ``--runs`` runs in one process, so ratios compare like with like on
a noisy machine. Engine time is the run's own wall time (first task to last result), which
excludes interpreter start-up and the simulated server's start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalrun import Runner
from evalrun.settings import load_settings
from evalrun.sim.suites import arithmetic_cases, write_suite


def _suite(directory: Path, cases: int) -> str:
    categories = [f"cat{k}" for k in range(4)]
    return str(write_suite(directory / f"bench-{cases}.jsonl", arithmetic_cases(cases, categories, "b{:06d}")))


def _run(suite: str, cache_dir: str, latency_ms: float, concurrency: int, cache: str) -> dict[str, float]:
    settings = load_settings(
        env={}, provider="sim", suites=(suite,), cache_dir=cache_dir, concurrency=concurrency, cache=cache
    ).with_provider_options(latency_ms=latency_ms, jitter_ms=0)
    summary = Runner(settings).run_sync().summary
    assert summary["passed"] == summary["total"], summary
    return {"wall": summary["wall_seconds"], "rate": summary["cases_per_second"], "hits": summary["cache_hits"]}


def _help_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "evalrun", "--help"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    ideal = -(-args.cases // args.concurrency) * args.latency_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        suite = _suite(Path(tmp), args.cases)
        cold = [_run(suite, f"{tmp}/cold{i}", args.latency_ms, args.concurrency, "on") for i in range(args.runs)]
        warm = [_run(suite, f"{tmp}/cold0", args.latency_ms, args.concurrency, "on") for _ in range(args.runs)]
        flat_out = [_run(suite, f"{tmp}/x", 0, 100, "off") for _ in range(args.runs)]
    helps = [_help_seconds() for _ in range(args.runs)]
    cold_wall = statistics.median(r["wall"] for r in cold)
    report = {
        "cases": args.cases,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "ideal_seconds": ideal,
        "cold_seconds_median": cold_wall,
        "cold_vs_ideal": round(cold_wall / ideal, 3),
        "cold_seconds_all": [r["wall"] for r in cold],
        "warm_cases_per_second_median": statistics.median(r["rate"] for r in warm),
        "warm_cases_per_second_all": [r["rate"] for r in warm],
        "warm_all_hits": all(r["hits"] == args.cases for r in warm),
        "sim_0ms_no_cache_cases_per_second_median": statistics.median(r["rate"] for r in flat_out),
        "help_seconds_median": round(statistics.median(helps), 3),
        "help_seconds_all": [round(h, 3) for h in helps],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
