"""Shared fixtures: one simulated provider per test process, reset before every test."""

from __future__ import annotations

import os
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ``EVALRUN_NO_SKIPS=1`` (set by ``.ci/run``), a test that skips (a missing system
    package) fails instead: CI installs every package, so it never skips silently."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("EVALRUN_NO_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, and EVALRUN_NO_SKIPS=1 forbids it: {report.longrepr}"
