"""What a run will do: the selection of cases, and the tasks (case x model x repeat) made of them.

Light on purpose (no suite parsing here): the cache key and the engine both speak of ``Task``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .suite import Case

__all__ = ["Task", "case_selector", "tasks"]


@dataclass(frozen=True)
class Task:
    """One call's worth of work: a case, for one model, the ``repeat``-th time."""

    case: Case
    model: str
    repeat: int


def tasks(cases: Iterable[Case], models: Sequence[str], repeat: int) -> Iterator[Task]:
    """Every case x model x repeat, lazily, in suite order."""
    for case in cases:
        for model in models:
            for index in range(repeat):
                yield Task(case, model, index)


def shard_of(case_id: str, count: int) -> int:
    """The shard (1 to ``count``) a case belongs to, by a hash of its id: the same whatever the
    order of the file, the machine or the Python (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "big") % count + 1


def case_selector(
    categories: Sequence[str], pattern: str | None, shard: tuple[int, int] | None = None
) -> Callable[[Case], bool] | None:
    """``--category``, ``--filter`` (a regex on the id) and ``--shard I/N`` as one predicate;
    None selects all."""
    wanted = set(categories)
    try:
        compiled = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise ConfigError(f"--filter: invalid regex {pattern!r}: {exc}") from None
    if not wanted and compiled is None and shard is None:
        return None

    def selected(case: Case) -> bool:
        return (
            (not wanted or case.category in wanted)
            and (compiled is None or bool(compiled.search(case.id)))
            and (shard is None or shard_of(case.id, shard[1]) == shard[0])
        )

    return selected
