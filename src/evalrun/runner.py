"""The Python API of an eval run: build it from settings, watch it, await it, read its results.

``Runner`` wires the pieces together and owns their lifetimes: the suite plan, the provider (from
the registry), the cache (from its store factory), the scorer, the engine, the observers and the
reports. It holds no display code, so a notebook and the CLI run the same thing::

    runner = Runner(provider="sim", concurrency=20).on_progress(print)
    result = await runner.run()
    print(result.summary["pass_rate"])
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from .cache import CacheStore, CacheUnavailable, ResponseCache, open_store
from .client import CallLimits, CallPolicy, ModelClient, Trip
from .engine import Engine, EngineOptions, Outcome
from .events import Event, Observer, RunFinished, RunStarted, RunWarning, StateChanged, Tick
from .exitcodes import ExitCode
from .interrupts import exit_code_of_signal
from .locations import public_url
from .logs import logger
from .metrics import RunMetrics
from .plan import case_selector, tasks
from .progress import counted
from .providers import ClientOptions, Provider, open_provider
from .providers.base import scrub
from .recording import RunRecord
from .reports import CaseSpool, write_reports
from .reports.files import atomic_write
from .schema import RunInfo, RunKind, RunState, Summary
from .scoring import AssertionScorer, Scorer
from .settings import ConfigError, Settings, load_settings, shard_numbers
from .suite import SuitePlan, plan_suites
from .verdict import eval_exit_code, exit_reason, final_state
from .watch import Watched

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .client.shared_budget import SharedBudget
    from .reports.prometheus import RunExporter
    from .settings import SettingsLayer

__all__ = ["RunResult", "Runner", "new_run_id", "request_of"]


@dataclass
class RunResult:
    """How a run ended: the ``run`` and ``summary`` sections of results.json, and every case."""

    run: RunInfo
    summary: Summary
    state: RunState
    exit_code: ExitCode
    metrics: RunMetrics
    _spool: CaseSpool = field(repr=False)
    #: Why the run exits with ``exit_code``, in one line (``exit 1: pass rate 79.2% of ...``).
    exit_reason: str = ""
    #: What the provider's server served during the run, when the provider can see it (``sim``).
    provider_stats: dict[str, Any] | None = None

    def cases(self) -> Iterator[dict[str, Any]]:
        """Every case record, in the order they finished (streamed from disk)."""
        return self._spool.records()

    def close(self) -> None:
        self._spool.close()


def _write_html(path: str, results: str, events: str | None) -> None:
    """The run's page (``evalrun report``'s), from the results.json and the event log just written."""
    import json

    from .pages.render import chart_events, render_report

    with open(results, encoding="utf-8") as handle:
        page = render_report(json.load(handle), events=chart_events(events) if events else ())
    atomic_write(path, lambda out: out.write(page))


def _exporter() -> RunExporter:
    """Prometheus' families for this run alone (``--metrics-file``); the library is loaded only then."""
    from .reports.prometheus import MetricFamilies, RunExporter

    return RunExporter(MetricFamilies())


def new_run_id() -> str:
    """A run's id: 12 hex digits, the same in its results, events, history and server URLs."""
    return uuid.uuid4().hex[:12]


def request_of(settings: Settings) -> dict[str, Any]:
    """The settings as a server's request body says them (``server/bodies.py``'s ``EvalBody``):
    what the run history keeps, so that a run from the command line can be resumed too."""
    chosen = {
        "provider": settings.provider,
        "suites": list(settings.suites),
        "models": list(settings.models),
        "concurrency": settings.concurrency,
        "repeat": settings.repeat,
        "categories": list(settings.categories),
        "filter": settings.filter,
        "limit": settings.limit,
        "timeout": settings.timeout,
        "min_pass_rate": settings.min_pass_rate,
        "max_errors": settings.max_errors,
        "retries": settings.retries,
        "rpm": settings.rpm,
        "tpm": settings.tpm,
    }
    return {name: value for name, value in chosen.items() if value not in (None, [])}


