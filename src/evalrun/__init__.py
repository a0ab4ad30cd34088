"""evalrun: fast, cached, observable LLM evaluation runs.

The public API is re-exported here and imported lazily, so that ``evalrun --help`` and the
simulated provider's child process start without loading the HTTP and cache stacks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Runner": "runner",
    "RunResult": "runner",
    "Settings": "config",
    "ConfigError": "config",
    "load_settings": "config",
    "Case": "suite",
    "SuiteError": "suite",
    "load_suites": "suite",
    "CaseResult": "results",
    "RunMetrics": "metrics",
    "ExitCode": "exitcodes",
    "ProviderClient": "client",
    "ProviderError": "client",
    "ResponseCache": "cache",
    "SimProcess": "sim",
    "SimConfig": "sim",
    "TestRunner": "testrun.runner",
    "TestSettings": "testrun.runner",
    "TestResult": "testrun.runner",
    "load_test_settings": "testrun.runner",
}
__all__ = [
    "Case",
    "CaseResult",
    "ConfigError",
    "ExitCode",
    "ProviderClient",
    "ProviderError",
    "ResponseCache",
    "RunMetrics",
    "RunResult",
    "Runner",
    "Settings",
    "SimConfig",
    "SimProcess",
    "SuiteError",
    "TestResult",
    "TestRunner",
    "TestSettings",
    "__version__",
    "load_settings",
    "load_suites",
    "load_test_settings",
]

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .client import ProviderClient, ProviderError
    from .config import ConfigError, Settings, load_settings
    from .exitcodes import ExitCode
    from .metrics import RunMetrics
    from .results import CaseResult
    from .runner import Runner, RunResult
    from .sim import SimConfig, SimProcess
    from .suite import Case, SuiteError, load_suites
    from .testrun.runner import TestResult, TestRunner, TestSettings, load_test_settings


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'evalrun' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
