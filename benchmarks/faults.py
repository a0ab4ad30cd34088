"""The fault run of issue 2: 500 cases while the simulated provider answers 20 % of attempts
with 429 and 5 % with 500. Every case must still end with its correct score, and the retries
must be counted in the summary.

    python benchmarks/faults.py [--cases 500] [--rate-429 0.2] [--rate-500 0.05]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from engine import _suite

from evalrun import Runner
from evalrun.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--rate-429", type=float, default=0.2)
    parser.add_argument("--rate-500", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suite = _suite(Path(tmp), args.cases)
        settings = load_settings(
            env={},
            provider="sim",
            suites=(suite,),
            cache_dir=f"{tmp}/cache",
            concurrency=args.concurrency,
            retries=10,
            retry_base_delay=0.05,
        ).with_provider_options(
            latency_ms=20, jitter_ms=10, rate_429=args.rate_429, rate_500=args.rate_500, retry_after_ms=50, seed=42
        )
        result = Runner(settings).run_sync()
        cases = list(result.cases())
    summary, served = result.summary, result.provider_stats or {}
    expected = {f"b{i:06d}": str(2 * i) for i in range(args.cases)}
    correct = sum(c["status"] == "pass" and c["response"] == expected[c["id"]] for c in cases)
    print(
        json.dumps(
            {
                "cases": args.cases,
                "correct_scores": correct,
                "passed": summary["passed"],
                "errors": summary["errors"],
                "retries_in_summary": summary["retries"],
                "server_requests": served.get("requests"),
                "server_by_status": served.get("by_status"),
                "cases_retried": sum(c["attempts"] > 1 for c in cases),
                "wall_seconds": summary["wall_seconds"],
                "exit_code": int(result.exit_code),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