def engine_options(settings: Settings, timeout: float | None) -> EngineOptions:
    """The engine's options; ``timeout`` is what is left of the run's (the suite check took the rest)."""
    return EngineOptions(settings.concurrency, settings.repeat, timeout, stated_timeout=settings.timeout)


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
        limits: CallLimits | None = None,
        run_id: str | None = None,
        origin: str = "cli",
        session_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        **overrides: Unpack[SettingsLayer],
    ) -> None:
        """``scorer`` judges every answer; by default, each case's own assertions. ``limits`` are
        call limits shared with other runs of the same provider (a server's runs), in place of
        the run's own. ``origin``, ``session_id`` and ``request`` are what the run history
        records of who started the run, and how (by default, these settings as a server's
        request body would say them: what ``resume`` runs again)."""
        super().__init__()
        self.settings = settings if settings is not None else load_settings(env=env, **overrides)
        self.run_id = run_id or new_run_id()
        self._origin, self._session_id = origin, session_id
        self._request = request if request is not None else request_of(self.settings)
        self._env = os.environ if env is None else env
        self._scorer = scorer or AssertionScorer()
        self._limits = limits
        self._plan: SuitePlan | None = None
        self._checked_in = 0.0  # seconds prepare() took: they count against the run's timeout
        self._secret: str | None = None
        self._begun = 0.0
        self._engine: Engine | None = None
        self._cancelled: str | None = None
        self._cache_location = self.settings.cache_dir
        self._redis: str | None = None  # the Redis that answered prepare(): the key's budget is kept there
        self._early_warnings: list[str] = []  # found by prepare(), said once the run has observers

    def use_limits(self, limits: CallLimits) -> None:
        """Share ``limits`` with other runs of the same provider (before ``run``; on its loop)."""
        self._limits = limits

    def cancel(self, message: str = "cancelled") -> None:
        """Stop the run from outside (a server's cancel): calls in flight are cancelled, the rest
        is not run, and the reports of what finished are written; the run ends ``interrupted``.
        Before the run begins, it begins stopped."""
        self._cancelled = message
        if self._engine is not None:
            self._engine.cancel(RunState.INTERRUPTED, message)

    def prepare(self) -> SuitePlan:
        """Everything that can fail before a request: API key, suites, selection, paths. Idempotent.
        The run's ``timeout`` counts from here: checking a large suite is part of the run."""
        if self._plan is None:
            begun = time.monotonic()
            settings = self.settings
            self._secret = settings.profile().api_key(self._env)  # checked here, before any request
            select = case_selector(settings.categories, settings.filter, shard_numbers(settings.shard))
            seen: set[str] = set()  # every category, for the error of a selection that takes none
            tally = (lambda case: seen.add(case.category)) if select is not None else None
            plan = plan_suites(settings.suite_paths(), settings.default_assert, select, settings.limit, tally)
            if not plan.total and not settings.shard:  # a shard may be empty: its job still writes its results
                there = f" (the suites' categories: {', '.join(sorted(seen))})" if seen else ""
                raise ConfigError(f"no case matches the --category/--filter/--limit given{there}")
            _check_writable(settings)
            self._cache_location = self._reachable_cache()
            self._plan = plan
            self._checked_in = time.monotonic() - begun
            logger.debug("suites checked in %.3f s: %s selected", self._checked_in, counted(plan.total, "case"))
        return self._plan

    def _reachable_cache(self) -> str:
        """Where the run keeps answers: a Redis that answers now (it also keeps the key's rate
        budget, cache or no cache), else (``--cache-fallback local``) the disk with a warning, else
        ``ConfigError``: a shared cache and budget that are not there are a mistake to say at once,
        not a run that quietly pays for every answer again and paces alone."""
        settings = self.settings
        if not settings.cache_url:
            return settings.cache_dir
        from .cache.redis_store import ping_now

        problem = ping_now(settings.cache_url)
        if problem is None:
            self._redis = settings.cache_url
            return settings.cache_url if settings.cache != "off" else settings.cache_dir
        where = f"cache {public_url(settings.cache_url)}: unreachable ({problem})"
        if settings.cache_fallback != "local":
            raise ConfigError(
                f"{where}; to run on the disk cache ({settings.cache_dir}) then, add --cache-fallback local"
            )
        self._early_warnings.append(
            f"{where}; using the disk cache {settings.cache_dir}, and pacing alone (--cache-fallback local)"
        )
        return settings.cache_dir

    def run_sync(self, handle_signals: bool = False) -> RunResult:
        return anyio.run(lambda: self.run(handle_signals=handle_signals))

    async def run(self, handle_signals: bool = False) -> RunResult:
        """Run to the end (or the timeout, or with ``handle_signals`` SIGINT/SIGTERM) and write the
        reports. A signal stops the calls; the reports of what finished are still written, and
        further signals while they are do not cut them short."""
        plan = self.prepare()
        self._begun = time.monotonic() - self._checked_in  # the run's clock, the check included
        if not handle_signals:
            return await self._run_with_provider(plan, None)
        stop, failure = _SignalStop(), None
        async with anyio.create_task_group() as group:
            await group.start(stop.watch)
            try:
                result = await self._run_with_provider(plan, stop)
            except Exception as exc:  # leaves as itself, not in the watcher's group (the CLI reads it)
                failure = exc
            group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result

    def _remaining(self) -> float | None:
        timeout = self.settings.timeout
        return None if timeout is None else max(0.0, timeout - (time.monotonic() - self._begun))

    async def _run_with_provider(self, plan: SuitePlan, stop: _SignalStop | None) -> RunResult:
        settings = self.settings
        profile = settings.profile()
        secret = self._secret
        client = ClientOptions(request_timeout=settings.request_timeout, max_response_bytes=settings.max_response_bytes)
        warnings = _Warnings()
        for message in self._early_warnings:
            warnings(message)
        store = _open_store(settings, self._cache_location, warnings)
        budget = self._shared_budget(warnings)
        try:
            async with open_provider(profile, secret, client) as provider:
                responses = ResponseCache(store, settings.cache, settings.cache_ttl, warn=warnings)
                async with responses.writing() as cache:
                    context = _Context(stop, warnings, secret, budget)
                    result = await self._run_engine(plan, provider, cache, context)
                with contextlib.suppress(Exception):  # a nicety: its server may be gone (SIGTERM to the group)
                    result.provider_stats = await provider.server_stats()
        finally:
            if store is not None:
                await store.aclose()
            if budget is not None:
                await budget.aclose()
        return result

    def _shared_budget(self, warn: Callable[[str], None]) -> SharedBudget | None:
        """With a Redis that answered (``--cache-url``), the key's RPM/TPM budgets are kept there,
        shared with every runner of the same key: N processes on N machines stay under it together."""
        if self._redis is None:
            return None
        from .client.shared_budget import SharedBudget

        return SharedBudget(self._redis, self.settings.profile().base_url, self._secret, warn)

    async def _run_engine(
        self, plan: SuitePlan, provider: Provider, cache: ResponseCache, context: _Context
    ) -> RunResult:
        settings = self.settings
        metrics, spool = RunMetrics(), CaseSpool()
        run_id = self.run_id
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        models = settings.model_names()
        per_case = len(models) * settings.repeat
        scrub_key = functools.partial(scrub, secret=context.secret) if context.secret else None
        record = RunRecord(
            settings.history_dir,
            run_id,
            RunKind.EVAL,
            origin=self._origin,
            request=self._request,
            session_id=self._session_id,
            warn=context.warnings,
        )
        # Off the loop: a server's runs share it, and the history's index may be busy a moment.
        await anyio.to_thread.run_sync(
            record.begin, settings.provider, models, settings.suite_paths(), plan.total * per_case
        )
        events = record.events_path(settings.events)
        exported = _exporter() if settings.metrics_file else None
        own: list[Observer] = [metrics, spool] if exported is None else [metrics, spool, exported]
        with self._observing(own, metrics.progress, events, scrub_key) as observers:
            emit = _StatusTeller(observers, metrics)

            def nothing_can_succeed(trip: Trip) -> None:  # the rest is not run: exit 3
                engine.cancel(RunState.ERROR, _tripped(trip, settings))

            policy = call_policy(settings)
            limits = self._limits or CallLimits(policy, context.budget)
            client = ModelClient(provider, policy, emit, nothing_can_succeed, limits)
            options = engine_options(settings, self._remaining())
            engine = self._engine = Engine(client, provider.identity, cache, self._scorer, options, emit)
            if self._cancelled is not None:
                engine.cancel(RunState.INTERRUPTED, self._cancelled)
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
            context.warnings.attach(emit)
            work = tasks(plan.cases(skimming=lambda: engine.stopped), models, settings.repeat)
            if context.stop is not None:
                context.stop.attach(engine)
            outcome = await _ticking(engine.run(work), emit)
            with anyio.CancelScope(shield=True):  # now, so that a cache failing to take it is told
                await cache.settle()
            if metrics.truncated:
                cut = f"{counted(metrics.truncated, 'answer')} cut at the token limit (finish_reason length)"
                emit(RunWarning(f"{cut}: scored as they are; raise max_tokens in the cases' params"))
            overall = metrics.overall  # the pass rate as results.json rounds it, so the two agree
            code = eval_exit_code(
                outcome.state, overall.errors, round(overall.pass_rate, 6), settings.min_pass_rate, settings.max_errors
            )
            if not plan.total and code == ExitCode.BELOW_THRESHOLD:  # an empty shard fails nothing
                code = ExitCode.OK
            if code == ExitCode.INTERRUPTED and context.stop is not None and context.stop.signum is not None:
                code = exit_code_of_signal(context.stop.signum)
            state, message = final_state(outcome.state, outcome.message, code, overall.errors, settings.max_errors)
            emit(RunFinished(state, message, int(code), at=outcome.ended_at))
        summary = metrics.summary()
        reason = exit_reason(code, summary, message, settings.min_pass_rate, settings.max_errors)
        run: RunInfo = {
            "id": run_id,
            "provider": settings.provider,
            "models": list(models),
            "suites": list(settings.suite_paths()),
            "started_at": started_at,
            "settings": settings.public(),
            "state": state,
            "exit_code": int(code),
            "exit_reason": scrub_key(reason) if scrub_key else reason,
        }

        def write_outputs() -> None:  # in a worker thread: a server's loop keeps answering meanwhile
            reported = time.monotonic()
            results = record.results_path(settings.output)
            scratch = settings.html is not None and results is None  # the page is drawn from a results.json
            if scratch:
                handle, results = tempfile.mkstemp(prefix="evalrun-results-", suffix=".json")
                os.close(handle)
            reports_written = False
            try:
                write_reports(
                    spool,
                    run,
                    summary,
                    output=results,
                    junit=settings.junit,
                    summary_md=settings.summary_md,
                    state=state,
                    exit_code=int(code),
                )
                reports_written = True
                if settings.html and results:
                    _write_html(settings.html, results, record.events_path(settings.events))
                if exported is not None and settings.metrics_file:
                    from .reports.prometheus import write_textfile

                    write_textfile(settings.metrics_file, exported.families)
            finally:  # a report that failed (the disk filled up) does not unrecord the run
                if scratch and results:
                    with contextlib.suppress(OSError):
                        os.unlink(results)
                logger.debug("reports written in %.3f s", time.monotonic() - reported)
                record.finish(
                    state=state,
                    exit_code=int(code),
                    summary=summary,
                    message=run["exit_reason"],
                    overview={"settings": run["settings"], "summary": summary},
                    # Not a --output the run failed to write: the file there is an earlier run's.
                    results=settings.output if reports_written else None,
                    events=settings.events,
                )

        await anyio.to_thread.run_sync(write_outputs)
        return RunResult(run, summary, state, code, metrics, spool, run["exit_reason"])


