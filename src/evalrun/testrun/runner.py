"""Run pytest in a child process, tail its event file, enforce the timeout, build the results.

The child runs in its own process group with evalrun's plugin, which writes one JSON line per
event. The parent never parses pytest's console output: the event stream is the truth, so results
exist after a timeout or a crash. A timeout (or Ctrl-C) sends SIGINT first so pytest can finish
cleanly, then SIGTERM and SIGKILL to the whole group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ..errors import ConfigError
from ..exitcodes import ExitCode
from . import cache as test_cache
from .progress import TestProgress
from .results import build_document, write_test_reports

__all__ = ["EventLines", "TestResult", "TestRunner", "TestSettings", "load_test_settings"]

PLUGIN_MODULE = "evalrun_pytest_events"  # the plugin, copied where any interpreter can import it
EVENTS_VARIABLE = "EVALRUN_TEST_EVENTS"  # the plugin's own name for it; the plugin imports nothing of ours
_POLL_SECONDS = 0.02
_KILL_AFTER_TERM = 2.0
CRASHED = 125

TestObserver = Callable[[TestProgress, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class TestSettings:
    """Everything that shapes one ``evalrun test`` run."""

    __test__ = False  # not a pytest test class, whatever its name

    pytest_args: tuple[str, ...] = ()
    timeout: float | None = None
    grace: float = 5.0
    python: str = sys.executable
    parallel: str | None = None
    output: str | None = None
    junit: str | None = None
    events: str | None = None
    cache: bool = False
    verbose: bool = False
    workdir: str = "."
    state_dir: str = ".evalrun/test"

    def command(self) -> list[str]:
        parallel = ["-n", self.parallel] if self.parallel else []
        return [self.python, "-m", "pytest", "-p", PLUGIN_MODULE, *parallel, *self.pytest_args]


def _env_number(env: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        if env.get(name):
            try:
                return float(env[name])
            except ValueError:
                raise ConfigError(f"{name}: invalid number {env[name]!r}") from None
    return None


def _env_flag(env: Mapping[str, str], *names: str) -> bool:
    return any(env.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in names)


def load_test_settings(env: Mapping[str, str] | None = None, **flags: Any) -> TestSettings:
    """Defaults < environment (``EVALRUN_TEST_TIMEOUT``/``TEST_TIMEOUT``, ``EVALRUN_TEST_CACHE``/
    ``ENABLE_TEST_CACHE``) < flags (left as ``None`` when not given)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    timeout = _env_number(env, "EVALRUN_TEST_TIMEOUT", "TEST_TIMEOUT")
    if timeout is not None:
        values["timeout"] = timeout
    if _env_flag(env, "EVALRUN_TEST_CACHE", "ENABLE_TEST_CACHE"):
        values["cache"] = True
    values.update({k: v for k, v in flags.items() if v is not None})
    settings = TestSettings(**values)
    if settings.timeout is not None and settings.timeout <= 0:
        raise ConfigError("timeout must be greater than 0")
    if settings.parallel is not None and settings.parallel != "auto" and not settings.parallel.isdigit():
        raise ConfigError(f"--parallel takes a number or 'auto', not {settings.parallel!r}")
    return settings


@dataclass
class TestResult:
    """How a test run ended: its progress (counts, records, stages), exit code and results document."""

    __test__ = False  # not a pytest test class, whatever its name

    progress: TestProgress
    exit_code: int
    document: dict[str, Any]
    log_path: Path | None = None

    @property
    def state(self) -> str:
        return self.progress.state


class _Throttled:
    def __init__(self, callback: Callable[[dict[str, Any]], Any], interval: float) -> None:
        self._callback, self._interval, self._last = callback, interval, float("-inf")

    def __call__(self, progress: TestProgress, event: Mapping[str, Any]) -> None:
        now = time.monotonic()
        if event.get("event") in ("launched", "run_finished") or now - self._last >= self._interval:
            self._last = now
            self._callback(progress.progress())


