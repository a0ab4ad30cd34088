"""``evalrun init``: a commented config.toml and an example suite, then the command to run next."""

from __future__ import annotations

from pathlib import Path

from ._common import user_errors


def init_command() -> None:
    """Write config.toml (if there is none) and suites/example.jsonl, and say what to run next."""
    from ..scaffold import SUITE, scaffold

    with user_errors():
        done = scaffold(Path.cwd())
    for name in done.written:
        print(f"wrote {name}")
    for name in done.kept:
        print(f"kept {name}: it is there already")
    print(f"next: evalrun eval sim --suite {SUITE}   (the simulated provider; then a real one: evalrun providers)")
