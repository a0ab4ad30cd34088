"""The engine at scale (issue 4): flat memory, and warm-cache throughput end to end.

    python benchmarks/scale.py [--small 10000] [--large 100000] [--concurrency 200]

Runs ``evalrun eval sim`` as a separate process (0 ms latency), the way a user would, and reads
that process's peak RSS from the kernel (``wait4``): each size without a cache and with a cold
one. Then runs the large suite again on its warm cache and times it from process start to exit,
``--output`` included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalrun.sim.suites import arithmetic_cases, write_suite


def _suite(folder: Path, cases: int) -> Path:
    categories = [f"cat{k}" for k in range(8)]
    return write_suite(folder / f"suite-{cases}.jsonl", arithmetic_cases(cases, categories, "c{:07d}"))


def _evalrun(folder: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``evalrun eval`` process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "evalrun", "eval", "sim", *args],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    assert os.waitstatus_to_exitcode(status) == 0, f"evalrun failed: {args}"
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.toml").write_text("[providers.sim]\nlatency_ms = 0\njitter_ms = 0\n")
        common = ("--concurrency", str(args.concurrency), "--progress", "plain", "--output", "results.json")
        report: dict[str, object] = {"concurrency": args.concurrency}
        rss: dict[str, float] = {}
        for size in (args.small, args.large):
            suite = str(_suite(folder, size))
            for mode, flags in (("no_cache", ("--no-cache",)), ("cold_cache", ("--cache-dir", f"cache-{size}"))):
                wall, peak = _evalrun(folder, "--suite", suite, *flags, *common)
                rss[f"{mode}_{size}"] = peak
                report[f"{mode}_{size}"] = {
                    "wall_seconds": round(wall, 2),
                    "peak_rss_mb": round(peak, 1),
                    "cases_per_second": round(size / wall, 1),
                }
        large = str(folder / f"suite-{args.large}.jsonl")
        warm_wall, warm_rss = _evalrun(folder, "--suite", large, "--cache-dir", f"cache-{args.large}", *common)
        summary = json.loads((folder / "results.json").read_text())["summary"]
        assert summary["cache_hits"] == args.large, summary
        report[f"warm_cache_{args.large}"] = {
            "wall_seconds": round(warm_wall, 2),
            "peak_rss_mb": round(warm_rss, 1),
            "cases_per_second_end_to_end": round(args.large / warm_wall, 1),
            "engine_cases_per_second": summary["cases_per_second"],
        }
        for mode in ("no_cache", "cold_cache"):
            report[f"rss_{mode}_large_over_small"] = round(rss[f"{mode}_{args.large}"] / rss[f"{mode}_{args.small}"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