@dataclass
class _Stopper:
    """The escalation from SIGINT to SIGTERM to SIGKILL, for the child's process group."""

    pid: int
    grace: float
    reason: str | None = None
    next_at: float = 0.0
    level: int = 0

    def _signal(self, number: int) -> None:
        try:
            os.killpg(self.pid, number)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason, self.level, self.next_at = reason, 1, time.monotonic() + self.grace
            self._signal(signal.SIGINT)
        else:  # asked twice: no more patience
            self.kill()

    def kill(self) -> None:
        self.level = 3
        self._signal(signal.SIGKILL)

    def tick(self) -> None:
        if self.level in (1, 2) and time.monotonic() >= self.next_at:
            self.level += 1
            self.next_at = time.monotonic() + _KILL_AFTER_TERM
            self._signal(signal.SIGTERM if self.level == 2 else signal.SIGKILL)


def _lines(stream: IO[str], pending: list[str]) -> Iterator[dict[str, Any]]:
    chunk = stream.read()
    if not chunk:
        return
    text = pending.pop() + chunk if pending else chunk
    *complete, rest = text.split("\n")
    if rest:
        pending.append(rest)
    for line in complete:
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                continue


class TestRunner:
    """One pytest run; ``run()`` returns a ``TestResult`` whatever way the run ends."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, settings: TestSettings | None = None, **overrides: Any) -> None:
        self.settings = settings if settings is not None else load_test_settings(**overrides)
        self._observers: list[TestObserver] = []

    def subscribe(self, observer: TestObserver) -> TestRunner:
        self._observers.append(observer)
        return self

    def on_progress(self, callback: Callable[[dict[str, Any]], Any], interval: float = 0.2) -> TestRunner:
        self._observers.append(_Throttled(callback, interval))
        return self

    def _check_parallel(self) -> None:
        if self.settings.parallel is None:
            return
        probe = subprocess.run([self.settings.python, "-c", "import xdist"], capture_output=True)
        if probe.returncode != 0:
            raise ConfigError(
                f"--parallel needs pytest-xdist, which {self.settings.python} does not have (pip install pytest-xdist)"
            )

    def run(self, handle_signals: bool = False) -> TestResult:
        settings = self.settings
        self._check_parallel()
        root, state_dir = Path(settings.workdir), Path(settings.workdir) / settings.state_dir
        outputs = [p for p in (settings.output, settings.junit, settings.events) if p]
        key = (
            test_cache.fingerprint(
                root, settings.python, settings.command()[3:], [os.path.join(settings.workdir, p) for p in outputs]
            )
            if settings.cache
            else None
        )
        if key is not None:
            stored = test_cache.load(state_dir, key)
            if stored is not None:
                return self._replay(stored)
        state_dir.mkdir(parents=True, exist_ok=True)
        result = self._execute(state_dir, handle_signals)
        if key is not None and result.progress.state in ("completed", "failed"):
            test_cache.store(state_dir, key, result.document)
        return result

    def _replay(self, document: dict[str, Any]) -> TestResult:
        progress = TestProgress()
        progress.replayed, progress.state, progress.total = True, document["state"], document["summary"]["total"]
        progress.counts.update({k: document["summary"][k] for k in progress.counts})
        progress.message = f"replayed from the test cache (recorded {document['started_at']}): nothing changed"
        replayed = {**document, "replayed": True}
        self._emit(progress, {"event": "replayed", **document["summary"]})
        write_test_reports(replayed, self.settings.output, self.settings.junit)
        return TestResult(progress, int(document["exit_code"]), replayed)

    def _emit(self, progress: TestProgress, event: Mapping[str, Any]) -> None:
        for observer in self._observers:
            observer(progress, event)

    def _plugin_path(self, state_dir: Path) -> Path:
        folder = state_dir / "plugin"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("plugin.py"), folder / f"{PLUGIN_MODULE}.py")
        return folder

    def _execute(self, state_dir: Path, handle_signals: bool) -> TestResult:
        settings = self.settings
        events_path, log_path = state_dir / "last-events.jsonl", state_dir / "last-output.log"
        events_path.write_text("")
        plugin_dir = self._plugin_path(state_dir).resolve()
        env = {
            **os.environ,
            EVENTS_VARIABLE: str(events_path.resolve()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])),
        }
        log = None if settings.verbose else open(log_path, "w", encoding="utf-8")
        event_log = open(settings.events, "w", encoding="utf-8") if settings.events else None
        observers: list[TestObserver] = [*([EventLines(event_log)] if event_log else []), *self._observers]
        progress = TestProgress()
        try:
            process = subprocess.Popen(
                settings.command(),
                cwd=settings.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigError(f"cannot start {settings.python}: {exc.strerror or exc}") from None
        stopper = _Stopper(process.pid, settings.grace)
        for observer in observers:
            observer(progress, {"event": "launched", "pid": process.pid, "t": progress.launched_at})
        try:
            with _signals_to(stopper, handle_signals):
                self._follow(process, events_path, progress, stopper, observers)
        finally:
            if log is not None:
                log.close()
        code = self._conclude(progress, stopper, process.returncode)
        for observer in observers:
            observer(
                progress, {"event": "run_finished", "state": progress.state, "exit_code": code, "t": progress.ended_at}
            )
        if event_log is not None:
            event_log.close()
        document = build_document(progress, code, settings.command())
        write_test_reports(document, settings.output, settings.junit)
        return TestResult(progress, code, document, None if settings.verbose else log_path)

    def _follow(
        self,
        process: subprocess.Popen[bytes],
        events_path: Path,
        progress: TestProgress,
        stopper: _Stopper,
        observers: list[TestObserver],
    ) -> None:
        deadline = time.monotonic() + self.settings.timeout if self.settings.timeout else None
        pending: list[str] = []
        with open(events_path, encoding="utf-8") as stream:
            while True:
                exited = process.poll() is not None
                for event in _lines(stream, pending):
                    progress.handle(event)
                    for observer in observers:
                        observer(progress, event)
                if exited:
                    return
                if deadline is not None and time.monotonic() >= deadline and stopper.reason is None:
                    stopper.stop("timeout")
                stopper.tick()
                try:  # sleeps like time.sleep, but wakes as soon as pytest exits
                    process.wait(_POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass

    def _conclude(self, progress: TestProgress, stopper: _Stopper, returncode: int) -> int:
        if stopper.reason == "timeout":
            progress.end("timeout", f"timeout of {self.settings.timeout:g} s reached")
            return int(ExitCode.TIMEOUT)
        if stopper.reason == "interrupted":
            progress.end("interrupted", "interrupted")
            return int(ExitCode.INTERRUPTED)
        if progress.exit_status is None:
            how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
            progress.end("error", f"pytest died without finishing ({how})")
            return CRASHED
        state = {0: "completed", 1: "failed"}.get(progress.exit_status, "error")
        progress.end(state, _EXIT_MEANINGS.get(progress.exit_status, ""))
        return progress.exit_status


_EXIT_MEANINGS = {
    2: "pytest was interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests were collected",
}


class EventLines:
    """A test observer writing each event as one JSON line (``--events``, ``--progress json``)."""

    def __init__(self, stream: IO[str], flush_each: bool = False) -> None:
        self._stream, self._flush_each = stream, flush_each

    def __call__(self, progress: TestProgress, event: Mapping[str, Any]) -> None:
        self._stream.write(json.dumps(dict(event)) + "\n")
        if self._flush_each:
            self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


@contextmanager
def _signals_to(stopper: _Stopper, enabled: bool) -> Iterator[None]:
    """Route Ctrl-C (and SIGTERM) to the stopper while the child runs (main thread only)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(number: int, frame: FrameType | None) -> None:
        stopper.stop("interrupted")

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
