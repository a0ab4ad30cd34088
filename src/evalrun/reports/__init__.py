"""Report files: results.json, JUnit XML and Markdown for eval runs, and what they share with
test runs (atomic writes, the one JUnit writer). Cases are streamed from a disk spool."""

from .files import atomic_write, quoteattr
from .junit import JUnitCase, JUnitTotals, write_junit
from .results import write_reports
from .spool import CaseSpool

__all__ = ["CaseSpool", "JUnitCase", "JUnitTotals", "atomic_write", "quoteattr", "write_junit", "write_reports"]
