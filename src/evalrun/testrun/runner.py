"""Run pytest in a child process, tail its event file, enforce the timeout, build the results.

The child runs in its own process group with evalrun's plugin, which writes one JSON line per
event; each becomes a typed event for the run's observers, exactly as an eval run's engine events
do. The parent never parses pytest's console output: the event stream is the truth, so results
exist after a timeout or a crash. A timeout (or Ctrl-C) sends SIGINT first so pytest can finish
cleanly, then SIGTERM and SIGKILL to the whole group. Whatever pytest leaves in its group when it
exits (a test's subprocess that outlived it) gets SIGTERM, then SIGKILL after the grace period, and
the results say how many processes were killed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..events import Event, Observer, RunFinished, RunStarted, RunWarning, TestsReplayed
from ..exitcodes import ExitCode
from ..interrupts import exit_code_of_signal
from ..recording import RunRecord
from ..schema import RunKind, RunState, TestOutcome, TestResultsDocument
from ..settings import TestSettings, load_test_settings
from ..watch import Watched
from . import cache as test_cache
from .progress import TestProgress
from .results import build_document, write_test_reports
from .stream import EventTail

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..settings import TestSettingsLayer

__all__ = ["TestResult", "TestRunner", "pytest_command"]

PLUGIN_MODULE = "evalrun_pytest_events"  # the plugin, copied where any interpreter can import it
EVENTS_VARIABLE = "EVALRUN_PYTEST_PLUGIN_EVENTS"  # the plugin's own name for it; the plugin imports nothing of ours
_POLL_SECONDS = 0.02
_KILL_AFTER_TERM = 2.0
_EXIT_MEANINGS = {
    2: "pytest was interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests were collected",
}
#: pytest's internal and usage errors: only pytest's own output says what went wrong.
_SAID_ONLY_BY_PYTEST = (3, 4)
_LAST_WORDS = 4  # lines of pytest's output shown when only they explain the end
_LOG_TAIL_BYTES = 8192
_SUMMARY_BAR = re.compile(r"^=+( .* =+)?$")


def _tally(counts: Mapping[TestOutcome, int]) -> str:
    """The outcomes of a run pytest finished, as its own summary line says them: "1 failed, 3 passed"."""
    said = [f"{counts[outcome]} {outcome}" for outcome in _TALLY_ORDER if counts.get(outcome)]
    return ", ".join(said) or "no test ran"


#: The order of pytest's own summary line.
_TALLY_ORDER = (
    TestOutcome.FAILED, TestOutcome.ERROR, TestOutcome.PASSED, TestOutcome.SKIPPED, TestOutcome.XFAILED,
    TestOutcome.XPASSED,
)  # fmt: skip


def pytest_command(settings: TestSettings) -> list[str]:
    parallel = ["-n", settings.parallel] if settings.parallel else []
    return [settings.python, "-m", "pytest", "-p", PLUGIN_MODULE, *parallel, *settings.pytest_args]


@dataclass
class TestResult:
    """How a test run ended: its progress (counts, records, stages), exit code and results document."""

    __test__ = False  # not a pytest test class, whatever its name

    progress: TestProgress
    exit_code: int
    document: TestResultsDocument
    log_path: Path | None = None

    @property
    def state(self) -> RunState:
        return self.progress.state


def _group_members(pgid: int) -> set[int]:
    """The live processes of a process group but its leader (pytest); a zombie is not alive."""
    try:
        os.killpg(pgid, 0)  # the usual answer, an empty group, without reading every process
    except ProcessLookupError:
        return set()
    except PermissionError:  # some member is another user's: the listing below still names it
        pass
    if not os.path.isdir("/proc"):
        return _group_members_from_ps(pgid)
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                line = stat.read()
        except OSError:  # gone since the listing
            continue
        state, _parent, group = line[line.rindex(b")") + 2 :].split(b" ", 3)[:3]  # the name may hold ") "
        if int(group) == pgid and state not in (b"Z", b"X"):
            found.add(int(entry.name))
    return found - {pgid}


def _group_members_from_ps(pgid: int) -> set[int]:
    """``_group_members`` where there is no /proc (macOS): ``ps`` tells the same."""
    listing = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "pgid=", "-o", "stat="], capture_output=True, text=True)
    rows = (line.split() for line in listing.stdout.splitlines())
    return {int(row[0]) for row in rows if len(row) == 3 and int(row[1]) == pgid and row[2][0] != "Z"} - {pgid}


@dataclass
class _Stopper:
    """The escalation from SIGINT to SIGTERM to SIGKILL for the child's process group, and the
    sweep of what pytest left in it; ``killed`` holds every process but pytest that was sent
    SIGTERM or SIGKILL."""

    pid: int
    grace: float
    reason: RunState | None = None
    next_at: float = 0.0
    level: int = 0
    killed: set[int] = field(default_factory=set)
    #: The signal that stopped the run, when one did (SIGTERM exits 143, Ctrl-C 130).
    signum: int | None = None

    def _signal(self, number: int) -> None:
        if number != signal.SIGINT:  # SIGINT asks; the others end whatever they reach
            self.killed |= _group_members(self.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, number)

    def stop(self, reason: RunState) -> None:
        if self.reason is None:
            self.reason, self.level, self.next_at = reason, 1, time.monotonic() + self.grace
            self._signal(signal.SIGINT)
        else:  # asked twice: no more patience
            self.level = 3
            self._signal(signal.SIGKILL)

    def tick(self) -> None:
        if self.level in (1, 2) and time.monotonic() >= self.next_at:
            self.level += 1
            self.next_at = time.monotonic() + _KILL_AFTER_TERM
            self._signal(signal.SIGTERM if self.level == 2 else signal.SIGKILL)

    def sweep(self) -> None:
        """After pytest exited: SIGTERM what is left in its group, SIGKILL after the grace period.

        A test's subprocess that outlives pytest would otherwise hold on to ports, files and CPU
        after the run, where nothing reports it. The group outlives its leader, so it still names
        them. Ctrl-C meanwhile is a stop like any other: the run is interrupted, a second one kills.
        """
        for number, patience in ((signal.SIGTERM, self.grace), (signal.SIGKILL, _KILL_AFTER_TERM)):
            if not _group_members(self.pid):
                return
            self._signal(number)
            deadline = time.monotonic() + patience
            while _group_members(self.pid) and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)


class TestRunner(Watched):
    """One pytest run; ``run()`` returns a ``TestResult`` whatever way the run ends."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self,
        settings: TestSettings | None = None,
        *,
        env: Mapping[str, str] | None = None,
        origin: str = "cli",
        session_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        **overrides: Unpack[TestSettingsLayer],
    ) -> None:
        """``origin``, ``session_id`` and ``request`` are what the run history records of who
        started the run, and how."""
        super().__init__()
        self.settings = settings if settings is not None else load_test_settings(env, **overrides)
        self.run_id = uuid.uuid4().hex[:12]
        self._origin, self._session_id = origin, session_id
        self._request = request if request is not None else {"pytest_args": list(self.settings.pytest_args)}
        self._cancelled = False

    def cancel(self) -> None:
        """Stop the run from another thread (a server's cancel): pytest is asked to stop as Ctrl-C
        would, then made to; the run ends ``interrupted`` with what finished."""
        self._cancelled = True

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
        command = pytest_command(settings)
        key = None
        if settings.cache:
            outputs = [
                os.path.join(settings.workdir, p) for p in (settings.output, settings.junit, settings.events) if p
            ]
            key = test_cache.fingerprint(root, settings.python, command[3:], outputs)
            stored = test_cache.load(state_dir, key)
            if stored is not None:
                return self._replay(stored)
        state_dir.mkdir(parents=True, exist_ok=True)
        result = self._execute(state_dir, command, handle_signals)
        if key is not None and result.state in (RunState.COMPLETED, RunState.FAILED):
            test_cache.store(state_dir, key, result.document)
        return result

    def _replay(self, document: TestResultsDocument) -> TestResult:
        progress = TestProgress()
        message = f"replayed from the test cache (recorded {document['started_at']}): nothing changed"
        summary: Mapping[str, Any] = document["summary"]
        counts = {outcome: int(summary[outcome]) for outcome in TestOutcome}
        with self._observing([progress], progress.progress, self.settings.events) as emit:
            emit(RunStarted(uuid.uuid4().hex[:12], RunKind.TEST, summary["total"]))
            emit(TestsReplayed(document["started_at"], summary["total"], counts))
            emit(RunFinished(RunState(document["state"]), message, int(document["exit_code"])))
        # A document recorded before processes_killed existed killed none that it knew of.
        replayed: TestResultsDocument = {"processes_killed": 0, **document, "replayed": True}
        write_test_reports(replayed, self.settings.output, self.settings.junit)
        return TestResult(progress, int(document["exit_code"]), replayed)

    def _plugin_path(self, state_dir: Path) -> Path:
        folder = state_dir / "plugin"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("plugin.py"), folder / f"{PLUGIN_MODULE}.py")
        return folder

    def _execute(self, state_dir: Path, command: list[str], handle_signals: bool) -> TestResult:
        settings = self.settings
        events_path, log_path = state_dir / "last-events.jsonl", state_dir / "last-output.log"
        events_path.write_text("")
        plugin_dir = self._plugin_path(state_dir).resolve()
        env = {
            **os.environ,
            EVENTS_VARIABLE: str(events_path.resolve()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")])),
        }
        progress = TestProgress()
        with contextlib.ExitStack() as stack:
            log = None if settings.verbose else stack.enter_context(open(log_path, "w", encoding="utf-8"))
            unrecorded: list[str] = []  # said once the run's observers are there
            record = RunRecord(
                os.path.join(settings.workdir, settings.history_dir) if settings.history_dir else "",
                self.run_id,
                RunKind.TEST,
                origin=self._origin,
                request=self._request,
                session_id=self._session_id,
                warn=unrecorded.append,
            )
            record.begin("", (), list(settings.pytest_args), 0)
            events = record.events_path(settings.events)
            emit = stack.enter_context(self._observing([progress], progress.progress, events))
            for message in unrecorded:
                emit(RunWarning(message))
            try:
                process = subprocess.Popen(
                    command,
                    cwd=settings.workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT if log else None,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ConfigError(f"cannot start {settings.python}: {exc.strerror or exc}") from None
            launched_at = time.time()
            stopper = _Stopper(process.pid, settings.grace)
            emit(RunStarted(self.run_id, RunKind.TEST, pid=process.pid))
            with _signals_to(stopper, handle_signals):
                self._follow(process, events_path, stopper, emit)
                stopper.sweep()
            emit(self._conclusion(progress, stopper, process.returncode, log_path if log else None))
        document = build_document(progress, command, launched_at, len(stopper.killed))
        write_test_reports(document, record.results_path(settings.output), settings.junit)
        record.finish(
            state=document["state"],
            exit_code=document["exit_code"],
            summary=_history_summary(document),
            message=document["message"],
            overview={"settings": {"command": document["command"]}, "summary": document["summary"]},
            results=settings.output,
            events=settings.events,
        )
        return TestResult(progress, document["exit_code"], document, None if settings.verbose else log_path)

    def _follow(self, process: subprocess.Popen[bytes], events_path: Path, stopper: _Stopper, emit: Observer) -> None:
        deadline = time.monotonic() + self.settings.timeout if self.settings.timeout else None
        with open(events_path, encoding="utf-8") as stream:
            tail = EventTail(stream)
            while True:
                exited = process.poll() is not None
                for event in tail.read():
                    emit(event)
                if exited:
                    return
                if deadline is not None and time.monotonic() >= deadline and stopper.reason is None:
                    stopper.stop(RunState.TIMEOUT)
                if self._cancelled and stopper.reason is None:
                    stopper.stop(RunState.INTERRUPTED)
                stopper.tick()
                with contextlib.suppress(subprocess.TimeoutExpired):  # sleeps, but wakes as soon as pytest exits
                    process.wait(_POLL_SECONDS)

    def _conclusion(self, progress: TestProgress, stopper: _Stopper, returncode: int, output: Path | None) -> Event:
        """How the run ended, as its last event: state, why, what was killed, and the exit code;
        when only pytest's output can explain it, pytest's last words on further lines."""
        state, why, exit_code = self._ending(progress, stopper, returncode)
        count = len(stopper.killed)
        killed = f"killed {count} other process{'es' * (count != 1)} of pytest's process group" if count else ""
        lines = ["; ".join(part for part in (why, killed) if part)]
        # A death with a test in flight names its culprit; one before any test only pytest explains.
        died_unexplained = exit_code == ExitCode.CRASHED and not progress.in_flight
        if output is not None and (exit_code in _SAID_ONLY_BY_PYTEST or died_unexplained):
            lines += _last_words(output)
        return RunFinished(state, "\n".join(lines), exit_code)

    def _ending(self, progress: TestProgress, stopper: _Stopper, returncode: int) -> tuple[RunState, str, int]:
        if stopper.reason == RunState.TIMEOUT:
            return RunState.TIMEOUT, f"timeout of {self.settings.timeout:g} s reached", int(ExitCode.TIMEOUT)
        if stopper.reason == RunState.INTERRUPTED:
            code = exit_code_of_signal(stopper.signum) if stopper.signum else ExitCode.INTERRUPTED
            return RunState.INTERRUPTED, "interrupted", int(code)
        status = progress.exit_status
        if status is None and returncode in _EXIT_MEANINGS and not progress.started:
            # pytest gave up before any test began (a conftest that fails to import, an unknown
            # option, a hook that raised): the code is its own verdict, not a death's.
            status = returncode
        if status is None:
            how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
            return RunState.ERROR, f"pytest died without finishing ({how})", int(ExitCode.CRASHED)
        state = {0: RunState.COMPLETED, 1: RunState.FAILED}.get(status, RunState.ERROR)
        errors = progress.counts[TestOutcome.ERROR]
        if status == 2 and errors and not progress.started:  # pytest's "Interrupted: 1 error during collection"
            return state, f"collection failed: {errors} error{'s' * (errors != 1)}, no test ran", status
        return state, _EXIT_MEANINGS.get(status) or _tally(progress.counts), status


def _history_summary(document: TestResultsDocument) -> dict[str, Any]:
    """A test run's figures under the names the run history keeps for every run."""
    summary = document["summary"]
    # The pass rate is of the tests that came to a verdict: passed or xpassed (a non-strict xfail
    # that passed; a strict one pytest reports as failed) against those plus the failed, the errors
    # and the tests in flight when the run was stopped (a hung test is no pass). Skipped and xfailed
    # tests are left out: a skip never ran its assertions, an xfail is a failure expected and
    # accepted; counting either as a failure made 10 passed and 1 skipped read 90.9%. With no
    # verdict at all (everything skipped, or nothing ran) the rate is unknown: None, shown as "-".
    passed = summary["passed"] + summary["xpassed"]
    decided = passed + summary["failed"] + summary["error"] + summary["in_flight"]
    return {
        **summary,
        "passed": passed,
        "errors": summary["error"],  # the history's name for it
        "pass_rate": round(passed / decided, 6) if decided else None,
        "wall_seconds": summary["duration_seconds"],
        "cases_per_second": summary["tests_per_second"],
    }


def _last_words(log_path: Path) -> list[str]:
    """The last lines pytest printed, its ``=====`` summary bars left out: where it says why it stopped."""
    with open(log_path, "rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
        text = log.read().decode("utf-8", "replace")
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and not _SUMMARY_BAR.match(line.strip())]
    return lines[-_LAST_WORDS:]


@contextmanager
def _signals_to(stopper: _Stopper, enabled: bool) -> Iterator[None]:
    """Route Ctrl-C (and SIGTERM) to the stopper while the child runs (main thread only)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(number: int, frame: FrameType | None) -> None:
        stopper.signum = stopper.signum or number
        stopper.stop(RunState.INTERRUPTED)

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
