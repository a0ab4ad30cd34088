"""Shared fixtures: one simulated provider per test process, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evalrun.sim import SimConfig, SimProcess


@pytest.fixture(scope="session")
def _sim_process() -> Iterator[SimProcess]:
    with SimProcess(SimConfig()) as sim:
        yield sim


@pytest.fixture
def sim(_sim_process: SimProcess) -> SimProcess:
    """The simulated provider on 127.0.0.1, with default behaviour and fresh stats."""
    defaults = {k: v for k, v in vars(SimConfig()).items()}
    _sim_process.control(**defaults)
    _sim_process.reset_stats()
    return _sim_process
