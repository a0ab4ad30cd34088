"""The runs a server started: each one a session, polled by its id, followed by its events.

A session is one run as the server knows it: the latest progress dict (what a poll returns, at no
cost to the run) and the clients following its events live. Eval runs run in a child process of
their own (``worker.py``), which sends their events and progress back; test runs wait on pytest
in a worker thread of this process.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..eventlog import event_record
from ..events import (
    CacheHit,
    Event,
    Observer,
    RetryResumed,
    RetryScheduled,
    TaskFinished,
    TasksNotRun,
    TaskStarted,
    TestFinished,
    TestStarted,
    Tick,
)
from ..history import RunHistory
from ..schema import FINAL_STATES, ProgressDict, RunState
from ..settings import Settings
from ..testrun.runner import TestResult, TestRunner
from .worker import RunsWorker

__all__ = ["Session", "SessionBook", "known_run", "metricas", "new_session_id"]

_FOLLOWER_BACKLOG = 10_000  # events held for one slow follower before it misses some
_TOLD_KEPT = 1_000  # events of a run's course (not of its tasks) kept for followers who join late
#: Events of one task: a follower sees them from when it joins (the progress dict has the counts).
_PER_TASK = (TaskStarted, TaskFinished, CacheHit, RetryScheduled, RetryResumed, TasksNotRun, TestStarted, TestFinished)
_PROGRESS_EVERY = 0.1  # seconds between the progress snapshots a poll reads


def new_session_id(kind: str) -> str:
    """``eval_1234567890_1234``: the original system's shape (Unix seconds, four random digits)."""
    return f"{kind}_{int(time.time())}_{random.randint(1000, 9999)}"


def metricas(summary: Mapping[str, Any]) -> dict[str, float]:
    """The finished run's figures under the original system's names and units (its clients read
    these; ``cache_efficiency`` there is a percentage)."""
    return {
        "tiempo_total_segundos": summary.get("wall_seconds", 0.0),
        "prompts_por_segundo": summary.get("cases_per_second", 0.0),
        "cache_hits": summary.get("cache_hits", 0),
        "cache_efficiency": round(100 * summary.get("cache_efficiency", 0.0), 2),
        "requests_concurrentes_promedio": summary.get("avg_concurrency", 0.0),
    }


