"""Report files: results.json, JUnit XML and Markdown for eval runs, and what they share with
test runs (atomic writes, the one JUnit writer). Cases are streamed from a disk spool.

Names are re-exported lazily: a test run needs the JUnit writer, not the spool's tempfile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .files import atomic_write, quoteattr
    from .junit import JUnitCase, JUnitTotals, write_junit
    from .results import write_reports
    from .spool import CaseSpool

__all__ = ["CaseSpool", "JUnitCase", "JUnitTotals", "atomic_write", "quoteattr", "write_junit", "write_reports"]
__getattr__ = lazy_exports(
    __name__,
    {
        "atomic_write": "files",
        "quoteattr": "files",
        "JUnitCase": "junit",
        "JUnitTotals": "junit",
        "write_junit": "junit",
        "write_reports": "results",
        "CaseSpool": "spool",
    },
)
