"""What a run will do: the selection of cases, and the tasks (case x model x repeat) made of them.

Light on purpose (no suite parsing here): the cache key and the engine both speak of ``Task``.
"""

from __future__ import annotations

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


def case_selector(categories: Sequence[str], pattern: str | None) -> Callable[[Case], bool] | None:
    """``--category`` and ``--filter`` (a regex on the id) as one predicate; None selects all."""
    wanted = set(categories)
    try:
        compiled = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise ConfigError(f"--filter: invalid regex {pattern!r}: {exc}") from None
    if not wanted and compiled is None:
        return None

    def selected(case: Case) -> bool:
        return (not wanted or case.category in wanted) and (compiled is None or bool(compiled.search(case.id)))

    return selected
