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
        self.alive, self._closing = True, False
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
                break
            self._loop.call_soon_threadsafe(self._on_message, message)
        self.alive = False
        if not self._closing:  # the process died under its runs: their sessions must say so
            self._loop.call_soon_threadsafe(self._on_message, ("died", "", None))

    def close(self, timeout: float = 30) -> None:
        """Stop every run (each ends ``interrupted``, its reports written) and the process."""
        self._closing = True
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

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    sending = threading.Lock()
    runners: dict[str, Any] = {}
    limits = _Limits()

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

    loop.add_reader(pipe.fileno(), readable)
    async with anyio.create_task_group() as runs:
        while True:
            command = await commands.get()
            if command[0] == "start":
                _, run_id, settings, session_id, request = command
                # Made and listed now, not when its task first runs: a cancel right behind the
                # start finds it (and it starts stopped).
                runner = runners[run_id] = _runner(run_id, settings, session_id, request)
                runs.start_soon(_run, runner, limits, runners, send)
            elif command[0] == "cancel" and command[1] in runners:
                runners[command[1]].cancel()
            elif command[0] == "stop":
                for runner in runners.values():
                    runner.cancel("the server stopped")
                break


class _Limits:
    """Each provider's call limits, made by the first of its runs going and dropped with the last:
    runs at once share one set, and a later run is not held to a finished run's concurrency."""

    def __init__(self) -> None:
        self._sets: dict[str, Any] = {}
        self._users: dict[str, int] = {}

    @staticmethod
    def _key(settings: Any) -> str:
        return f"{settings.provider}|{settings.profile().base_url}"

    def take(self, settings: Any) -> Any:
        """The limits ``settings``' run shares, or None with a Redis URL: the key's budget is
        shared in Redis then, by every runner, this server's own included."""
        from ..client import CallLimits
        from ..runner import call_policy

        if settings.cache_url:
            return None
        key = self._key(settings)
        if key not in self._sets:
            self._sets[key] = CallLimits(call_policy(settings))
        self._users[key] = self._users.get(key, 0) + 1
        return self._sets[key]

    def give_back(self, settings: Any) -> None:
        if settings.cache_url:
            return
        key = self._key(settings)
        if key in self._users:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._sets[key]


def _runner(run_id: str, settings: Any, session_id: str, request: Mapping[str, Any]) -> Any:
    from ..runner import Runner

    return Runner(settings, run_id=run_id, origin="server", session_id=session_id, request=request)


async def _run(runner: Any, limits: _Limits, runners: dict[str, Any], send: Callable[[tuple[Any, ...]], None]) -> None:
    import anyio

    run_id = runner.run_id
    shared = limits.take(runner.settings)
    if shared is not None:
        runner.use_limits(shared)
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
            limits.give_back(runner.settings)
            group.cancel_scope.cancel()
