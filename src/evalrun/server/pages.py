"""The dashboard: runs live, starting one, the history, a run's detail, two runs compared.

Server-rendered pages (``pages/templates``) over what the API serves: the history's rows, the
sessions' progress, the runs' results files. The pages' scripts use the API itself (the start
forms post to the original endpoints, live runs follow ``/api/runs/{id}/events``). Without
JavaScript the start forms post to ``/start/eval`` and ``/start/tests``, which hand the same body
to the same endpoints and answer with a redirect to the new run's page.

A page that finds nothing answers 404 with an HTML page, not the API's JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ValidationError

from ..compare import compare, load_results
from ..errors import ConfigError
from ..history import RunHistory, pass_rate_text
from ..pages.render import chart_events, render_page, run_view, sparkline_svg, suite_messages, test_run_view
from ..recording import RESULTS_FILE
from ..settings import load_settings
from .bodies import EvalBody, FieldError, TestBody
from .sessions import SessionBook, known_run

__all__ = ["add_pages"]

_TREND_RUNS = 20  # finished runs of a suite drawn in its pass-rate sparkline
_EARLIER_RUNS = 50  # runs offered on a run's page to compare it with

#: The no-JavaScript start forms: the dashboard's path, the API endpoint it hands the body to, the body.
#: The start forms' bodies; the API's handler of each is given to ``add_pages``.
_BODIES: dict[str, type[BaseModel]] = {"eval": EvalBody, "tests": TestBody}
Start = Callable[[Any], Awaitable[dict[str, str]]]
# What start.js sends as lists (the rest as they are: pydantic reads "4" as 4, as the API would).
_LISTS = frozenset({"suites", "models", "categories"})


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


def _form_body(raw: bytes) -> dict[str, Any]:
    """A start form's fields (``application/x-www-form-urlencoded``) as start.js makes its JSON
    body: empty fields left out, lists split on commas, pytest's arguments on white space."""
    body: dict[str, Any] = {}
    for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=False):
        value = value.strip()
        if not value:
            continue
        if name == "pytest_args":
            body[name] = value.split()
        elif name in _LISTS:
            body[name] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            body[name] = value
    return body


def _problems(exc: ValidationError | FieldError) -> str:
    """A refused body in the words the page's script shows for a 422: ``field: why; ...``."""
    if isinstance(exc, FieldError):
        return f"{'.'.join(str(part) for part in exc.field[1:])}: {exc.message}".lstrip(": ")
    return "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors())


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from this server's own page. A form on any web site can post to
    127.0.0.1 without asking (no CORS preflight for a form), so a post that a browser says came
    from elsewhere starts nothing; the JSON API is out of a form's reach by its content type."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site post (browsers send Origin with every form POST)
    return urlsplit(origin).netloc == request.headers.get("host", "")


def add_pages(
    app: FastAPI,
    book: SessionBook,
    history: RunHistory,
    config: str | None,
    authorized: Callable[..., None],
    starts: Mapping[str, Start],
) -> None:
    """The dashboard's routes on ``app``, behind the same token as the API; ``starts`` are the
    API's handlers of a start form's body, by form ("eval", "tests")."""
    pages = APIRouter(dependencies=[Depends(authorized)], include_in_schema=False)

    def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(render_page(template, nav=True, **context), status_code=status_code)

    def not_found(detail: str) -> HTMLResponse:
        """A dashboard page that finds nothing: 404, as a page (the API's 404s stay JSON)."""
        return page("error.html", status_code=404, title="evalrun · not found", heading="Not found", detail=detail)

    async def dashboard_page(errors: Mapping[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
        rows, _ = await anyio.to_thread.run_sync(lambda: history.list(limit=200))
        live = [(s.kind, s.snapshot()) for s in book.sessions() if not s.done]
        try:
            settings = load_settings(config)
            providers, default = sorted(settings.providers), settings.provider
        except ConfigError:
            providers, default = ["sim"], "sim"
        return page(
            "dashboard.html",
            status_code=status_code,
            title="evalrun · runs",
            live=live,
            runs=[_shown(r) for r in rows[:50]],
            trends=_trends(rows),
            providers=providers,
            default_provider=default,
            errors=errors or {},
        )

    @pages.get("/", response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        return await dashboard_page()

    @pages.post("/start/{what}", response_class=HTMLResponse, response_model=None)
    async def start(what: str, request: Request) -> HTMLResponse | RedirectResponse:
        """A start form posted without JavaScript: the same body, the same endpoint as the
        page's script, then the run's page (or the dashboard again, saying what was refused)."""
        if what not in _BODIES or what not in starts:
            return not_found(f"no form '{what}'")
        if not _same_origin(request):
            detail = "A run is started from this server's own pages only."
            return page("error.html", status_code=403, title="evalrun · refused", heading="Refused", detail=detail)
        try:
            body = _BODIES[what].model_validate(_form_body(await request.body()))
            started = await starts[what](body)
        except (ValidationError, FieldError) as exc:
            return await dashboard_page({what: _problems(exc)}, status_code=422)
        except HTTPException as exc:  # a test run already going (409)
            return await dashboard_page({what: str(exc.detail)}, status_code=exc.status_code)
        return RedirectResponse(f"/runs/{started['run_id']}", status_code=303)

    @pages.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run(run_id: str) -> HTMLResponse:
        row = await known_run(history, book, run_id)
        session = book.by_run(run_id)
        if row is None:
            return not_found(f"No run '{run_id}' is recorded on this server.")
        live = session.snapshot() if session is not None and not session.done else None
        folder = history.folder(run_id)
        detail: dict[str, Any] = {}
        others: list[dict[str, Any]] = []
        if row["kind"] == "eval" and (folder / RESULTS_FILE).is_file():
            document = await anyio.to_thread.run_sync(load_results, folder / RESULTS_FILE)
            events = await anyio.to_thread.run_sync(chart_events, folder / "events.jsonl")
            messages = await anyio.to_thread.run_sync(suite_messages, document)
            detail = run_view(document, events, messages)
            # Only runs started before this one: an "earlier run" to compare it with.
            started_at = row.get("started_at") or 0.0
            earlier, _ = await anyio.to_thread.run_sync(lambda: history.list(kind="eval", limit=200))
            others = [
                _shown(r)
                for r in earlier
                if r["id"] != run_id
                and (r.get("started_at") or 0.0) < started_at
                and (history.folder(r["id"]) / RESULTS_FILE).is_file()
            ][:_EARLIER_RUNS]
        elif row["kind"] == "test" and (folder / RESULTS_FILE).is_file():
            document = await anyio.to_thread.run_sync(_read_json, folder / RESULTS_FILE)
            if isinstance(document, dict) and isinstance(document.get("summary"), dict):
                detail = {**test_run_view(document), "pass_rate": pass_rate_text(row)}
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
                    return not_found(f"No run '{run_id}' with results is recorded on this server.")
            try:
                older = await anyio.to_thread.run_sync(load_results, history.folder(a) / RESULTS_FILE)
                newer = await anyio.to_thread.run_sync(load_results, history.folder(b) / RESULTS_FILE)
                comparison = compare(older, newer)
            except (ConfigError, ValueError) as exc:  # said of the runs, not of the server's files
                error = str(exc).replace(str(history.root), "runs")
        return page("compare.html", title="evalrun · compare", runs=runs, a=a, b=b, comparison=comparison,
                    error=error, pct=_percent, points=_points, ms=_ms)  # fmt: skip

    app.include_router(pages)


def _read_json(path: Path) -> Any:
    """A test run's results document, or None when it cannot be read as JSON (a run killed mid-write)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