def _tripped(trip: Trip, settings: Settings) -> str:
    """Why the run stopped early, in one line that says what to check."""
    profile = settings.profile()
    if trip.kind == "auth":
        status = trip.reason.split(":", 1)[0]  # "HTTP 401": the server's words may run long
        check = f"check {profile.api_key_env}" if profile.api_key_env else "the profile names no key (api_key_env)"
        return f"provider '{settings.provider}' rejected the API key ({status}): {check}"
    host = urlsplit(profile.base_url).netloc or profile.base_url or f"the '{settings.provider}' server"
    return f"cannot reach {host}: {trip.reason}"


def _check_writable(settings: Settings) -> None:
    """Fail before the first request, not after the last, when a results file cannot be written
    (or two reports would be written over each other)."""
    taken: dict[str, str] = {}
    for flag, path in (
        ("--output", settings.output),
        ("--junit", settings.junit),
        ("--summary-md", settings.summary_md),
        ("--events", settings.events),
        ("--metrics-file", settings.metrics_file),
        ("--html", settings.html),
    ):
        if not path:
            continue
        same = taken.setdefault(os.path.realpath(path), flag)
        if same != flag:
            raise ConfigError(f"{flag} {path}: {same} writes there too: give each report a file of its own")
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{flag} {path}: cannot create {folder}: {exc.strerror}") from None
        if os.path.isdir(path):
            raise ConfigError(f"{flag} {path}: is a folder")
        probe = f"{path}.tmp"  # the sibling a report is written through (reports/files.py)
        try:  # os.access says yes to root anywhere, /proc included: only a write tells
            with open(probe, "w", encoding="utf-8"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"{flag} {path}: cannot write there: {exc.strerror or exc}") from None


