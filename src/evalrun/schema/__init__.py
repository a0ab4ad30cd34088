"""The results schema, in one place: states and statuses, and every record evalrun writes.

``schemas/`` in the repository holds the same contract as JSON Schema, for other programs.
"""

from ._records import (
    SCHEMA_VERSION,
    AssertionResult,
    CaseResult,
    CategoryProgress,
    CategorySummary,
    LatencySummary,
    ProgressCounts,
    ProgressDict,
    ResultsDocument,
    RunInfo,
    Summary,
    TestCounts,
    TestRecord,
    TestResultsDocument,
    TestSummary,
    Tokens,
    not_run_json,
)
from ._states import FINAL_STATES, RunKind, RunState, Status, TestOutcome

__all__ = [
    "FINAL_STATES",
    "SCHEMA_VERSION",
    "AssertionResult",
    "CaseResult",
    "CategoryProgress",
    "CategorySummary",
    "LatencySummary",
    "ProgressCounts",
    "ProgressDict",
    "ResultsDocument",
    "RunInfo",
    "RunKind",
    "RunState",
    "Status",
    "Summary",
    "TestCounts",
    "TestOutcome",
    "TestRecord",
    "TestResultsDocument",
    "TestSummary",
    "Tokens",
    "not_run_json",
]
