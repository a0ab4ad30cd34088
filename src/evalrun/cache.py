"""The response cache: diskcache, keyed by everything that can change a model's answer.

The key is the SHA-256 of canonical JSON of a versioned record (provider, model, messages,
output-affecting params, category, repeat index). Transport settings and API keys never enter it,
so changing ``--concurrency`` still hits and no secret is ever written. The record is stored next to
the response so ``evalrun cache explain`` can say *why* a case missed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diskcache

from .client import ChatResponse

__all__ = ["KEY_VERSION", "CacheEntry", "ResponseCache", "cache_key", "key_record"]

KEY_VERSION = 1
_BATCH = 256  # answers queued before a write is forced, whatever the flush timer says


def key_record(
    provider: str,
    base_url: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    category: str,
    repeat: int | None = None,
) -> dict[str, Any]:
    """The record whose hash is the key; ``repeat`` is given only when a run repeats cases."""
    record: dict[str, Any] = {
        "v": KEY_VERSION,
        "provider": {"name": provider, "base_url": base_url},
        "model": model,
        "messages": list(messages),
        "params": dict(params),
        "category": category,
    }
    if repeat is not None:
        record["repeat"] = repeat
    return record


def cache_key(record: Mapping[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    record: dict[str, Any]
    response: ChatResponse
    case_id: str
    stored_at: float


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                changes.append(f"{where}: added {json.dumps(new[key])[:80]}")
            elif key not in new:
                changes.append(f"{where}: removed (was {json.dumps(old[key])[:80]})")
            else:
                changes.extend(_diff(old[key], new[key], where))
        return changes
    if old != new:
        return [f"{path}: {json.dumps(old)[:80]} -> {json.dumps(new)[:80]}"]
    return []


class ResponseCache:
    """Get and put model responses; ``mode`` is ``on``, ``refresh`` (write only) or ``off``."""

    def __init__(self, directory: str | Path, mode: str = "on", ttl: float | None = None) -> None:
        self.mode = mode
        self._ttl = ttl
        self._store: diskcache.Cache | None = None
        self._pending: list[tuple[str, dict[str, Any]]] = []
        if mode != "off":
            # Eviction by size only, so that reads never write (a warm run is read-only and fast);
            # a small SQLite page cache and no memory map keep memory flat as the cache grows.
            self._store = diskcache.Cache(
                str(directory),
                eviction_policy="least-recently-stored",
                size_limit=8 * 2**30,
                sqlite_cache_size=2**10,
                sqlite_mmap_size=0,
            )

    @property
    def reads(self) -> bool:
        return self.mode == "on"

    def close(self) -> None:
        if self._store is not None:
            self.flush()
            self._store.close()

    def get(self, key: str) -> ChatResponse | None:
        if self._store is None or not self.reads:
            return None
        value = self._store.get(key)
        return ChatResponse(**value["response"]) if value is not None else None

    def put(self, key: str, record: Mapping[str, Any], response: ChatResponse, case_id: str) -> None:
        """Queue a complete answer for the next ``flush``; empty answers are never stored."""
        if self._store is None or not response.text.strip():
            return
        value = {"record": dict(record), "response": asdict(response), "case_id": case_id, "stored_at": time.time()}
        self._pending.append((key, value))
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Write what is queued in one transaction (one commit for many answers, not one each)."""
        if self._store is None or not self._pending:
            return
        pending, self._pending = self._pending, []
        with self._store.transact(retry=True):
            for key, value in pending:
                self._store.set(key, value, expire=self._ttl, retry=True)

    # -- inspection (evalrun cache ...) -------------------------------------------------------

    def entries(self) -> Iterator[CacheEntry]:
        if self._store is None:
            return
        for key in self._store.iterkeys():
            value = self._store.get(key)
            if value is not None:
                yield CacheEntry(
                    value["record"], ChatResponse(**value["response"]), value["case_id"], value["stored_at"]
                )

    def stats(self) -> dict[str, Any]:
        if self._store is None:
            return {"entries": 0, "bytes": 0}
        return {"directory": self._store.directory, "entries": len(self._store), "bytes": self._store.volume()}

    def prune(self) -> int:
        """Drop expired entries (``--cache-ttl``) and trim the cache to its size limit."""
        if self._store is None:
            return 0
        return int(self._store.expire()) + int(self._store.cull())

    def clear(self) -> int:
        return int(self._store.clear()) if self._store is not None else 0

    def explain(self, case_id: str, record: Mapping[str, Any]) -> list[str]:
        """Say whether ``record`` hits, and if not, what differs from the newest entry of the case."""
        key = cache_key(record)
        if self._store is not None and key in self._store:
            return [f"hit: {case_id} is cached under {key[:16]}…"]
        previous = [e for e in self.entries() if e.case_id == case_id]
        if not previous:
            return [f"miss: {case_id} has never been cached (key {key[:16]}…)"]
        newest = max(previous, key=lambda e: e.stored_at)
        changes = _diff(newest.record, dict(record))
        return [f"miss: {case_id} was cached with a different key; what changed since:", *changes]
