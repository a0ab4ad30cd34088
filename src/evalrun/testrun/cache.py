"""The opt-in test cache: replay the last result when nothing that could change it has changed.

The fingerprint covers the contents of every file git knows plus untracked files it does not
ignore (every file under the folder outside git), the interpreter, the installed distributions
and their versions, and the arguments. Environment variables and the network are *not* covered:
that is why the cache is opt-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..reports.files import atomic_write
from ..schema import TestResultsDocument

__all__ = ["fingerprint", "load", "store"]

_SKIP_DIRS = {
    ".git",
    ".evalrun",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "node_modules",
    ".venv",
    "venv",
    ".tox",
    ".nox",
}
_ENVIRONMENT_PROBE = (
    "import sys, importlib.metadata as m; "
    "print(sys.version); "
    "print(sorted({(d.metadata['Name'] or '').lower() + '==' + d.version for d in m.distributions()}))"
)


def _project_files(root: Path, exclude: set[str]) -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        files = {name for name in listed.decode().split("\0") if name}
    except (OSError, subprocess.SubprocessError):
        files = set(_walk(root))
    return sorted(f for f in files if _counts(f, exclude) and (root / f).is_file())


def _counts(name: str, exclude: set[str]) -> bool:
    """Whether a file can change a test result (not a cache, bytecode, or evalrun's own output)."""
    parts = Path(name).parts
    return name not in exclude and not name.endswith((".pyc", ".pyo")) and not _SKIP_DIRS.intersection(parts)


def _walk(root: Path) -> Iterator[str]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in names:
            yield os.path.relpath(os.path.join(folder, name), root)


def fingerprint(root: Path, python: str, arguments: Sequence[str], outputs: Sequence[str] = ()) -> str:
    """The hash of everything a test result depends on; ``outputs`` (our own files) do not count."""
    exclude = {os.path.relpath(os.path.abspath(path), os.path.abspath(root)) for path in outputs}
    digest = hashlib.sha256()
    for name in _project_files(root, exclude):
        digest.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    environment = subprocess.run([python, "-c", _ENVIRONMENT_PROBE], capture_output=True, text=True, timeout=60)
    digest.update(json.dumps([python, environment.stdout, list(arguments)]).encode())
    return digest.hexdigest()


def _path(state_dir: Path, key: str) -> Path:
    return state_dir / "cache" / f"{key[:32]}.json"


def load(state_dir: Path, key: str) -> TestResultsDocument | None:
    try:
        document: TestResultsDocument = json.loads(_path(state_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document


def store(state_dir: Path, key: str, document: TestResultsDocument) -> None:
    atomic_write(_path(state_dir, key), lambda h: json.dump(document, h))
