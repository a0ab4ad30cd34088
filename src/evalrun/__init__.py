"""evalrun: fast, cached, observable LLM evaluation runs.

The public API is re-exported here and imported lazily, so that ``evalrun --help`` and the
simulated provider's child process start without loading the HTTP and cache stacks.
CONTRIBUTING.md in the repository maps the modules behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import lazy_exports
from ._startup import leave_out_httpx_cli

leave_out_httpx_cli()

_exports = lazy_exports(
    __name__,
    {
        "Runner": "runner",
        "RunResult": "runner",
        "Settings": "settings",
        "TestSettings": "settings",
        "ConfigError": "errors",
        "SuiteError": "errors",
        "load_settings": "settings",
        "load_test_settings": "settings",
        "Case": "suite",
        "load_suites": "suite",
        "CaseResult": "schema",
        "RunState": "schema",
        "Status": "schema",
        "RunMetrics": "metrics",
        "ExitCode": "exitcodes",
        "ProviderProfile": "providers",
        "ProviderError": "providers",
        "ChatResponse": "providers",
        "ResponseCache": "cache",
        "Scorer": "scoring",
        "Verdict": "scoring",
        "SimProcess": "sim",
        "SimConfig": "sim",
        "TestRunner": "testrun.runner",
        "TestResult": "testrun.runner",
    },
)
__all__ = [
    "Case",
    "CaseResult",
    "ChatResponse",
    "ConfigError",
    "ExitCode",
    "ProviderError",
    "ProviderProfile",
    "ResponseCache",
    "RunMetrics",
    "RunResult",
    "RunState",
    "Runner",
    "Scorer",
    "Settings",
    "SimConfig",
    "SimProcess",
    "Status",
    "SuiteError",
    "TestResult",
    "TestRunner",
    "TestSettings",
    "Verdict",
    "__version__",
    "load_settings",
    "load_suites",
    "load_test_settings",
]

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .errors import ConfigError, SuiteError
    from .exitcodes import ExitCode
    from .metrics import RunMetrics
    from .providers import ChatResponse, ProviderError, ProviderProfile
    from .runner import Runner, RunResult
    from .schema import CaseResult, RunState, Status
    from .scoring import Scorer, Verdict
    from .settings import Settings, TestSettings, load_settings, load_test_settings
    from .sim import SimConfig, SimProcess
    from .suite import Case, load_suites
    from .testrun.runner import TestResult, TestRunner

    __version__: str


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's, read once asked (metadata is slow)
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("evalrun")
        except PackageNotFoundError:  # run from a checkout that was never installed
            return "0+unknown"
    return _exports(name)
