"""``evalrun init``: the files a new project starts from, never over the user's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SUITE", "Scaffolded", "scaffold"]

_DATA = Path(__file__).parent / "data"
SUITE = "suites/example.jsonl"
#: What ``init`` writes (from its package data), where: a commented config and an example suite.
_FILES = {"config.toml": _DATA / "init-config.toml", SUITE: _DATA / "example.jsonl"}


@dataclass(frozen=True)
class Scaffolded:
    written: list[str]
    kept: list[str]  # there already: left as they are


def scaffold(root: Path) -> Scaffolded:
    """Write the starting files under ``root``, each only if it is not there yet."""
    written, kept = [], []
    for name, template in _FILES.items():
        target = root / name
        if target.exists():
            kept.append(name)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
        written.append(name)
    return Scaffolded(written, kept)