class _StatusTeller:
    """The run's observer, which also tells a ``StateChanged`` when an event changed the state the
    metrics read, or, on a tick, the category being evaluated: the displays' status, for the event
    log and ``--progress json``."""

    def __init__(self, observers: Observer, metrics: RunMetrics) -> None:
        self._observers, self._metrics = observers, metrics
        self._told: tuple[RunState, str] | None = None

    def __call__(self, event: Event) -> None:
        self._observers(event)
        if isinstance(event, RunFinished):
            return
        state, category = phase = self._metrics.phase
        told = self._told
        if told is None or state != told[0] or (category != told[1] and isinstance(event, Tick)):
            self._told = phase
            self._observers(StateChanged(*self._metrics.status))


async def _ticking(work: Awaitable[Outcome], emit: Observer) -> Outcome:
    """``work``, with a ``Tick`` every second while it runs (see ``Tick``); its error leaves as itself."""

    async def tick() -> None:
        while True:
            await anyio.sleep(1.0)
            emit(Tick())

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        try:
            outcome = await work
        except Exception as exc:  # not wrapped in the ticker's group: the CLI reads an OSError as one line
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return outcome


def _open_store(settings: Settings, location: str, warn: Callable[[str], None]) -> CacheStore | None:
    """The run's cache store; none, with a warning, when it cannot be used (a cache is an accelerator)."""
    if settings.cache == "off":
        return None
    try:
        return open_store(location, warn)
    except CacheUnavailable as exc:
        warn(exc.warning)
        return None


