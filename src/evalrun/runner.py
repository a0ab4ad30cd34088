"""The Python API: build a run from settings, watch it, await it, read its results.

``Runner`` wires the pieces together (suites, provider client, cache, engine, observers, reports)
and owns their lifetimes; it holds no display code, so a notebook and the CLI run the same thing::

    runner = Runner(provider="sim", concurrency=20).on_progress(print)
    result = await runner.run()
    print(result.summary["pass_rate"])
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import anyio

from .cache import ResponseCache
from .client import ProviderClient
from .config import ConfigError, Settings, load_settings
from .engine import Engine, EngineOptions, Task, task_record
from .eventlog import JsonLinesLog
from .events import Event, Observer, RunFinished, RunStarted, TaskFinished
from .exitcodes import ExitCode, for_run
from .metrics import RunMetrics
from .results import CaseSpool, build_summary, write_reports
from .suite import Case, SuitePlan, plan_suites

__all__ = ["RunResult", "Runner"]

SIM_CACHE_URL = "sim://evalrun"


@dataclass
class RunResult:
    """How a run ended: the ``run`` and ``summary`` sections of results.json, and every case."""

    run: dict[str, Any]
    summary: dict[str, Any]
    state: str
    exit_code: ExitCode
    metrics: RunMetrics
    _spool: CaseSpool = field(repr=False)
    #: What the simulated provider served during the run (``/stats``), when the run used it.
    sim_stats: dict[str, Any] | None = None

    def cases(self) -> Iterator[dict[str, Any]]:
        """Every case record, in the order they finished (streamed from disk)."""
        return self._spool.records()

    def close(self) -> None:
        self._spool.close()


def case_selector(settings: Settings) -> Callable[[Case], bool] | None:
    """``--category`` and ``--filter`` (a regex on the id) as one predicate; None selects all."""
    categories = set(settings.categories)
    try:
        pattern = re.compile(settings.filter) if settings.filter else None
    except re.error as exc:
        raise ConfigError(f"--filter: invalid regex {settings.filter!r}: {exc}") from None
    if not categories and pattern is None:
        return None

    def selected(case: Case) -> bool:
        return (not categories or case.category in categories) and (pattern is None or bool(pattern.search(case.id)))

    return selected


def engine_options(settings: Settings) -> EngineOptions:
    profile = settings.profile()
    # The simulated provider's answers do not depend on the port it happens to listen on.
    cache_url = SIM_CACHE_URL if profile.simulated else profile.base_url
    return EngineOptions(
        settings.provider,
        cache_url,
        settings.concurrency,
        settings.rpm or profile.rpm,
        settings.tpm or profile.tpm,
        settings.repeat,
        settings.timeout,
    )


def cache_record_for(settings: Settings, case: Case) -> list[dict[str, Any]]:
    """The cache key records of a case's first repeat, one per model (for ``cache explain``)."""
    options = engine_options(settings)
    return [task_record(Task(case, model, 0), options) for model in settings.model_names()]


class _Throttled:
    """Calls ``callback(metrics.progress())`` at most every ``interval`` s, and at start and end."""

    def __init__(self, metrics: RunMetrics, callback: Callable[[dict[str, Any]], Any], interval: float) -> None:
        self._metrics, self._callback, self._interval = metrics, callback, interval
        self._last = float("-inf")

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, (RunStarted, RunFinished)) or now - self._last >= self._interval:
            self._last = now
            self._callback(self._metrics.progress())


