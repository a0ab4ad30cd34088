"""``evalrun init``: the files a new project starts from, never over the user's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

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
    """Write the starting files under ``root``, each only if nothing is there yet (not even a
    dangling link); ``ConfigError`` naming the path when one cannot be written, before any is."""
    targets = {name: root / name for name in _FILES}
    for name, target in targets.items():
        folder = target.parent
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{name}: {folder.name} is there and is not a folder")
    written, kept = [], []
    for name, target in targets.items():
        if target.exists() or target.is_symlink():
            kept.append(name)
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as handle:  # never over a file that appeared meanwhile
                handle.write(_FILES[name].read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{name}: cannot write it: {exc.strerror or exc}") from None
        written.append(name)
    return Scaffolded(written, kept)