@dataclass
class Session:
    """One run the server started, from its start to long after its end (until the server stops)."""

    kind: str  # eval | test
    session_id: str
    run_id: str
    request: Mapping[str, Any]
    progress: ProgressDict
    cancel: Callable[[], None]
    started_at: float = field(default_factory=time.time)
    finished: dict[str, Any] | None = None  # summary, exit code and reason, once it ended
    error: str | None = None  # the run could not run (evalrun's bug or the system's): one line
    _followers: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)
    _told: list[dict[str, Any]] = field(default_factory=list)  # the run's course, for late followers
    observers: list[Observer] = field(default_factory=list)  # what sees its events in this process
    _encoded: bytes = b""
    _encoded_for: tuple[int, bool, str | None] | None = None
    _version: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _loop_thread: int = 0
    _clock_offset: float = field(default_factory=lambda: time.time() - time.monotonic())

    @property
    def state(self) -> str:
        return str(self._shown()["status"])

    @property
    def done(self) -> bool:
        return self.finished is not None or self.error is not None

    def _shown(self) -> ProgressDict:
        """The progress dict, but never a final state before the run's figures are here: the
        original clients stop polling at ``completed`` and read ``metricas`` from that answer, and
        the run's last progress comes before its reports are written."""
        progress = self.progress
        if self.done or progress.get("status") not in FINAL_STATES:
            return progress
        return {**progress, "status": RunState.RUNNING, "message": "writing the results"}

    def snapshot(self) -> dict[str, Any]:
        """What a poll returns: the progress dict, and once the run ended its figures."""
        view: dict[str, Any] = {**self._shown(), "session_id": self.session_id, "run_id": self.run_id}
        if self.error is not None:
            view["status"], view["message"] = RunState.ERROR, self.error
        if self.finished is not None:
            view.update(self.finished)
        return view

    def update(self, progress: ProgressDict) -> None:
        """A new progress dict (one assignment and a count: safe from pytest's worker thread too)."""
        self.progress = progress
        self._version += 1

    def snapshot_json(self) -> bytes:
        """``snapshot()`` encoded, once per new progress dict: twenty clients polling ten times a
        second cost one encoding per progress step, not two hundred a second."""
        key = (self._version, self.finished is not None, self.error)
        if key != self._encoded_for:
            self._encoded, self._encoded_for = json.dumps(self.snapshot()).encode(), key
        return self._encoded

    # -- live followers (Server-Sent Events) ---------------------------------------------------

    def observe(self, event: Event) -> None:
        """An observer of the run: each event to every follower. Called on the loop (eval runs)
        or from pytest's worker thread (test runs)."""
        if isinstance(event, Tick):
            return
        telling = not isinstance(event, _PER_TASK)
        if not self._followers and not telling:
            return
        record = event_record(event, self._clock_offset)
        if telling and len(self._told) < _TOLD_KEPT:
            self._told.append(record)
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._hand_out, record)
        else:
            self._hand_out(record)

    def _hand_out(self, record: dict[str, Any] | None) -> None:
        for queue in self._followers:
            if queue.qsize() < _FOLLOWER_BACKLOG or record is None:
                queue.put_nowait(record)

    async def follow(self, progress_every: float = 0.25) -> AsyncIterator[tuple[str, str]]:
        """``(event name, JSON data)`` pairs for a Server-Sent Events stream: the run's events as
        they come, the progress dict at most every ``progress_every`` seconds, then the summary."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._followers.append(queue)
        try:
            for told in list(self._told):  # what a late follower missed of the run's course
                yield str(told["event"]), json.dumps(told, ensure_ascii=False)
            yield "progress", json.dumps(self.snapshot())
            last = time.monotonic()
            while not self.done:
                try:
                    record = await asyncio.wait_for(queue.get(), timeout=progress_every)
                except asyncio.TimeoutError:
                    record = None
                if record is not None:
                    yield str(record["event"]), json.dumps(record, ensure_ascii=False)
                if time.monotonic() - last >= progress_every:
                    last = time.monotonic()
                    yield "progress", json.dumps(self.snapshot())
            while not queue.empty():  # what came before the end
                record = queue.get_nowait()
                if record is not None:
                    yield str(record["event"]), json.dumps(record, ensure_ascii=False)
            yield "summary", json.dumps(self.snapshot())
        finally:
            self._followers.remove(queue)

    def ended(self) -> None:
        """Wake every follower: the run is over."""
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._hand_out, None)
        else:
            self._hand_out(None)


class SessionBook:
    """Every session of this server, by session id and run id, and the call limits of each provider."""

    def __init__(self, on_runs_lost: Callable[[], None] = lambda: None) -> None:
        """``on_runs_lost`` is called (on the loop) when the runs' process died under its runs."""
        self._on_runs_lost = on_runs_lost
        self._sessions: dict[str, Session] = {}
        self._by_run: dict[str, Session] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._worker: RunsWorker | None = None

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def by_run(self, run_id: str) -> Session | None:
        return self._by_run.get(run_id)

    def sessions(self) -> list[Session]:
        """Every session of this server, newest first."""
        return sorted(self._sessions.values(), key=lambda session: session.started_at, reverse=True)

    @property
    def active(self) -> int:
        return sum(not session.done for session in self._sessions.values())

    @property
    def testing(self) -> bool:
        """Whether a test run is going (they share the project's pytest state folder: one at a time)."""
        return any(session.kind == "test" and not session.done for session in self._sessions.values())

    def start_eval(
        self,
        settings: Settings,
        run_id: str,
        session_id: str,
        request: Mapping[str, Any],
        observers: Sequence[Observer] = (),
    ) -> Session:
        """Start a run of ``settings`` (checked already) in the runs' process; its session at once.
        ``observers`` see its events here, as the worker sends them."""
        worker = self._started_worker()
        worker.send(("start", run_id, settings, session_id, dict(request)))  # a dead pipe raises: no session
        session = self._open("eval", run_id, request, lambda: worker.send(("cancel", run_id)), session_id)
        session.observers = [session.observe, *observers]
        return session

    def _started_worker(self) -> RunsWorker:
        """The runs' process, started now if it was not yet, or if it died (a new interpreter:
        about a second)."""
        if self._worker is None or not self._worker.alive:
            self._worker = RunsWorker(self._heard, asyncio.get_running_loop())
        return self._worker

    async def start(self) -> None:
        """Start the runs' process before the first run asks for it."""
        self._started_worker()

    def _heard(self, message: tuple[Any, ...]) -> None:
        """What the runs' process said of a run (on the loop)."""
        kind, run_id, payload = message
        if kind == "died":
            for lost in self._sessions.values():
                if lost.kind == "eval" and not lost.done:
                    lost.error = "the process running it died; the run may be resumed (POST /api/runs/{id}/resume)"
                    lost.ended()
            self._on_runs_lost()
            return
        session = self._by_run.get(run_id)
        if session is None:
            return
        if kind == "events":
            for event in payload:
                for observer in session.observers:
                    observer(event)
        elif kind == "progress":
            session.update(payload)
        elif kind == "finished":
            session.finished = payload
            session.ended()
        elif kind == "failed":
            session.error = payload
            session.ended()

    def start_test(self, runner: TestRunner, session_id: str, request: Mapping[str, Any]) -> Session:
        """Start ``runner`` in a worker thread (it waits on pytest); its session at once."""
        session = self._open("test", runner.run_id, request, runner.cancel, session_id)
        runner.subscribe(session.observe)
        runner.on_progress(_keeper(session), interval=_PROGRESS_EVERY)
        self._keep(asyncio.ensure_future(self._run_test(session, runner)))
        return session

    def _open(
        self,
        kind: str,
        run_id: str,
        request: Mapping[str, Any],
        cancel: Callable[[], None],
        session_id: str,
    ) -> Session:
        starting: ProgressDict = {
            "status": RunState.STARTING,
            "progress_percentage": 0.0,
            "completed": 0,
            "total": 0,
            "message": "starting",
            "eta_seconds": None,
            "eta_formatted": "--:--:--",
            "elapsed_seconds": 0.0,
        }
        session = Session(kind, session_id, run_id, request, starting, cancel)
        session._loop, session._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._sessions[session.session_id] = self._by_run[run_id] = session
        return session

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_test(self, session: Session, runner: TestRunner) -> None:
        try:
            result: TestResult = await anyio.to_thread.run_sync(runner.run)
        except Exception as exc:
            session.error = f"the run failed: {exc}"
        else:
            document = result.document
            session.finished = {
                "status": document["state"],
                "summary": document["summary"],
                "metricas": {"tiempo_total_segundos": document["summary"]["duration_seconds"]},
                "exit_code": result.exit_code,
                "exit_reason": document["message"],
                "results_endpoint": f"/api/runs/{session.run_id}/results",
            }
        session.ended()

    async def aclose(self) -> None:
        """Stop every run still going (the server is stopping): each ends ``interrupted``."""
        for session in self._sessions.values():
            if not session.done:
                session.cancel()
        if self._worker is not None:  # its runs end as they are told to, then it exits
            await anyio.to_thread.run_sync(self._worker.close)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)


def _keeper(session: Session) -> Callable[[ProgressDict], None]:
    """The progress callback that keeps the session's snapshot (one assignment: safe from pytest's
    worker thread too)."""

    def keep(progress: ProgressDict) -> None:
        session.update(progress)

    return keep


async def known_run(history: RunHistory, book: SessionBook, run_id: str) -> dict[str, Any] | None:
    """A run's history row; for one started a moment ago, which its process has not recorded yet,
    what its session knows; None for a run neither knows (or an id that cannot be one)."""
    try:
        row = await anyio.to_thread.run_sync(history.get, run_id)
    except ValueError:
        return None
    session = book.by_run(run_id)
    if row is None and session is not None:
        row = {"id": run_id, "kind": session.kind, "origin": "server", "state": session.state}
        row |= {"session_id": session.session_id, "request": dict(session.request), "started_at": session.started_at}
        row |= {"provider": session.request.get("provider", ""), "models": []}
    return row
