"""The server's eval runs, in a child process of their own.

Why a process: a run is CPU work in bursts (fifty answers parsed, scored and told at once), and
in the server's process it held up the polls that the server exists to answer: on its loop, a
poll waited behind a whole burst; on a thread beside it, behind the interpreter lock (p99 of
70-120 ms measured, for a 50 ms target). In a process of its own the run shares nothing with the
polls but the CPUs. All eval runs share this one process and its one event loop, so that runs
against one provider still share one set of call limits.

The two sides speak over a pipe, in tuples: the server sends ``("start", run_id, settings,
session_id, request)``, ``("cancel", run_id)`` and ``("stop",)``; the worker sends ``("events",
run_id, [event, ...])`` (batched), ``("progress", run_id, dict)``, and, last,
``("finished", run_id, dict)`` or ``("failed", run_id, reason)``. When the server goes away
without a word (killed), the worker stops its runs, which end ``interrupted`` with their reports
and history written, and exits.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["RunsWorker", "finished_view"]

_EVENTS_EVERY = 0.05  # seconds a batch of events waits before it is sent
_EVENTS_BATCH = 500  # events that are sent at once, whatever the time
_PROGRESS_EVERY = 0.1  # seconds between progress dicts


def finished_view(run_id: str, result: Any) -> dict[str, Any]:
    """What a poll shows of a finished eval run, beside its last progress dict."""
    from .sessions import metricas

    return {
        "status": result.state,
        "summary": result.summary,
        "metricas": metricas(result.summary),
        "exit_code": int(result.exit_code),
        "exit_reason": result.exit_reason,
        "results_endpoint": f"/api/runs/{run_id}/results",
    }


class RunsWorker:
    """The server's side: the child process, and a thread that hands what it says to the loop."""

    def __init__(self, on_message: Callable[[tuple[Any, ...]], None], loop: asyncio.AbstractEventLoop) -> None:
        context = multiprocessing.get_context("spawn")  # the server has threads: no fork
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=serve_runs, args=(child,), name="evalrun-runs", daemon=True)
        self._process.start()
        child.close()
        self._sending = threading.Lock()
        self._on_message, self._loop = on_message, loop
        self._reader = threading.Thread(target=self._read, name="evalrun-runs-reader", daemon=True)
        self._reader.start()

    def send(self, command: tuple[Any, ...]) -> None:
        with self._sending:
            self._pipe.send(command)

    def _read(self) -> None:
        while True:
            try:
                message = self._pipe.recv()
            except (EOFError, OSError):
                return
            self._loop.call_soon_threadsafe(self._on_message, message)

    def close(self, timeout: float = 30) -> None:
        """Stop every run (each ends ``interrupted``, its reports written) and the process."""
        try:
            self.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
        self._pipe.close()


# -- the child's side --------------------------------------------------------------------------------


def serve_runs(pipe: Connection) -> None:
    """The child process: runs until told to stop, or until the server is gone."""
    import anyio

    anyio.run(_serve, pipe)


async def _serve(pipe: Connection) -> None:
    import anyio

    from ..client import CallLimits
    from ..runner import call_policy

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    sending = threading.Lock()
    runners: dict[str, Any] = {}
    limits: dict[str, CallLimits] = {}

    def send(message: tuple[Any, ...]) -> None:
        with sending:
            try:
                pipe.send(message)
            except (BrokenPipeError, OSError):
                pass  # the server is gone: the runs are being stopped

    def readable() -> None:
        try:
            while pipe.poll():
                commands.put_nowait(pipe.recv())
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            commands.put_nowait(("stop",))

    def shared(settings: Any) -> CallLimits:
        key = f"{settings.provider}|{settings.profile().base_url}"
        if key not in limits:
            limits[key] = CallLimits(call_policy(settings))
        return limits[key]

    loop.add_reader(pipe.fileno(), readable)
    async with anyio.create_task_group() as runs:
        while True:
            command = await commands.get()
            if command[0] == "start":
                _, run_id, settings, session_id, request = command
                runs.start_soon(_run, run_id, settings, session_id, request, shared(settings), runners, send)
            elif command[0] == "cancel" and command[1] in runners:
                runners[command[1]].cancel()
            elif command[0] == "stop":
                for runner in runners.values():
                    runner.cancel("the server stopped")
                break


async def _run(
    run_id: str,
    settings: Any,
    session_id: str,
    request: Mapping[str, Any],
    limits: Any,
    runners: dict[str, Any],
    send: Callable[[tuple[Any, ...]], None],
) -> None:
    import anyio

    from ..runner import Runner

    runner = Runner(settings, run_id=run_id, origin="server", session_id=session_id, request=request)
    runner.use_limits(limits)
    runners[run_id] = runner
    batch: list[Any] = []

    def flush() -> None:
        if batch:
            send(("events", run_id, batch.copy()))
            batch.clear()

    def observe(event: Any) -> None:
        batch.append(event)
        if len(batch) >= _EVENTS_BATCH:
            flush()

    async def flushing() -> None:
        while True:
            await anyio.sleep(_EVENTS_EVERY)
            flush()

    runner.subscribe(observe)
    runner.on_progress(lambda progress: send(("progress", run_id, progress)), interval=_PROGRESS_EVERY)
    async with anyio.create_task_group() as group:
        group.start_soon(flushing)
        try:
            await anyio.to_thread.run_sync(runner.prepare)  # reads suites, pings Redis: not on the shared loop
            result = await runner.run()
        except Exception as exc:  # the worker lives on; the session says why this run did not
            flush()
            send(("failed", run_id, f"the run failed: {exc}"))
        else:
            flush()
            send(("finished", run_id, finished_view(run_id, result)))
            result.close()
        finally:
            runners.pop(run_id, None)
            group.cancel_scope.cancel()
