"""Report files: results.json, JUnit XML and Markdown for eval runs, and what they share with
test runs (atomic writes, the one JUnit writer). Cases are streamed from a disk spool.

Names are re-exported lazily: a test run needs the JUnit writer, not the spool's tempfile.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .files import atomic_write, quoteattr
    from .junit import JUnitCase, JUnitTotals, write_junit
    from .results import write_reports
    from .spool import CaseSpool

__all__ = ["CaseSpool", "JUnitCase", "JUnitTotals", "atomic_write", "quoteattr", "write_junit", "write_reports"]
_HOMES = {
    "atomic_write": "files",
    "quoteattr": "files",
    "JUnitCase": "junit",
    "JUnitTotals": "junit",
    "write_junit": "junit",
    "write_reports": "results",
    "CaseSpool": "spool",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'evalrun.reports' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
