"""The cache key: everything that can change a model's answer, and nothing else.

The key is the SHA-256 of canonical JSON of a versioned record: the provider (name and where its
answers come from), the model, the full message list, the parameters, the category, and the
repeat index when a run repeats cases. Transport settings and API keys never enter it, so a
changed ``--concurrency`` still hits and no secret is ever written. The record is stored next to
the answer so ``evalrun cache explain`` can say *why* a case missed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..plan import Task

__all__ = ["KEY_VERSION", "cache_key", "key_record", "task_key"]

KEY_VERSION = 1


def key_record(
    provider: Mapping[str, str],
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    category: str,
    repeat: int | None = None,
) -> dict[str, Any]:
    """The record whose hash is the key; ``repeat`` is given only when a run repeats cases.

    ``provider`` is the provider's identity (see ``providers.registry.cache_identity``): its name,
    where its answers come from, and any profile option that changes an answer."""
    record: dict[str, Any] = {
        "v": KEY_VERSION,
        "provider": dict(provider),
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


def task_key(provider: Mapping[str, str], task: Task, repeat_count: int) -> tuple[str, dict[str, Any]]:
    """A task's key and record (its repeat index counts only when the run repeats cases)."""
    case = task.case
    repeat = task.repeat if repeat_count > 1 else None
    record = key_record(provider, task.model, case.messages, case.params, case.category, repeat)
    return cache_key(record), record
