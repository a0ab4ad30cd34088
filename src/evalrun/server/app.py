"""``evalrun serve``'s HTTP API: the original system's four endpoints, run history, live events,
Prometheus metrics. Thin: bodies become settings in ``bodies.py``, runs live in ``sessions.py``,
the history is ``history.py``'s; this module maps them to paths and status codes.
"""

from __future__ import annotations

import hmac
import json
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..errors import ConfigError, SuiteError
from ..history import RunHistory
from ..locations import HISTORY_DIR
from ..recording import OVERVIEW_FILE, RESULTS_FILE
from ..reports.prometheus import MetricFamilies, RunExporter
from ..runner import Runner, new_run_id
from ..testrun.runner import TestRunner
from .bodies import EvalBody, FieldError, TestBody, settings_for_eval, settings_for_tests, suite_error
from .pages import add_pages
from .sessions import Session, SessionBook, known_run, new_session_id

__all__ = ["ServerConfig", "create_app"]

TOKEN_COOKIE = "evalrun_token"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True)
class ServerConfig:
    """How the server runs: its folder (suites are read only under it), the token every endpoint
    but ``/healthz`` asks for (``None``: none asked, loopback only), the config file of its runs."""

    root: Path
    token: str | None = None
    config: str | None = None
    history_dir: str = HISTORY_DIR
    max_body_bytes: int = 1 << 20


class _BodyLimit:
    """Requests whose body is larger than ``limit`` bytes end in 413 before a route reads them,
    whether they say their length or stream it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app, self._limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self._limit:
                await _too_large(send, self._limit)
                return
            await self._app(scope, receive, send)  # the server reads no more than it says
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self._app(scope, receive, send)
            return
        # A body of unsaid length (chunked) is read here first, up to the limit, then replayed.
        messages, size = [], 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if size > self._limit:
                await _too_large(send, self._limit)
                return
            messages.append(message)
            if message.get("type") != "http.request" or not message.get("more_body"):
                break

        async def replayed() -> Message:
            return messages.pop(0) if messages else await receive()

        await self._app(scope, replayed, send)


class _Guard:
    """What every request passes first (plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs a
    poll a task and a copy of its body).

    Without a token the server is for this machine: a request whose Host is another name is a web
    page's, reaching loopback through a name that resolves there (DNS rebinding), and is refused.
    With one, a page opened as ``?token=T`` leaves a cookie that carries it from then on."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self._app, self._token = app, token

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self._token is None:
            if _host_name(headers.get(b"host", b"").decode("latin-1")) not in _LOOPBACK_NAMES:
                await _refuse(send, 403, "this server answers to 127.0.0.1 and localhost only")
                return
            await self._app(scope, receive, send)
            return
        given = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("token", "")
        if not given or not hmac.compare_digest(given.encode(), self._token.encode()):
            await self._app(scope, receive, send)
            return
        cookie = f"{TOKEN_COOKIE}={given}; HttpOnly; Path=/; SameSite=strict".encode("latin-1")

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self._app(scope, receive, with_cookie)


async def _refuse(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send: Any, limit: int) -> None:
    await _refuse(send, 413, f"request body over {limit} bytes")