class Runner:
    """One evaluation run. Settings come as a ``Settings`` or as keyword overrides of the defaults."""

    def __init__(
        self, settings: Settings | None = None, *, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> None:
        self.settings = settings if settings is not None else load_settings(env=env, **overrides)
        self._env = os.environ if env is None else env
        self._observers: list[Observer] = []
        self._progress: list[tuple[Callable[[dict[str, Any]], Any], float]] = []
        self._plan: SuitePlan | None = None

    def subscribe(self, observer: Observer) -> Runner:
        """Receive every event of the run (displays, custom logs, metrics exporters)."""
        self._observers.append(observer)
        return self

    def on_progress(self, callback: Callable[[dict[str, Any]], Any], interval: float = 0.2) -> Runner:
        """Receive the progress dict of DESIGN §5 at most every ``interval`` seconds."""
        self._progress.append((callback, interval))
        return self

    def prepare(self) -> SuitePlan:
        """Everything that can fail before a request: suites, selection, API key, paths. Idempotent."""
        if self._plan is None:
            settings = self.settings
            plan = plan_suites(settings.suite_paths(), settings.default_assert, case_selector(settings), settings.limit)
            if not plan.total:
                raise ConfigError("no case matches the --category/--filter/--limit given")
            self._api_key()
            _check_writable(settings)
            self._plan = plan
        return self._plan

    def _api_key(self) -> str | None:
        profile = self.settings.profile()
        if not profile.api_key_env:
            return None
        key = self._env.get(profile.api_key_env)
        if not key:
            raise ConfigError(
                f"{profile.api_key_env} is not set: provider '{profile.name}' needs an API key "
                f"(export {profile.api_key_env}=...)"
            )
        return key

    def _tasks(self, plan: SuitePlan) -> Iterator[Task]:
        models, repeat = self.settings.model_names(), self.settings.repeat
        for case in plan.cases():
            for model in models:
                for index in range(repeat):
                    yield Task(case, model, index)

    def run_sync(self, handle_signals: bool = False) -> RunResult:
        return anyio.run(lambda: self.run(handle_signals=handle_signals))

    async def run(self, handle_signals: bool = False) -> RunResult:
        """Run to the end (or the timeout, or Ctrl-C with ``handle_signals``) and write the reports."""
        plan = self.prepare()
        settings = self.settings
        profile = settings.profile()
        with contextlib.ExitStack() as stack:
            base_url, sim = profile.base_url, None
            if profile.simulated:
                from .sim import SimConfig, SimProcess

                sim = stack.enter_context(SimProcess(SimConfig(**profile.sim)))
                base_url = sim.base_url
            cache = ResponseCache(settings.cache_dir, settings.cache, settings.cache_ttl)
            stack.callback(cache.close)
            client = ProviderClient(
                base_url,
                self._api_key(),
                concurrency=settings.concurrency,
                request_timeout=settings.request_timeout,
                retries=settings.retries,
                retry_base_delay=settings.retry_base_delay,
                trust_env=not profile.simulated,
            )
            try:
                result = await self._run_engine(plan, client, cache, stack, handle_signals)
            finally:
                await client.aclose()
            if sim is not None:
                result.sim_stats = await anyio.to_thread.run_sync(sim.stats)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_engine(
        self,
        plan: SuitePlan,
        client: ProviderClient,
        cache: ResponseCache,
        stack: contextlib.ExitStack,
        handle_signals: bool,
    ) -> RunResult:
        settings = self.settings
        metrics, spool = RunMetrics(), CaseSpool()
        observers: list[Observer] = [metrics, _spooler(spool)]
        if settings.events:
            events_file = stack.enter_context(open(settings.events, "w", encoding="utf-8"))
            observers.append(JsonLinesLog(events_file))
        observers += self._observers
        observers += [_Throttled(metrics, callback, interval) for callback, interval in self._progress]

        def emit(event: Event) -> None:
            for observer in observers:
                observer(event)

        engine = Engine(client, cache, engine_options(settings), emit)
        run_id = uuid.uuid4().hex[:12]
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        per_case = len(settings.model_names()) * settings.repeat
        categories = {name: count * per_case for name, count in plan.categories.items()}
        emit(
            RunStarted(
                run_id,
                settings.provider,
                settings.model_names(),
                plan.total * per_case,
                settings.concurrency,
                categories,
            )
        )
        state = await _run_watching_signals(engine, self._tasks(plan), handle_signals)
        summary = build_summary(metrics)
        run = {
            "id": run_id,
            "provider": settings.provider,
            "models": list(settings.model_names()),
            "suites": list(settings.suite_paths()),
            "started_at": started_at,
            "settings": settings.public(),
        }
        code = for_run(state, summary, settings.min_pass_rate, settings.max_errors)
        write_reports(
            spool,
            run,
            summary,
            output=settings.output,
            junit=settings.junit,
            summary_md=settings.summary_md,
            state=state,
            exit_code=int(code),
        )
        return RunResult(run, summary, state, code, metrics, spool)


def _check_writable(settings: Settings) -> None:
    """Fail before the first request, not after the last, when a results file cannot be written."""
    for flag, path in (
        ("--output", settings.output),
        ("--junit", settings.junit),
        ("--summary-md", settings.summary_md),
        ("--events", settings.events),
    ):
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{flag} {path}: cannot create {folder}: {exc.strerror}") from None
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{flag} {path}: {folder} is not writable")


def _spooler(spool: CaseSpool) -> Observer:
    def observe(event: Event) -> None:
        if isinstance(event, TaskFinished):
            spool.add(event.result)

    return observe


async def _run_watching_signals(engine: Engine, tasks: Iterator[Task], handle_signals: bool) -> str:
    if not handle_signals:
        return await engine.run(tasks)
    outcome = "completed"
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    engine.cancel("interrupted", "interrupted by signal")

        group.start_soon(watch)
        outcome = await engine.run(tasks)
        group.cancel_scope.cancel()
    return outcome
