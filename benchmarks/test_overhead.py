"""The overhead of ``evalrun test`` over plain ``python -m pytest -q`` (issue 3).

    python benchmarks/test_overhead.py [--tests 2000] [--runs 5]

A fixture project of trivial tests is made in a temporary folder; both commands run there,
alternately, from process start to exit, output captured (as in CI). Medians, and their ratio.
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


def _project(root: Path, tests: int) -> None:
    per_file = 100
    for start in range(0, tests, per_file):
        numbers = range(start, min(tests, start + per_file))
        body = "".join(f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n\n" for i in numbers)
        (root / f"test_m{start // per_file:03d}.py").write_text(body)


def _seconds(command: list[str], root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=root, capture_output=True, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    plain = [sys.executable, "-m", "pytest", "-q"]
    ours = [sys.executable, "-m", "evalrun", "test", "--output", "results.json"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _project(root, args.tests)
        _seconds(plain, root)  # warm the file cache and __pycache__ for both
        pytest_times, evalrun_times = [], []
        for _ in range(args.runs):
            pytest_times.append(_seconds(plain, root))
            evalrun_times.append(_seconds(ours, root))
        assert json.loads((root / "results.json").read_text())["summary"]["passed"] == args.tests
    report = {
        "tests": args.tests,
        "runs": args.runs,
        "pytest_seconds_median": round(statistics.median(pytest_times), 3),
        "evalrun_test_seconds_median": round(statistics.median(evalrun_times), 3),
        "ratio": round(statistics.median(evalrun_times) / statistics.median(pytest_times), 3),
        "pytest_seconds_all": [round(t, 3) for t in pytest_times],
        "evalrun_test_seconds_all": [round(t, 3) for t in evalrun_times],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
