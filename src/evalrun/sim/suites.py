"""Generated suites the simulated model answers: arithmetic, one case a line, any size.

What ``evalrun bench``, the benchmarks and the tests run when the suite itself is not the point.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["arithmetic_cases", "write_suite"]


def arithmetic_cases(
    count: int, categories: Sequence[str] = ("math",), id_format: str = "c{:05d}"
) -> Iterator[dict[str, Any]]:
    """``What is i+i?`` for i below ``count``, expecting ``2i``; categories taken in turn."""
    for i in range(count):
        yield {
            "id": id_format.format(i),
            "category": categories[i % len(categories)],
            "prompt": f"What is {i}+{i}?",
            "expected": str(2 * i),
        }


def write_suite(path: str | Path, cases: Iterable[dict[str, Any]]) -> Path:
    """A JSONL suite of ``cases``, written one line at a time (a million cases stay out of memory)."""
    target = Path(path)
    with target.open("w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(json.dumps(case) + "\n")
    return target
