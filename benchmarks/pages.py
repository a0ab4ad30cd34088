"""The dashboard's weight and speed (issue 12): its first paint with 1,000 runs in the history, and
a 10,000-case run's page, in Debian's chromium on loopback.

    python benchmarks/pages.py [--runs 5]

The history is written straight through ``RunHistory`` (1,000 finished runs, one of them with a
10,000-case results.json), then ``evalrun serve`` serves it. Each page is loaded ``--runs`` times
in a fresh browser page; reported: the first contentful paint, the moment the case table has its
first rows (the run page draws them from the page's own data), and the HTML's size. Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from evalrun.history import RunHistory
from evalrun.schema import SCHEMA_VERSION, CaseResult, Status


def _history(folder: Path, runs: int, big_cases: int) -> str:
    history = RunHistory(folder / ".evalrun" / "runs")
    big = ""
    for n in range(runs):
        run_id = f"{n:012x}"
        history.begin(run_id, "eval", origin="cli", request={}, provider="sim", models=["sim-1"],
                      suites=[f"suite-{n % 5}.jsonl"], total=100)  # fmt: skip
        summary = {"total": 100, "passed": 80 + n % 15, "failed": 20 - n % 15, "errors": 0, "not_run": 0,
                   "pass_rate": (80 + n % 15) / 100, "cases_per_second": 50.0, "wall_seconds": 2.0}  # fmt: skip
        history.finish(run_id, state="completed", exit_code=0, summary=summary, message="")
        big = run_id
    cases = []
    for n in range(big_cases):
        status = Status.PASS if n % 9 else Status.FAIL
        case = CaseResult(
            f"c{n}", f"cat{n % 7}", "sim-1", 0, status, response=f"answer {n} " * 8, latency_ms=20 + n % 300
        )
        cases.append(case.to_dict())
    big_summary: dict[str, Any] = {
        **{"total": big_cases, "passed": big_cases - big_cases // 9, "failed": big_cases // 9, "errors": 0},
        **{"not_run": 0, "pass_rate": 0.889, "wall_seconds": 12.0, "cases_per_second": 833.3, "cache_hits": 0},
        **{"cache_efficiency": 0.0, "avg_concurrency": 9.5, "peak_concurrency": 10, "retries": 0},
        **{"tokens": {"prompt": 1, "completion": 1}, "latency_ms": {"p50": 170.0, "p95": 300.0}},
        **{"by_category": {}, "truncated": 0, "warnings": []},
    }
    run = {"id": big, "provider": "sim", "models": ["sim-1"], "suites": ["big.jsonl"], "started_at": "", "settings": {},
           "state": "completed", "exit_code": 0, "exit_reason": ""}  # fmt: skip
    document = {"schema": SCHEMA_VERSION, "run": run, "summary": big_summary, "cases": cases}
    (history.folder(big) / "results.json").write_text(json.dumps(document))
    return big


_FIRST_PAINT = """() => new Promise(done => {
  const seen = () => {
    const paint = performance.getEntriesByName('first-contentful-paint');
    if (paint.length) done(paint[0].startTime); else requestAnimationFrame(seen);
  };
  seen();
})"""


def _load(browser: Any, url: str, rows: bool) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    response = page.goto(url)
    if rows:
        page.wait_for_selector("#cases tbody tr")
        ready = page.evaluate("performance.now()")
    paint = page.evaluate(_FIRST_PAINT)
    size = len(response.body()) if response is not None else 0
    page.close()
    return {"first_paint_ms": paint, "rows_ms": ready if rows else 0.0, "html_kb": size / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="evalrun-pages-") as name:
        folder = Path(name)
        started = time.perf_counter()
        big = _history(folder, 1_000, 10_000)
        print(f"history of 1,000 runs written in {time.perf_counter() - started:.1f} s", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
        cmd = [sys.executable, "-m", "evalrun", "serve", "--port", "0"]
        server = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, text=True, env=env)
        assert server.stdout is not None
        url = re.search(r"http://[\d.:]+", server.stdout.readline()).group(0)  # type: ignore[union-attr]
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                _load(browser, url + "/", rows=False)  # warm: the server's first page compiles its templates
                dashboard = [_load(browser, url + "/", rows=False) for _ in range(args.runs)]
                detail = [_load(browser, f"{url}/runs/{big}", rows=True) for _ in range(args.runs)]
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = {
        "dashboard_first_paint_ms": round(statistics.median(r["first_paint_ms"] for r in dashboard), 1),
        "dashboard_html_kb": round(statistics.median(r["html_kb"] for r in dashboard), 1),
        "run_10000_first_paint_ms": round(statistics.median(r["first_paint_ms"] for r in detail), 1),
        "run_10000_rows_ms": round(statistics.median(r["rows_ms"] for r in detail), 1),
        "run_10000_html_kb": round(statistics.median(r["html_kb"] for r in detail), 1),
    }
    print(json.dumps(report, indent=1))
    print(f"target (dashboard first paint < 300 ms): {'met' if report['dashboard_first_paint_ms'] < 300 else 'MISSED'}")


if __name__ == "__main__":
    main()
