"""Rate limits and faults, whole process (issue 8): each fault shape of the simulated provider
against ``evalrun eval``, as a user runs it, medians of ``--runs``.

    python benchmarks/faults.py [--runs 3] [--only clean,capped,...] [--evalrun PATH]

``--evalrun`` runs another installation's ``evalrun`` script against the same simulator (a
checkout of an earlier version, for a before/after table).

The simulated provider runs in a child process of this script, not of evalrun, so the CPU time
measured is evalrun's own (user + sys, start-up included). Each scenario states its target; the
script prints one JSON object per scenario and a table of medians with the verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalrun.sim import SimProcess
from evalrun.sim.suites import arithmetic_cases, write_suite


@dataclass(frozen=True)
class Scenario:
    name: str
    cases: int
    concurrency: int
    server: dict[str, Any]  # the simulated provider's settings (latency, faults, budgets)
    target: str
    wall_limit: float | None = None  # seconds; None: judged against another scenario
    flags: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)


LATENCY = {"latency_ms": 200, "jitter_ms": 0}
SCENARIOS = [
    Scenario(
        "retry-after", 500, 25, {**LATENCY, "rate_429": 0.10, "rate_500": 0.05, "retry_after_ms": 1000},
        "500/500 correct, wall <= 2.0 x ideal (8.0 s)", 8.0,
    ),
    Scenario("clean-2000", 2000, 50, LATENCY, "the clean run the storm is measured against"),
    Scenario(
        "storm", 2000, 50, {**LATENCY, "rate_429": 0.20, "rate_500": 0.05, "retry_after_ms": 1000},
        "0 cases lost, wall <= 3 x clean-2000",
    ),
    Scenario("capped", 500, 50, {**LATENCY, "max_inflight": 20}, "wall <= 1.3 x ideal at 20 in flight (6.5 s)", 6.5),
    Scenario(
        "budget", 300, 50, {**LATENCY, "rpm": 600}, "<= 1 429 after the first response, wall <= 1.15 x 30 s", 34.5
    ),
    Scenario("clean", 1000, 50, LATENCY, "wall <= 1.10 x ideal (4.4 s), <= 1.0 ms CPU per case", 4.4),
]  # fmt: skip


def _evalrun(given: str | None = None) -> list[str]:
    if given:
        return [given]
    script = Path(sys.executable).with_name("evalrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "evalrun"]


def _config(directory: Path, sim: SimProcess, concurrency: int) -> Path:
    path = directory / "config.toml"
    path.write_text(
        f'[run]\nconcurrency = {concurrency}\ncache = "off"\nmin_pass_rate = 0\n\n'
        f'[providers.bench]\nbase_url = "{sim.base_url}"\nmodel = "sim-1"\n'
    )
    return path


def run_once(scenario: Scenario, sim: SimProcess, directory: Path, evalrun: str | None = None) -> dict[str, Any]:
    suite = write_suite(directory / f"{scenario.name}.jsonl", arithmetic_cases(scenario.cases, id_format="b{:06d}"))
    config = _config(directory, sim, scenario.concurrency)
    results, events = directory / "results.json", directory / "events.jsonl"
    defaults = {"rate_429": 0, "rate_500": 0, "rpm": 0, "tpm": 0, "max_inflight": 0, "seed": 0}
    sim.control(**{**defaults, **scenario.server})
    sim.reset_stats()
    command = [
        *_evalrun(evalrun),
        "eval",
        "bench",
        "--config",
        str(config),
        "--suite",
        str(suite),
        "--progress",
        "none",
    ]
    command += ["--output", str(results), "--events", str(events), *scenario.flags]
    results.unlink(missing_ok=True)
    events.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if not results.exists():
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{scenario.name}: evalrun exited {process.returncode} without results: {error}")
    document = json.loads(results.read_text())
    served = sim.stats()
    names = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    limits = [json.loads(line)["limit"] for line in events.read_text().splitlines() if '"concurrency_changed"' in line]
    summary = document["summary"]
    cases = document["cases"]
    correct = sum(case["status"] == "pass" and case["response"] == str(2 * int(case["id"][1:])) for case in cases)
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "scenario": scenario.name,
        "exit_code": process.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_case": round(cpu * 1000 / scenario.cases, 3),
        "correct": correct,
        "errors": summary["errors"],
        "not_run": summary["not_run"],
        "retries": summary["retries"],
        "server_requests": served["requests"],
        "server_429": served["by_status"].get("429", 0),
        "rate_limited_after_first_response": served.get("rate_limited_after_first_response"),
        "concurrency_changes": names.count("concurrency_changed"),
        "lowest_limit": min(limits, default=scenario.concurrency),
    }


def _verdict(scenario: Scenario, median: dict[str, float], clean_2000: float | None) -> bool:
    whole = median["correct"] == scenario.cases and median["errors"] == 0 and median["not_run"] == 0
    if scenario.name == "storm":
        return whole and clean_2000 is not None and median["wall_s"] <= 3 * clean_2000
    if scenario.name == "budget":
        return whole and median["wall_s"] <= 34.5 and (median["rate_limited_after_first_response"] or 0) <= 1
    if scenario.name == "clean":
        return whole and median["wall_s"] <= 4.4 and median["cpu_ms_per_case"] <= 1.0
    return whole and (scenario.wall_limit is None or median["wall_s"] <= scenario.wall_limit)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="Comma-separated scenario names.")
    parser.add_argument("--evalrun", default=None, help="The evalrun script to run (default: this one's).")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only.split(",")]
    medians: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, SimProcess() as sim:
        for scenario in chosen:
            runs = [run_once(scenario, sim, Path(tmp), args.evalrun) for _ in range(args.runs)]
            for record in runs:
                print(json.dumps(record), flush=True)
            keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and v is not None]
            medians[scenario.name] = {k: statistics.median(r[k] for r in runs) for k in keys}
    clean_2000 = medians.get("clean-2000", {}).get("wall_s")
    print(f"\n{'scenario':<12} {'wall s':>7} {'cpu ms/case':>11} {'correct':>8} {'errors':>6} {'429s':>6} "
          f"{'late 429':>8} {'lowest limit':>12}  verdict  target")  # fmt: skip
    for scenario in chosen:
        m = medians[scenario.name]
        late = m.get("rate_limited_after_first_response", "-")
        ok = "ok" if _verdict(scenario, m, clean_2000) else "MISSED"
        print(
            f"{scenario.name:<12} {m['wall_s']:>7.2f} {m['cpu_ms_per_case']:>11.3f} {m['correct']:>8.0f} "
            f"{m['errors']:>6.0f} {m['server_429']:>6.0f} {late!s:>8} {m['lowest_limit']:>12.0f}  {ok:<7}  "
            f"{scenario.target}"
        )


if __name__ == "__main__":
    main()