class _SignalStop:
    """SIGINT and SIGTERM during a run: the first stops the engine (attached as soon as it
    exists, so a signal that came while the provider was opening stops it before its first
    call); the rest are swallowed, so that the reports of what finished are written whole."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._engine: Engine | None = None

    async def watch(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self.signum is None:
                    self.signum = signum
                    self._stop_engine()

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        if self.signum is not None:
            self._stop_engine()

    def _stop_engine(self) -> None:
        if self._engine is not None and self.signum is not None:
            self._engine.cancel(RunState.INTERRUPTED, f"stopped by {signal.Signals(self.signum).name}")


class _Warnings:
    """Warnings of the run's set-up (the cache, say), held until the observers exist, then told."""

    def __init__(self) -> None:
        self._held: list[str] = []
        self._emit: Observer | None = None

    def __call__(self, message: str) -> None:
        if self._emit is None:
            self._held.append(message)
        else:
            self._emit(RunWarning(message))

    def attach(self, emit: Observer) -> None:
        self._emit = emit
        for message in self._held:
            emit(RunWarning(message))
        self._held.clear()


@dataclass(frozen=True)
class _Context:
    """What a run carries from its set-up to its engine."""

    stop: _SignalStop | None
    warnings: _Warnings
    secret: str | None
    budget: SharedBudget | None = None