def create_app(config: ServerConfig) -> FastAPI:
    """The ASGI app; uvicorn serves it (``evalrun serve``), tests call it directly too."""
    history = RunHistory(config.root / config.history_dir)
    # The runs of a process that died read "interrupted" in the history at once, not at a restart.
    book = SessionBook(on_runs_lost=lambda: threading.Thread(target=history.recover, daemon=True).start())
    families = MetricFamilies()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(history.recover)  # runs a killed server left: interrupted
        await book.start()
        yield
        await book.aclose()

    # The API's description is behind the token too (FastAPI's own /docs and /openapi.json are not).
    app = FastAPI(title="evalrun", version=_version(), lifespan=lifespan, docs_url=None, openapi_url=None)
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(_Guard, token=config.token)

    @app.exception_handler(FieldError)
    async def refused(request: Request, exc: FieldError) -> JSONResponse:
        detail = [{"loc": list(exc.field), "msg": exc.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    def authorized(request: Request) -> None:
        """``Authorization: Bearer T``, or for the dashboard's pages in a browser, the cookie that
        opening one with ``?token=T`` leaves."""
        if config.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token") or ""
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(dependencies=[Depends(authorized)])

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="evalrun · API")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "active_runs": book.active}

    # -- the original system's endpoints ---------------------------------------------------

    @api.post("/api/results/run-evaluations")
    async def run_evaluations(body: EvalBody) -> dict[str, str]:
        session = await _start_eval(body.model_dump(exclude_none=True))
        return _started(session, "evaluation-progress")

    @api.get("/api/results/evaluation-progress/{session_id}")
    async def evaluation_progress(session_id: str) -> Response:
        return _json(_session(session_id, "eval").snapshot_json())

    @api.post("/api/results/run-tests")
    async def run_tests(body: TestBody) -> dict[str, str]:
        if book.testing:
            raise HTTPException(409, "a test run is going: one at a time (they share the project's pytest state)")
        settings = settings_for_tests(body, config.root, history.root)
        request, session_id = body.model_dump(exclude_none=True), new_session_id("test")
        runner = TestRunner(settings, origin="server", session_id=session_id, request=request)
        runner.subscribe(RunExporter(families))
        session = book.start_test(runner, session_id, request)
        return _started(session, "test-progress")

    @api.get("/api/results/test-progress/{session_id}")
    async def test_progress(session_id: str) -> Response:
        return _json(_session(session_id, "test").snapshot_json())

    # -- history, live events, control ----------------------------------------------------

    @api.get("/api/runs")
    async def runs(
        kind: str | None = Query(None, pattern="^(eval|test)$"),
        status: str | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        page, total = await anyio.to_thread.run_sync(
            lambda: history.list(kind=kind, state=status, limit=limit, offset=offset)
        )
        return {"runs": [_live(row) for row in page], "total": total, "limit": limit, "offset": offset}

    @api.get("/api/runs/{run_id}")
    async def run(run_id: str) -> dict[str, Any]:
        """The history's row, the live progress of a run going on here, and once it ended its
        settings and summary."""
        row = _live(await _row(run_id))
        ended = await anyio.to_thread.run_sync(_ended_run, history.folder(run_id))
        return {**row, **ended}

    @api.get("/api/runs/{run_id}/results")
    async def results(run_id: str) -> Response:
        row = await _row(run_id)
        path = history.folder(row["id"]) / RESULTS_FILE
        if not path.is_file():
            raise HTTPException(404, f"run {run_id} has no results yet (state {row['state']})")
        return Response(path.read_bytes(), media_type="application/json")

    @api.get("/api/runs/{run_id}/events")
    async def events(run_id: str) -> StreamingResponse:
        session = book.by_run(run_id)
        if session is None:
            row = await _row(run_id)  # a finished run (or one this server did not start): its end
            return _sse(_ended(row))
        return _sse(session.follow())

    @api.post("/api/runs/{run_id}/cancel")
    async def cancel(run_id: str) -> dict[str, Any]:
        session = book.by_run(run_id)
        if session is None:
            row = await _row(run_id)
            raise HTTPException(409, f"run {run_id} is not running on this server (state {row['state']})")
        if not session.done:
            session.cancel()
        return session.snapshot()

    @api.post("/api/runs/{run_id}/resume")
    async def resume(run_id: str) -> dict[str, str]:
        row = await _row(run_id)
        if row["kind"] != "eval":
            raise HTTPException(409, "only eval runs resume (a test run is run again with run-tests)")
        live = book.by_run(run_id)
        if live is not None and not live.done:
            raise HTTPException(409, f"run {run_id} is still running")
        session = await _start_eval(dict(row.get("request") or {}))
        return _started(session, "evaluation-progress")

    @app.get("/metrics")
    async def metrics(_: None = Depends(authorized)) -> Response:
        return Response(generate_latest(families.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api)
    add_pages(app, book, history, config.config, authorized, {"eval": run_evaluations, "tests": run_tests})

    # -- helpers, closing over this app's state --------------------------------------------

    async def _start_eval(request: dict[str, Any]) -> Session:
        body = EvalBody.model_validate(request)
        run_id, session_id = new_run_id(), new_session_id("eval")
        folder = history.folder(run_id)  # inline cases are kept with the run they were sent for
        inline = str(folder / "cases.jsonl") if body.cases is not None else None
        try:
            settings = await anyio.to_thread.run_sync(
                settings_for_eval, body, config.root, config.config, folder, history.root
            )
            # Checked here, to answer 422 at once; the runs' process reads the suites again.
            await anyio.to_thread.run_sync(Runner(settings, run_id=run_id).prepare)
        except (SuiteError, ConfigError, FieldError) as exc:
            refused = (
                suite_error(str(exc), inline)
                if isinstance(exc, SuiteError)
                else FieldError(("body",), str(exc))
                if isinstance(exc, ConfigError)
                else exc
            )
            if inline is not None:  # refused: the inline cases written for it go too
                shutil.rmtree(folder, ignore_errors=True)
            raise refused from None
        return book.start_eval(settings, run_id, session_id, request, [RunExporter(families)])

    def _session(session_id: str, kind: str) -> Session:
        session = book.get(session_id)
        if session is None or session.kind != kind:
            raise HTTPException(404, f"no {kind} session '{session_id}'")
        return session

    async def _row(run_id: str) -> dict[str, Any]:
        row = await known_run(history, book, run_id)
        if row is None:
            raise HTTPException(404, f"no run '{run_id}'")
        return row

    def _live(row: dict[str, Any]) -> dict[str, Any]:
        session = book.by_run(row["id"])
        return {**row, "progress": session.snapshot()} if session is not None else row

    return app


_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "testserver"})  # testserver: Starlette's test client


def _host_name(host: str) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``; ``[::1]:8000`` -> ``::1``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _ended_run(folder: Path) -> dict[str, Any]:
    """``settings`` and ``summary`` of a finished run (an eval run's settings; a test run's
    command), or nothing while it has none: from its own small file, as a run of a million cases
    has a results.json of hundreds of MB. Every recorded run that finished has one."""
    try:
        ended: dict[str, Any] = json.loads((folder / OVERVIEW_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return ended


def _json(encoded: bytes) -> Response:
    """A body encoded already: polled often, it skips FastAPI's encoder (most of a poll's CPU)."""
    return Response(encoded, media_type="application/json")


def _started(session: Session, progress_path: str) -> dict[str, str]:
    return {
        "session_id": session.session_id,
        "progress_endpoint": f"/api/results/{progress_path}/{session.session_id}",
        "run_id": session.run_id,
        "events_endpoint": f"/api/runs/{session.run_id}/events",
    }


async def _ended(row: dict[str, Any]) -> AsyncIterator[tuple[str, str]]:
    yield "summary", json.dumps(row)


def _sse(pairs: AsyncIterator[tuple[str, str]]) -> StreamingResponse:
    async def stream() -> AsyncIterator[str]:
        async for name, data in pairs:
            yield f"event: {name}\ndata: {data}\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _version() -> str:
    from .. import __version__

    return __version__
