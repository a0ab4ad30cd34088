"""The disk store: diskcache (SQLite) in a folder, shared by runs and by processes at once.

Its work runs inline, on the event loop, in batches: the database is in WAL mode, where readers
never wait for a writer, and a batch of writes is one short transaction. A worker thread was
measured and lost twice: its hand-offs cost a fifth of a warm run's throughput, and a writer thread
contending for the GIL with a busy event loop fell 13,000 answers behind at 1,000 answers a second,
doubling peak memory. Values keep the layout of earlier evalrun versions, with its version added
(``VALUE_VERSION``), so an existing cache stays warm.

The cache is an accelerator, never a reason to lose a run: whatever SQLite or the file system says
(a full disk, a corrupt file, a read-only folder) leaves as ``CacheUnavailable`` naming the folder,
and a value this evalrun cannot decode (another version's, a foreign pickle, garbage) is a miss.
"""

from __future__ import annotations

import glob
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import DBNAME

from ..providers.base import ChatResponse
from .store import CacheUnavailable, StoredAnswer, StoreStats, one_line

__all__ = ["VALUE_VERSION", "DiskStore", "remove_files"]

_SIZE_LIMIT = 8 * 2**30
_FAULTS = (sqlite3.Error, OSError, diskcache.Timeout)
#: The layout of a stored value. Values written before it was recorded have the layout of version
#: 1 and no version, and are read as version 1: an existing cache stays warm.
VALUE_VERSION = 1


class _Disk(diskcache.Disk):  # type: ignore[misc]  # diskcache has no type hints
    """diskcache's own encoding, except that a value it cannot decode is read as absent."""

    def fetch(self, mode: int, filename: str | None, value: object, read: bool) -> object:
        try:
            return super().fetch(mode, filename, value, read)
        except OSError:
            raise  # a value file gone: diskcache reads that as a key removed meanwhile, a miss
        except Exception:  # unpickling what another program or version wrote may raise anything
            return None


class _Cache(diskcache.Cache):  # type: ignore[misc]  # diskcache has no type hints
    """diskcache's cache, closing its SQLite connection when its set-up fails: left open, the
    connection would hold on to files removed since (a full disk would stay full)."""

    def __init__(self, *args: Any, **settings: Any) -> None:
        try:
            super().__init__(*args, **settings)
        except BaseException:
            self.close()
            raise


