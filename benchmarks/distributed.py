"""Several runners, one key (issue 13): four evalrun processes, each with its own disk and 300 cases
of its own, against one simulated key's budget, sharing one Redis; then a fifth runner with a fresh
disk over all their cases.

    python benchmarks/distributed.py [--alone]

``--alone`` runs the same four runners without Redis (each paces to the key's budget by itself): the
contrast the shared budget is for.

The issue's budget is 600 requests a minute (1,200 requests: 2 minutes of run); the scaled
equivalent used here is 6,000 a minute, ten times the rate, so the windows are ten times shorter:
at most 600 requests in any 6 s (the simulator counts them, sliding), for an ideal of 12 s. Needs
Debian's redis-server. Each runner's profile states the key's budget (``rpm = 6000``), as a user
who knows their key's limit writes it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evalrun.sim import SimProcess
from evalrun.sim.suites import arithmetic_cases, write_suite

RUNNERS, CASES, RPM, WINDOW = 4, 300, 6_000, "6s"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _evalrun(folder: Path, *args: str) -> subprocess.Popen[str]:
    script = Path(sys.executable).with_name("evalrun")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "evalrun"]
    return subprocess.Popen([*command, "eval", "bench", "--progress", "none", *args], cwd=folder, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _summary(folder: Path, name: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((folder / name).read_text())["summary"]
    return summary


def main() -> None:
    alone = "--alone" in sys.argv[1:]
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("needs Debian's redis-server (apt-get install redis-server)")
    port = _free_port()
    redis = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.3)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with tempfile.TemporaryDirectory(prefix="evalrun-distributed-") as name, SimProcess(latency_ms=50) as sim:
            folder = Path(name)
            (folder / "config.toml").write_text(
                "[run]\nconcurrency = 10\nmin_pass_rate = 0\n" + ("" if alone else f'cache_url = "{url}"\n') + "\n"
                f'[providers.bench]\nbase_url = "{sim.base_url}"\nmodel = "sim-1"\nrpm = {RPM}\n'
            )
            everything = list(
                arithmetic_cases(RUNNERS * CASES, ("math",), "d{:06d}")
            )  # distinct prompts: no shared answers
            for k in range(RUNNERS):
                write_suite(folder / f"suite-{k}.jsonl", everything[k * CASES : (k + 1) * CASES])
            write_suite(folder / "all.jsonl", everything)
            sim.control(rpm=RPM, latency_ms=50)
            sim.reset_stats()
            started = time.perf_counter()
            runners = [
                _evalrun(folder, "--suite", f"suite-{k}.jsonl", "--cache-dir", f"disk-{k}", "--output", f"r{k}.json")
                for k in range(RUNNERS)
            ]
            codes = [runner.wait() for runner in runners]
            wall = time.perf_counter() - started
            served = sim.stats()
            summaries = [_summary(folder, f"r{k}.json") for k in range(RUNNERS)]
            ideal = RUNNERS * CASES / (RPM / 60)
            shared = {
                "runners": RUNNERS,
                "cases_each": CASES,
                "budget_rpm": RPM,
                "exit_codes": codes,
                "passed": sum(s["passed"] for s in summaries),
                "requests_served": served["requests"],
                "responses_429": served["by_status"].get("429", 0),
                f"busiest_{WINDOW}_window": served["busiest"][WINDOW],
                "window_budget": int(RPM / 60 * int(WINDOW[:-1])),
                "wall_s": round(wall, 2),
                "ideal_s": ideal,
                "wall_over_ideal": round(wall / ideal, 3),
            }
            print(json.dumps(shared, indent=1), flush=True)
            sim.reset_stats()
            fresh = _evalrun(folder, "--suite", "all.jsonl", "--cache-dir", "disk-fresh", "--output", "fresh.json")
            fresh_code = fresh.wait()
            warm = _summary(folder, "fresh.json")
            second = {
                "exit_code": fresh_code,
                "cases": warm["total"],
                "cache_hits": warm["cache_hits"],
                "requests_served": sim.stats()["requests"],
                "cases_per_second": warm["cases_per_second"],
            }
            print(json.dumps(second, indent=1))
    finally:
        redis.kill()
        redis.wait()
    ok = (
        shared[f"busiest_{WINDOW}_window"] <= shared["window_budget"]
        and shared["responses_429"] <= 1
        and shared["wall_over_ideal"] <= 1.15
        and second["cache_hits"] == second["cases"]
        and second["cases_per_second"] >= 5000
    )
    print(f"targets (window <= budget, <= 1 429, wall <= 1.15 x ideal, 100 % hits at >= 5,000 cases/s): "
          f"{'met' if ok else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
