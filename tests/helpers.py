"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalrun.sim import SimProcess


def write_suite(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(case) + "\n" for case in cases))
    return path


def arithmetic_cases(n: int, category: str = "math") -> list[dict[str, Any]]:
    return [
        {"id": f"c{i:05d}", "category": category, "prompt": f"What is {i}+{i}?", "expected": str(2 * i)}
        for i in range(n)
    ]


def local_config(path: Path, sim: SimProcess, **provider: Any) -> Path:
    """A config.toml whose profile ``local`` points at the test's simulated provider."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in provider.items())
    path.write_text(f'[providers.local]\nbase_url = "{sim.base_url}"\nmodel = "sim-1"\n{extra}')
    return path
