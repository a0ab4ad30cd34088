"""The dashboard and the HTML report in a real browser (issue 12): Debian's chromium, driven by
Playwright with ``executable_path`` (nothing downloads a browser). Screenshots of each page are
saved under ``tests/artifacts/`` (``EVALRUN_ARTIFACTS`` to put them elsewhere)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServeProcess, evalrun, local_config, write_suite

from evalrun.sim import SimProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("EVALRUN_ARTIFACTS") or Path(__file__).parent / "artifacts")

sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python (pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)")


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _cases() -> list[dict[str, Any]]:
    """Arithmetic the simulated model answers, and two it gets wrong: failures to filter."""
    right = [
        {"id": f"add-{n}", "category": "math", "prompt": f"what is {n}+{n}", "expected": str(2 * n)} for n in range(14)
    ]
    wrong = [{"id": f"cap-{n}", "category": "text", "prompt": f"say {n}", "expected": "never"} for n in range(2)]
    return right + wrong


@pytest.fixture
def served(tmp_path: Path, sim: SimProcess) -> Iterator[ServeProcess]:
    local_config(tmp_path / "config.toml", sim)
    (tmp_path / "config.toml").write_text(
        '[run]\nprovider = "local"\nmin_pass_rate = 0\n\n' + (tmp_path / "config.toml").read_text()
    )
    write_suite(tmp_path / "suite.jsonl", _cases())
    server = ServeProcess(tmp_path)
    yield server
    server.stop()


def test_a_run_started_from_the_form_is_watched_live_opened_filtered_and_compared(
    tmp_path: Path, sim: SimProcess, served: ServeProcess, browser: Any
) -> None:
    sim.control(latency_ms=150)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(served.url + "/")
    _shot(page, "dashboard-empty")
    page.select_option("select[name=provider]", "local")
    page.fill("input[name=suites]", "suite.jsonl")
    page.fill("input[name=concurrency]", "2")
    page.click("#start-eval button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{12}$"))
    first = page.url.rsplit("/", 1)[1]
    # Live: the bar moves with the run's events, then the page shows the run's detail.
    page.wait_for_function(
        "() => { const p = document.querySelector('.live progress'); return p && p.value > 0 && p.value < 100; }"
    )
    assert page.inner_text("h1 .state") == page.inner_text(".live [data-f=status]")  # one state, said once
    _shot(page, "live-run")
    page.wait_for_function("() => { const p = document.querySelector('.live progress'); return p && p.value >= 100; }")
    assert page.inner_text(".live [data-f=status]") in ("completed", "running")  # the summary's, or the last step's
    page.wait_for_selector("#cases tbody tr", timeout=30_000)
    assert page.inner_text("#f-count") == "16 of 16 cases"
    page.select_option("#f-status", "failing")
    assert page.inner_text("#f-count") == "2 of 16 cases"
    assert set(page.locator("#cases tbody td.status").all_inner_texts()) == {"fail"}
    page.locator("#cases tbody tr").first.focus()
    page.keyboard.press("Enter")  # the keyboard opens a case as a click does
    dialog = page.locator("dialog#case")
    assert dialog.is_visible() and "equals: expected 'never'" in dialog.inner_text()
    assert "Messages" in dialog.inner_text() and "say 0" in dialog.inner_text()  # the prompt, from the suite
    _shot(page, "run-detail")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()

    # A later run where one case now fails: the comparison names it.
    changed = _cases()
    changed[3]["expected"] = "something else"
    write_suite(tmp_path / "suite.jsonl", changed)
    body = {"provider": "local", "suites": ["suite.jsonl"]}
    started = httpx.post(f"{served.url}/api/results/run-evaluations", json=body, timeout=30).json()
    page.goto(f"{served.url}/runs/{started['run_id']}")
    page.wait_for_selector("#cases tbody tr", timeout=30_000)
    page.select_option("select[name=a]", first)
    page.click("form[action='/compare'] button")
    page.wait_for_url(re.compile(r"/compare\?"))
    assert "Regressions: pass → fail (1)" in page.inner_text("main")
    assert "add-3" in page.locator("table[aria-label^='Regressions']").inner_text()
    _shot(page, "compare")
    assert errors == []


def test_the_report_opens_from_a_file_with_no_network_and_no_console_error(
    tmp_path: Path, sim: SimProcess, browser: Any
) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", _cases())
    ran = evalrun(tmp_path, "eval", "local", "--suite", "suite.jsonl", "--min-pass-rate", "0", "--progress", "none",
                  "--output", "results.json", "--html", "report.html")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    made = evalrun(tmp_path, "report", "results.json", "-o", "again.html")

    def data(name: str) -> str:
        return re.search(r'id="cases-data">(.*?)</script>', (tmp_path / name).read_text(), re.S).group(1)  # type: ignore[union-attr]

    assert made.returncode == 0 and data("again.html") == data("report.html")  # the same run, the same cases
    assert "Calls in flight" in (tmp_path / "report.html").read_text()  # --html had the run's events
    for scheme, width, name in (("light", 1280, "report"), ("dark", 390, "report-phone-dark")):
        _open_report(browser, tmp_path / "report.html", scheme, width, name)


def _open_report(browser: Any, report: Path, scheme: str, width: int, name: str) -> None:
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(report.as_uri())
    page.wait_for_selector("#cases tbody tr")
    page.fill("#f-text", "cap-1")
    assert page.inner_text("#f-count") == "1 of 16 cases"
    _shot(page, name)
    assert requests == [report.as_uri()] and errors == []  # nothing fetched, nothing broken
    page.close()


def test_a_ten_thousand_case_report_stays_small_and_cuts_long_answers(tmp_path: Path) -> None:
    from evalrun.pages.render import render_report
    from evalrun.schema import SCHEMA_VERSION, CaseResult, Status

    cases = []
    for n in range(10_000):
        status = Status.PASS if n % 9 else Status.FAIL
        answer = "x" * (60 if n else 50_000)
        case = CaseResult(f"c{n}", f"cat{n % 7}", "m", 0, status, response=answer, latency_ms=20 + n % 300)
        cases.append(case.to_dict())
    summary = {
        **{"total": 10_000, "passed": 8_888, "failed": 1_112, "errors": 0, "not_run": 0, "pass_rate": 0.8888},
        **{"wall_seconds": 12.0, "cases_per_second": 833.3, "cache_hits": 0, "cache_efficiency": 0.0},
        **{"avg_concurrency": 9.5, "peak_concurrency": 10, "retries": 0, "tokens": {"prompt": 1, "completion": 1}},
        **{"latency_ms": {"p50": 170.0, "p95": 300.0}, "by_category": {}, "truncated": 0, "warnings": []},
    }
    run = {
        "id": "0123456789ab",
        "provider": "p",
        "models": ["m"],
        "suites": ["s.jsonl"],
        "started_at": "",
        "settings": {},
    }
    page = render_report({"schema": SCHEMA_VERSION, "run": run, "summary": summary, "cases": cases})
    assert len(page.encode()) < 10 * 1024 * 1024
    data = json.loads(re.search(r'id="cases-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert len(data[0]["response"]) == 2_000 and data[0]["cut"] is True  # cut in the table...
    answers = json.loads(re.search(r'id="answers-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert len(answers["0"]) == 50_000  # ...whole a click away
