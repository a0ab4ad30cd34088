"""The Python API of an eval run: build it from settings, watch it, await it, read its results.

``Runner`` wires the pieces together and owns their lifetimes: the suite plan, the provider (from
the registry), the cache (from its store factory), the scorer, the engine, the observers and the
reports. It holds no display code, so a notebook and the CLI run the same thing::

    runner = Runner(provider="sim", concurrency=20).on_progress(print)
    result = await runner.run()
    print(result.summary["pass_rate"])
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio

from .cache import ResponseCache, open_store
from .client import CallPolicy, ModelClient
from .engine import Engine, EngineOptions, Outcome
from .events import RunFinished, RunStarted
from .exitcodes import ExitCode
from .metrics import RunMetrics
from .plan import Task, case_selector, tasks
from .providers import ClientOptions, Provider, open_provider
from .reports import CaseSpool, write_reports
from .schema import RunInfo, RunKind, RunState, Summary
from .scoring import AssertionScorer, Scorer
from .settings import ConfigError, Settings, load_settings
from .suite import SuitePlan, plan_suites
from .watch import Watched

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .settings import SettingsLayer

__all__ = ["RunResult", "Runner"]


@dataclass
class RunResult:
    """How a run ended: the ``run`` and ``summary`` sections of results.json, and every case."""

    run: RunInfo
    summary: Summary
    state: RunState
    exit_code: ExitCode
    metrics: RunMetrics
    _spool: CaseSpool = field(repr=False)
    #: What the provider's server served during the run, when the provider can see it (``sim``).
    provider_stats: dict[str, Any] | None = None

    def cases(self) -> Iterator[dict[str, Any]]:
        """Every case record, in the order they finished (streamed from disk)."""
        return self._spool.records()

    def close(self) -> None:
        self._spool.close()


def engine_options(settings: Settings) -> EngineOptions:
    return EngineOptions(concurrency=settings.concurrency, repeat_count=settings.repeat, timeout=settings.timeout)


def call_policy(settings: Settings) -> CallPolicy:
    profile = settings.profile()
    return CallPolicy(
        concurrency=settings.concurrency,
        retries=settings.retries,
        retry_base_delay=settings.retry_base_delay,
        rate_limit_wait=settings.rate_limit_wait,
        rpm=settings.rpm or profile.rpm,
        tpm=settings.tpm or profile.tpm,
    )


class Runner(Watched):
    """One evaluation run. Settings come as a ``Settings`` or as keyword overrides of the defaults."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        env: Mapping[str, str] | None = None,
        scorer: Scorer | None = None,
        **overrides: Unpack[SettingsLayer],
    ) -> None:
        """``scorer`` judges every answer; by default, each case's own assertions."""
        super().__init__()
        self.settings = settings if settings is not None else load_settings(env=env, **overrides)
        self._env = os.environ if env is None else env
        self._scorer = scorer or AssertionScorer()
        self._plan: SuitePlan | None = None

    def prepare(self) -> SuitePlan:
        """Everything that can fail before a request: suites, selection, API key, paths. Idempotent."""
        if self._plan is None:
            settings = self.settings
            select = case_selector(settings.categories, settings.filter)
            plan = plan_suites(settings.suite_paths(), settings.default_assert, select, settings.limit)
            if not plan.total:
                raise ConfigError("no case matches the --category/--filter/--limit given")
            settings.profile().api_key(self._env)
            _check_writable(settings)
            self._plan = plan
        return self._plan

    def run_sync(self, handle_signals: bool = False) -> RunResult:
        return anyio.run(lambda: self.run(handle_signals=handle_signals))

    async def run(self, handle_signals: bool = False) -> RunResult:
        """Run to the end (or the timeout, or Ctrl-C with ``handle_signals``) and write the reports."""
        plan = self.prepare()
        settings = self.settings
        profile = settings.profile()
        client = ClientOptions(settings.concurrency, settings.request_timeout)
        store = open_store(settings.cache_dir) if settings.cache != "off" else None
        try:
            async with open_provider(profile, profile.api_key(self._env), client) as provider:
                async with ResponseCache(store, settings.cache, settings.cache_ttl).writing() as cache:
                    result = await self._run_engine(plan, provider, cache, handle_signals)
                result.provider_stats = await provider.server_stats()
        finally:
            if store is not None:
                await store.aclose()
        return result

    async def _run_engine(
        self, plan: SuitePlan, provider: Provider, cache: ResponseCache, handle_signals: bool
    ) -> RunResult:
        settings = self.settings
        metrics, spool = RunMetrics(), CaseSpool()
        run_id = uuid.uuid4().hex[:12]
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        models = settings.model_names()
        per_case = len(models) * settings.repeat
        with self._observing([metrics, spool], metrics.progress, settings.events) as emit:
            client = ModelClient(provider, call_policy(settings), emit)
            engine = Engine(client, provider.identity, cache, self._scorer, engine_options(settings), emit)
            categories = {name: count * per_case for name, count in plan.categories.items()}
            emit(
                RunStarted(
                    run_id,
                    RunKind.EVAL,
                    plan.total * per_case,
                    settings.provider,
                    models,
                    settings.concurrency,
                    categories,
                )
            )
            work = tasks(plan.cases(), models, settings.repeat)
            outcome = await _run_watching_signals(engine, work, handle_signals)
            overall = metrics.overall  # the pass rate as results.json rounds it, so the two agree
            code = eval_exit_code(
                outcome.state, overall.errors, round(overall.pass_rate, 6), settings.min_pass_rate, settings.max_errors
            )
            emit(RunFinished(outcome.state, outcome.message, int(code), at=outcome.ended_at))
        summary = metrics.summary()
        run: RunInfo = {
            "id": run_id,
            "provider": settings.provider,
            "models": list(models),
            "suites": list(settings.suite_paths()),
            "started_at": started_at,
            "settings": settings.public(),
        }
        write_reports(
            spool,
            run,
            summary,
            output=settings.output,
            junit=settings.junit,
            summary_md=settings.summary_md,
            state=outcome.state,
            exit_code=int(code),
        )
        return RunResult(run, summary, outcome.state, code, metrics, spool)


def eval_exit_code(state: RunState, errors: int, pass_rate: float, min_pass_rate: float, max_errors: int) -> ExitCode:
    """The code an eval run exits with; an interrupted or timed-out run says so first."""
    if state == RunState.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if state == RunState.TIMEOUT:
        return ExitCode.TIMEOUT
    if errors > max_errors:
        return ExitCode.PROVIDER_ERRORS
    if pass_rate < min_pass_rate - 1e-12:
        return ExitCode.BELOW_THRESHOLD
    return ExitCode.OK


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


async def _run_watching_signals(engine: Engine, work: Iterator[Task], handle_signals: bool) -> Outcome:
    if not handle_signals:
        return await engine.run(work)
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    engine.cancel(RunState.INTERRUPTED, "interrupted by signal")

        group.start_soon(watch)
        outcome = await engine.run(work)
        group.cancel_scope.cancel()
    return outcome
