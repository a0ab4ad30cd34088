"""The run history: every eval or test run, from the CLI or a server, recorded under one folder.

The folder (by default ``.evalrun/runs/``) holds an SQLite index, ``index.db``, with one row per run,
and one folder per run, ``<root>/<run_id>/``, for that run's ``results.json``, ``events.jsonl`` and
``run.json`` (its settings and summary).
The index is what ``evalrun runs`` lists and a server pages through; the folders hold the bulk.

Several processes write the index at once (CLI runs next to a server), so it is in WAL mode (readers
never wait for a writer), every connection waits up to 10 s for a lock, and every call is one short
transaction on a connection of its own: nothing is held between calls, and a forked process never
inherits an open connection. Every failure of the index (damaged file, unwritable folder, lock never
released) is a :class:`HistoryUnavailable`, never a raw ``sqlite3`` error, so that a caller needs one
``except`` to go on without history.

Standard library only: the engine's runners and the server both import it.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = ["RUNNING_STATES", "HistoryUnavailable", "RunHistory", "pass_rate_text"]

"""Where the history lives unless told otherwise, relative to the working directory."""

RUNNING_STATES = frozenset({"starting", "collecting", "running"})
"""States of a run that has not ended: never pruned, and turned 'interrupted' by ``recover`` once
the process running it is gone."""

SCHEMA_VERSION = 1
INDEX_NAME = "index.db"
INTERRUPTED_MESSAGE = "the process running it ended without finishing it"

# Run ids become folder names: one path component, no dots, bounded, nothing a shell quotes.
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JSON_COLUMNS = frozenset({"models", "suites", "request"})
_COLUMNS = (
    "id",
    "session_id",
    "kind",
    "origin",
    "state",
    "provider",
    "models",
    "suites",
    "started_at",
    "finished_at",
    "duration_s",
    "total",
    "passed",
    "failed",
    "errors",
    "not_run",
    "pass_rate",
    "cases_per_second",
    "exit_code",
    "message",
    "pid",
    "request",
)
# Every column but the key can be changed by ``update``; the key names the folder.
_UPDATABLE = frozenset(_COLUMNS) - {"id"}
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    session_id TEXT,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    provider TEXT,
    models TEXT,
    suites TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    duration_s REAL,
    total INTEGER,
    passed INTEGER,
    failed INTEGER,
    errors INTEGER,
    not_run INTEGER,
    pass_rate REAL,
    cases_per_second REAL,
    exit_code INTEGER,
    message TEXT,
    pid INTEGER,
    request TEXT
)""",
    "CREATE INDEX IF NOT EXISTS runs_started_at ON runs (started_at)",
    "CREATE INDEX IF NOT EXISTS runs_session_id ON runs (session_id)",
)
_LOCK_TIMEOUT_S = 10.0


class HistoryUnavailable(Exception):
    """The history cannot be used: ``str()`` is one line saying where and why.

    ``damaged`` says the index file itself is not a usable SQLite database (garbage bytes, a
    truncated file), so that moving ``index.db`` aside repairs it; a read-only folder, a path that
    is a file or a lock never released are not."""

    def __init__(self, message: str, *, where: str = "", damaged: bool = False) -> None:
        super().__init__(message)
        self.where = where
        self.damaged = damaged