class DiskStore:
    def __init__(self, directory: str | Path) -> None:
        self.where = str(directory)
        _check_folder(self.where)
        # Eviction by size only, so that reads never write (a warm run is read-only and fast);
        # a small SQLite page cache and no memory map keep memory flat as the cache grows.
        with self._faults():
            self._cache = _Cache(
                self.where,
                disk=_Disk,
                eviction_policy="least-recently-stored",
                size_limit=_SIZE_LIMIT,
                sqlite_cache_size=2**10,
                sqlite_mmap_size=0,
            )

    @contextmanager
    def _faults(self) -> Iterator[None]:
        try:
            yield
        except _FAULTS as exc:
            # CPython raises the bare DatabaseError only for SQLite's CORRUPT and NOTADB (and codes
            # it does not know): the files themselves are bad, and removing them repairs the cache.
            damaged = type(exc) is sqlite3.DatabaseError
            busy = isinstance(exc, diskcache.Timeout) or "locked" in str(exc)  # another run holds it
            raise CacheUnavailable(self.where, one_line(exc), damaged=damaged, busy=busy) from exc

    def _get_batch(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        get = self._cache.get
        with self._faults():
            return [_response(get(key)) for key in keys]

    async def get_many(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        return self._get_batch(keys)

    def _put_batch(self, entries: Sequence[tuple[str, StoredAnswer]], ttl: float | None) -> None:
        with self._faults(), self._cache.transact(retry=True):  # one commit for many answers, not one each
            for key, answer in entries:
                self._cache.set(key, _value(answer), expire=ttl, retry=True)

    async def put_many(self, entries: Sequence[tuple[str, StoredAnswer]], ttl: float | None) -> None:
        if entries:
            self._put_batch(entries, ttl)

    async def contains(self, key: str) -> bool:
        """Whether a run would hit: a value it cannot decode is there, but not an answer."""
        return self._get_batch([key])[0] is not None

    async def entries(self) -> AsyncIterator[StoredAnswer]:
        with self._faults():
            for key in self._cache.iterkeys():
                answer = _stored(self._cache.get(key))
                if answer is not None:
                    yield answer

    async def stats(self) -> StoreStats:
        with self._faults():
            self._check_integrity()
            return StoreStats(self.where, len(self._cache), int(self._cache.volume()))

    def _check_integrity(self) -> None:
        """A corrupt page shows only when something reads it: this reads every page (a fraction of
        a second for 200 MB), for the commands that say how the cache stands or rework it."""
        with closing(sqlite3.connect(os.path.join(self.where, DBNAME))) as db:
            [(report,)] = db.execute("PRAGMA quick_check(1)").fetchall()
        if report != "ok":  # its first line is a heading ("*** in database main ***")
            detail = next((line for line in report.splitlines() if not line.startswith("***")), report)
            raise CacheUnavailable(self.where, f"integrity check failed: {detail}", damaged=True)

    async def clear(self) -> int:
        with self._faults():
            return int(self._cache.clear())

    async def prune(self) -> int:
        with self._faults():
            self._check_integrity()  # pruning a corrupt database would only spread the damage
            return int(self._cache.expire()) + int(self._cache.cull())

    async def settle(self) -> None:
        """A folder holds nothing back."""

    async def aclose(self) -> None:
        self._cache.close()


def _check_folder(where: str) -> None:
    """Say plainly what SQLite would only call 'unable to open database file'."""
    if os.path.exists(where) and not os.path.isdir(where):
        raise CacheUnavailable(where, "not a folder")
    if os.path.isdir(where) and not os.access(where, os.W_OK):
        raise CacheUnavailable(where, "the folder is not writable")


def _value(answer: StoredAnswer) -> dict[str, Any]:
    return {
        "version": VALUE_VERSION,
        "record": dict(answer.record),
        "response": asdict(answer.response),
        "case_id": answer.case_id,
        "stored_at": answer.stored_at,
    }


def _response(value: object) -> ChatResponse | None:
    """The answer in a stored value; None (a miss) for another version's value or another layout."""
    if not isinstance(value, dict) or value.get("version", 1) != VALUE_VERSION:
        return None
    fields = value.get("response")
    try:
        return ChatResponse(**fields) if isinstance(fields, dict) else None
    except TypeError:  # fields this evalrun's answers do not have
        return None


def _stored(value: object) -> StoredAnswer | None:
    response = _response(value)
    if response is None or not isinstance(value, dict):
        return None
    try:
        return StoredAnswer(dict(value["record"]), response, str(value["case_id"]), float(value["stored_at"]))
    except (KeyError, TypeError, ValueError):
        return None


def remove_files(directory: str) -> None:
    """Remove a disk store's own files, its database and its value files, and nothing else:
    ``--cache-dir`` may name a folder that holds other things too."""
    if not os.path.isdir(directory):
        return
    names = [os.path.join(directory, DBNAME + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    # diskcache keeps values over 32 KB as files in two levels of two-hex-digit folders
    hex2 = "[0-9a-f]" * 2
    names += glob.glob(os.path.join(glob.escape(directory), hex2, hex2, "*.val"))
    for name in names:
        try:
            os.remove(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CacheUnavailable(directory, f"cannot remove {name}: {exc.strerror}") from exc
    value_folders = glob.glob(os.path.join(glob.escape(directory), hex2, hex2))
    for folder in [*value_folders, *glob.glob(os.path.join(glob.escape(directory), hex2))]:  # leaves first
        with suppress(OSError):  # a folder that still holds what is not the store's stays
            os.rmdir(folder)
