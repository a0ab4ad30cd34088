"""The dashboard: runs live, starting one, the history, a run's detail, two runs compared.

Server-rendered pages (``pages/templates``) over what the API serves: the history's rows, the
sessions' progress, the runs' results files. The pages' scripts use the API itself (the start
forms post to the original endpoints, live runs follow ``/api/runs/{id}/events``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from ..compare import compare, load_results
from ..errors import ConfigError
from ..history import RunHistory, pass_rate_text
from ..pages.render import chart_events, render_page, run_view, sparkline_svg, suite_messages
from ..recording import RESULTS_FILE
from ..settings import load_settings
from .sessions import SessionBook, known_run

__all__ = ["add_pages"]

_TREND_RUNS = 20  # finished runs of a suite drawn in its pass-rate sparkline


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else ""


def _shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row with what the tables print of it."""
    duration, speed = row.get("duration_s"), row.get("cases_per_second")
    return {
        **row,
        "started": _when(row.get("started_at")),
        "pass_rate_text": pass_rate_text(row),
        "duration_text": "-" if duration is None else f"{duration:,.1f} s",
        "rate_text": "-" if speed is None else f"{speed:,.1f}",
    }


def _trends(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Per suite (as a run named them), its finished eval runs' pass rates, oldest first."""
    by_suite: dict[str, list[float]] = {}
    for row in reversed(rows):  # the history lists newest first
        if row["kind"] == "eval" and row.get("pass_rate") is not None and row["state"] != "running":
            name = ", ".join(Path(s).name for s in row.get("suites") or ()) or "(inline cases)"
            by_suite.setdefault(name, []).append(float(row["pass_rate"]))
    drawn = [(name, sparkline_svg(rates[-_TREND_RUNS:], f"pass rate of {name}")) for name, rates in by_suite.items()]
    return [(name, svg) for name, svg in drawn if svg]


def _has_results(history: RunHistory, run_id: str) -> bool:
    try:
        return (history.folder(run_id) / RESULTS_FILE).is_file()
    except ValueError:  # not a run id at all
        return False


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pt"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def add_pages(
    app: FastAPI, book: SessionBook, history: RunHistory, config: str | None, authorized: Callable[..., None]
) -> None:
    """The dashboard's routes on ``app``, behind the same token as the API."""
    pages = APIRouter(dependencies=[Depends(authorized)], include_in_schema=False)

    def page(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(render_page(template, nav=True, **context))

    @pages.get("/", response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        rows, _ = await anyio.to_thread.run_sync(lambda: history.list(limit=200))
        live = [(s.kind, s.snapshot()) for s in book.sessions() if not s.done]
        try:
            settings = load_settings(config)
            providers, default = sorted(settings.providers), settings.provider
        except ConfigError:
            providers, default = ["sim"], "sim"
        return page(
            "dashboard.html",
            title="evalrun · runs",
            live=live,
            runs=[_shown(r) for r in rows[:50]],
            trends=_trends(rows),
            providers=providers,
            default_provider=default,
        )

    @pages.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run(run_id: str) -> HTMLResponse:
        row = await known_run(history, book, run_id)
        session = book.by_run(run_id)
        if row is None:
            raise HTTPException(404, f"no run '{run_id}'")
        live = session.snapshot() if session is not None and not session.done else None
        folder = history.folder(run_id)
        detail: dict[str, Any] = {}
        others: list[dict[str, Any]] = []
        if row["kind"] == "eval" and (folder / RESULTS_FILE).is_file():
            document = await anyio.to_thread.run_sync(load_results, folder / RESULTS_FILE)
            events = await anyio.to_thread.run_sync(chart_events, folder / "events.jsonl")
            messages = await anyio.to_thread.run_sync(suite_messages, document)
            detail = run_view(document, events, messages)
            earlier, _ = await anyio.to_thread.run_sync(lambda: history.list(kind="eval", limit=50))
            others = [
                _shown(r) for r in earlier if r["id"] != run_id and (history.folder(r["id"]) / RESULTS_FILE).is_file()
            ]
        return page("run.html", title=f"evalrun · run {run_id}", row=row, started=_when(row.get("started_at")),
                    live=live, others=others, **detail)  # fmt: skip

    @pages.get("/compare", response_class=HTMLResponse)
    async def compared(a: str | None = None, b: str | None = None) -> HTMLResponse:
        rows, _ = await anyio.to_thread.run_sync(lambda: history.list(kind="eval", limit=200))
        runs = [_shown(r) for r in rows if _has_results(history, r["id"])]
        comparison, error = None, None
        if a and b:
            for run_id in (a, b):  # a run the history does not know is a 404, as on /runs/{id}
                if not _has_results(history, run_id):
                    raise HTTPException(404, f"no run '{run_id}' with results")
            try:
                older = await anyio.to_thread.run_sync(load_results, history.folder(a) / RESULTS_FILE)
                newer = await anyio.to_thread.run_sync(load_results, history.folder(b) / RESULTS_FILE)
                comparison = compare(older, newer)
            except (ConfigError, ValueError) as exc:  # said of the runs, not of the server's files
                error = str(exc).replace(str(history.root), "runs")
        return page("compare.html", title="evalrun · compare", runs=runs, a=a, b=b, comparison=comparison,
                    error=error, pct=_percent, points=_points, ms=_ms)  # fmt: skip

    app.include_router(pages)