class RunHistory:
    """The runs recorded under ``root``; nothing on disk is touched until a method needs it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def index_path(self) -> Path:
        return self._root / INDEX_NAME

    def folder(self, run_id: str) -> Path:
        """The folder of one run's files; a run id that is not one safe path component is refused."""
        return self._root / _checked_id(run_id)

    # -- writing -------------------------------------------------------------------------------

    def begin(
        self,
        run_id: str,
        kind: str,
        *,
        origin: str,
        request: Mapping[str, Any],
        provider: str = "",
        models: Sequence[str] = (),
        suites: Sequence[str] = (),
        total: int = 0,
        session_id: str | None = None,
        pid: int | None = None,
    ) -> Path:
        """Insert a row in state 'running' (started_at = time.time(), pid defaults to os.getpid()), create the
        run's folder, return it.

        The folder is made first: a run whose row exists has somewhere to write its files. A run id
        already recorded is a ValueError, as it would mix two runs' files in one folder."""
        folder = self.folder(run_id)
        row = {
            "id": run_id,
            "session_id": session_id,
            "kind": kind,
            "origin": origin,
            "state": "running",
            "provider": provider,
            "models": _encode(list(models)),
            "suites": _encode(list(suites)),
            "started_at": time.time(),
            "total": total,
            "pid": os.getpid() if pid is None else pid,
            "request": _encode(request),
        }
        with self._writable(), self._connect(write=True) as db:
            folder.mkdir(parents=True, exist_ok=True)
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            try:
                db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(row.values()))
            except sqlite3.IntegrityError:
                raise ValueError(f"run id {run_id!r} is already recorded in {self.index_path}") from None
        return folder

    def update(self, run_id: str, **fields: Any) -> None:
        """Change some columns of one run (``total=...``, ``state=...``); an unknown column is a ValueError,
        an unknown run a KeyError."""
        _checked_id(run_id)
        unknown = sorted(set(fields) - _UPDATABLE)
        if unknown:
            raise ValueError(f"not columns of the run history: {', '.join(unknown)}")
        if not fields:
            return
        values = {name: _encode(value) if name in _JSON_COLUMNS else value for name, value in fields.items()}
        if not self.index_path.exists():  # no history yet: no such run, and nothing created to say so
            raise KeyError(run_id)
        with self._connect(write=True) as db:
            assignments = ", ".join(f"{name} = ?" for name in values)
            changed = db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id)).rowcount
        if not changed:
            raise KeyError(run_id)

    def finish(self, run_id: str, *, state: str, exit_code: int, summary: Mapping[str, Any], message: str = "") -> None:
        """Record how a run ended: finished_at, duration_s, and from ``summary`` (the ``summary`` dict of
        results.json: total, passed, failed, errors, not_run, pass_rate, cases_per_second) the counts.

        A test run's summary may lack some keys: a missing count is 0 (the total stays the one
        recorded so far), a missing rate is NULL, never a made-up 0.0 that would read as 'none passed'."""
        _checked_id(run_id)
        if not state or state in RUNNING_STATES:
            raise ValueError(f"a finished run's state cannot be {state!r}")
        finished_at = time.time()
        if not self.index_path.exists():
            raise KeyError(run_id)
        with self._connect(write=True) as db:
            row = db.execute("SELECT started_at, total FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(run_id)
            started_at, total_so_far = row
            values = {
                "state": state,
                "exit_code": int(exit_code),
                "message": message,
                "finished_at": finished_at,
                "duration_s": max(0.0, finished_at - started_at),
                "total": _count(summary, "total", total_so_far or 0),
                "passed": _count(summary, "passed", 0),
                "failed": _count(summary, "failed", 0),
                "errors": _count(summary, "errors", 0),
                "not_run": _count(summary, "not_run", 0),
                "pass_rate": _rate(summary, "pass_rate"),
                "cases_per_second": _rate(summary, "cases_per_second"),
            }
            assignments = ", ".join(f"{name} = ?" for name in values)
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id))

    # -- reading -------------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any] | None:
        """One run as a dict of its columns (models, suites, request decoded), or None."""
        _checked_id(run_id)
        return self._one("SELECT * FROM runs WHERE id = ?", (run_id,))

    def by_session(self, session_id: str) -> dict[str, Any] | None:
        """The newest run of a server session, or None."""
        return self._one(
            "SELECT * FROM runs WHERE session_id = ? ORDER BY started_at DESC, rowid DESC LIMIT 1", (session_id,)
        )

    def list(
        self, *, kind: str | None = None, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first (started_at DESC); returns (page, total matching).

        (The methods after this one say ``builtins.list``: in the class body, ``list`` is this method.)"""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset cannot be negative (limit {limit}, offset {offset})")
        where, params = _filters(kind=kind, state=state)
        if not self.index_path.exists():  # reading never creates the history
            return [], 0
        with self._connect() as db:
            total = db.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0]
            cursor = db.execute(
                f"SELECT * FROM runs{where} ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
            page = [_decoded(cursor, row) for row in cursor.fetchall()]
        return page, int(total)

    # -- upkeep --------------------------------------------------------------------------------

    def recover(self) -> builtins.list[str]:
        """Rows still in a RUNNING_STATES state whose pid is not alive become 'interrupted' with message
        'the process running it ended without finishing it'; return their ids. A row whose pid is this very
        process is left alone.

        A row is changed only if it is still running under the same pid when written, so a run that
        finishes meanwhile keeps its real outcome; and nothing is written when no row is stale, so
        that listing a history one may only read still works. A pid reused by a new process since
        reads as alive: the row stays until that process ends too."""
        if not self.index_path.exists():
            return []
        states = tuple(sorted(RUNNING_STATES))
        marks = ", ".join("?" for _ in states)
        with self._connect() as db:
            running = db.execute(f"SELECT id, pid FROM runs WHERE state IN ({marks})", states).fetchall()
        # No pid: nothing to check it against, so no claim that it died.
        stale = [(run_id, pid) for run_id, pid in running if pid is not None and pid != os.getpid()]
        stale = [(run_id, pid) for run_id, pid in stale if not _process_alive(pid)]
        if not stale:
            return []
        recovered = []
        with self._connect(write=True) as db:
            for run_id, pid in stale:
                changed = db.execute(
                    # finished_at stays empty: when the process died is not known, only when it was noticed.
                    "UPDATE runs SET state = 'interrupted', message = ?"
                    f" WHERE id = ? AND pid = ? AND state IN ({marks})",
                    (INTERRUPTED_MESSAGE, run_id, pid, *states),
                ).rowcount
                if changed:
                    recovered.append(run_id)
        return recovered

    def prune(self, *, older_than_seconds: float | None = None, keep: int | None = None) -> builtins.list[str]:
        """Delete finished runs (never one in RUNNING_STATES) started more than ``older_than_seconds`` ago
        and/or beyond the newest ``keep``; rows and folders; return deleted ids.

        Given both, a run goes if either says so. ``keep`` counts finished runs only: the ones still
        running are never deleted, so they do not take a place among those kept. The rows go in one
        transaction, then the folders: a folder that cannot be removed is a HistoryUnavailable naming
        it, and never leaves a row pointing at half a run."""
        if older_than_seconds is None and keep is None:
            raise ValueError("prune needs older_than_seconds, keep or both")
        if (older_than_seconds is not None and older_than_seconds < 0) or (keep is not None and keep < 0):
            raise ValueError(
                f"cannot prune with a negative limit (older_than_seconds {older_than_seconds}, keep {keep})"
            )
        if not self.index_path.exists():
            return []
        with self._connect(write=True) as db:
            finished = _finished_newest_first(db)
            doomed = set(list(finished)[keep:]) if keep is not None else set()
            if older_than_seconds is not None:
                cutoff = time.time() - older_than_seconds
                doomed.update(run_id for run_id, started_at in finished.items() if started_at < cutoff)
            deleted = [run_id for run_id in finished if run_id in doomed]  # newest first, like list()
            db.executemany("DELETE FROM runs WHERE id = ?", [(run_id,) for run_id in deleted])
        self._remove_folders(deleted)
        return deleted

    # -- inside --------------------------------------------------------------------------------

    def _remove_folders(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            folder = self._root / run_id
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:
                continue  # a run that never wrote a file, or a folder removed by hand: already gone
            except OSError as exc:
                raise HistoryUnavailable(
                    f"run history at {self._root}: run {run_id} was deleted from the index but its folder "
                    f"{folder} could not be removed ({_reason(exc)})",
                    where=str(self._root),
                ) from None

    def _one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        if not self.index_path.exists():
            return None
        with self._connect() as db:
            cursor = db.execute(sql, params)
            row = cursor.fetchone()
            return None if row is None else _decoded(cursor, row)

    @contextmanager
    def _writable(self) -> Iterator[None]:
        """The root created on the first write (never on a read), its failure said as the history's."""
        with self._unavailable():
            self._root.mkdir(parents=True, exist_ok=True)
        yield

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction on a connection of its own, committed on success and closed after,
        every failure of SQLite or the file system turned into HistoryUnavailable.

        A write takes the lock at BEGIN (IMMEDIATE), waiting for it up to the timeout: a transaction
        that read first and then writes would fail at once, without waiting, whenever another process
        committed in between (WAL's stale snapshot)."""
        with self._unavailable():
            db = sqlite3.connect(self.index_path, timeout=_LOCK_TIMEOUT_S, isolation_level=None)
        try:
            with self._unavailable():
                self._prepare(db)
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    with suppress(sqlite3.Error):  # the error being raised says more than a failed rollback
                        db.execute("ROLLBACK")
                raise
            with self._unavailable():
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            # Raised by the caller's statements inside the ``with`` (the setup above is already wrapped).
            raise self._failure(exc) from None
        finally:
            db.close()

    def _prepare(self, db: sqlite3.Connection) -> None:
        # NORMAL is safe in WAL mode (a power cut may lose the last commits, never corrupt the file)
        # and spares an fsync per commit, which two processes recording runs at once would queue on.
        db.execute("PRAGMA synchronous = NORMAL")
        # Checked on every connection, not once per instance (two reads of the header): a server
        # that runs for days must also cope with an index.db moved aside and made anew meanwhile.
        self._use_wal(db)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryUnavailable(
                f"run history at {self._root}: {self.index_path} has schema version {version}, "
                f"newer than this evalrun's {SCHEMA_VERSION}",
                where=str(self._root),
            )
        if version < SCHEMA_VERSION:
            # Two processes creating it at once: one waits for the other, then finds it made. Statement
            # by statement, as executescript would commit the transaction that serialises them.
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Switch a new index to WAL (persistent: once, by whoever comes first).

        The switch needs the file to itself and, unlike other statements, fails at once when another
        process has it open (the busy timeout does not apply): two processes creating the history
        together would fail. So it is retried, within the same time a lock is waited for."""
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            if time.monotonic() > deadline:
                raise HistoryUnavailable(
                    f"run history at {self._root} cannot be used ({self.index_path} cannot be put in WAL mode)",
                    where=str(self._root),
                )
            try:
                db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                time.sleep(0.005)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: sqlite3.Error | OSError) -> HistoryUnavailable:
        # OperationalError (a lock, an unwritable file) is a DatabaseError too: only the bare class
        # and its other subclasses say the file's content is not a database.
        damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        what = f"{self.index_path} is damaged" if damaged else "cannot be used"
        return HistoryUnavailable(
            f"run history at {self._root} {what} ({_reason(exc)})", where=str(self._root), damaged=damaged
        )


def _checked_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r} (1 to 64 letters, digits, '_' or '-')")
    return run_id


def _filters(**equal: str | None) -> tuple[str, tuple[str, ...]]:
    given = {column: value for column, value in equal.items() if value is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{column} = ?" for column in given), tuple(given.values())


def pass_rate_text(row: Mapping[str, Any]) -> str:
    """A row's pass rate as listings print it: of the cases that ran, and saying so when some did
    not (a run cut short at 26 of 240 is not "100.0 %" without a word)."""
    rate, total, not_run = row.get("pass_rate"), row.get("total") or 0, row.get("not_run") or 0
    if rate is None or not total or not_run >= total:
        return "-"
    return f"{rate:.1%}" + (f" of {total - not_run:,}" if not_run else "")


def _finished_newest_first(db: sqlite3.Connection) -> dict[str, float]:
    states = tuple(sorted(RUNNING_STATES))
    marks = ", ".join("?" for _ in states)
    rows = db.execute(
        f"SELECT id, started_at FROM runs WHERE state NOT IN ({marks}) ORDER BY started_at DESC, rowid DESC", states
    ).fetchall()
    return {run_id: started_at for run_id, started_at in rows}


def _decoded(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    names = [column[0] for column in cursor.description]
    record = dict(zip(names, row))
    for name in _JSON_COLUMNS:
        if isinstance(record.get(name), str):
            # Written by begin() as JSON; a value edited by hand into something else is shown as it is.
            with suppress(ValueError):
                record[name] = json.loads(record[name])
    return record


def _encode(value: Any) -> str:
    # default=str: a request may carry a Path or an enum; the history records it rather than fail the run.
    return json.dumps(value, default=str)


def _count(summary: Mapping[str, Any], key: str, default: int) -> int:
    value = summary.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _rate(summary: Mapping[str, Any], key: str) -> float | None:
    value = summary.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _process_alive(pid: int) -> bool:
    """Signal 0 checks that a process exists without touching it; PermissionError means it exists
    under another user. A pid of 0 or below would signal a whole process group: never alive here."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    # The message, not sqlite_errorcode: that attribute is Python 3.11's, and evalrun runs on 3.10.
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, sqlite3.Error) else f"{type(exc).__name__}: {text}"
