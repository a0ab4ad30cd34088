"""Two runs' results side by side: what regressed, what was fixed, and how each category moved.

Cases are matched by what names a task (id, model, repeat), so a suite that grew or shrank still
compares on what both runs have. A regression is a case that passed before and does not now
(fail or error); a fix is the reverse. Cases not run in either run are neither: nothing is known
of them. This is what ``evalrun diff`` prints and what its ``--fail-on-regression`` gate reads;
the dashboard's comparison reads it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .schema import SCHEMA_VERSION, Status

__all__ = ["CaseChange", "Comparison", "SliceChange", "compare", "load_results"]

TaskKey = tuple[str, str, int]  # id, model, repeat
_NONE: tuple[float | None, float | None] = (None, None)  # a slice a run did not have


@dataclass(frozen=True)
class CaseChange:
    """One case whose outcome changed, with what each run said of it."""

    id: str
    category: str
    model: str
    repeat: int
    before: str
    after: str
    reason: str  # why it does not pass now (a regression) or why it did not before (a fix)


@dataclass(frozen=True)
class SliceChange:
    """A category's (or a model's) pass rate and latency in each run; ``None`` where it had none."""

    name: str
    before_rate: float | None
    after_rate: float | None
    before_latency_ms: float | None
    after_latency_ms: float | None

    @property
    def delta(self) -> float | None:
        if self.before_rate is None or self.after_rate is None:
            return None
        return self.after_rate - self.before_rate


@dataclass(frozen=True)
class Comparison:
    before: Mapping[str, Any]  # the older run's summary
    after: Mapping[str, Any]
    regressions: list[CaseChange] = field(default_factory=list)
    fixes: list[CaseChange] = field(default_factory=list)
    added: int = 0  # cases only the newer run has
    removed: int = 0  # cases only the older run has
    still_failing: int = 0
    categories: list[SliceChange] = field(default_factory=list)
    models: list[SliceChange] = field(default_factory=list)


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json (``evalrun eval --output``), or ``ConfigError`` in one line naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict) or "cases" not in document or "summary" not in document:
        raise ConfigError(f"{path}: not an evalrun results file (no 'summary' and 'cases')")
    if document.get("schema") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: results schema {document.get('schema')!r}, this evalrun reads {SCHEMA_VERSION}")
    return document


def _by_task(cases: Iterable[Mapping[str, Any]]) -> dict[TaskKey, Mapping[str, Any]]:
    return {(case["id"], case["model"], case["repeat"]): case for case in cases}


def _why(case: Mapping[str, Any]) -> str:
    """A case's first failing assertion's reason, or its error: one line."""
    if case.get("error"):
        return " ".join(str(case["error"]).split())
    for check in case.get("assertions") or ():
        if not check.get("pass"):
            return " ".join(f"{check.get('type')}: {check.get('reason', '')}".split())
    return ""


def _slices(
    before: Mapping[TaskKey, Mapping[str, Any]], after: Mapping[TaskKey, Mapping[str, Any]], by: str
) -> list[SliceChange]:
    def stats(cases: Mapping[TaskKey, Mapping[str, Any]]) -> dict[str, tuple[float | None, float | None]]:
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for case in cases.values():
            if case["status"] != Status.NOT_RUN:
                grouped.setdefault(case[by], []).append(case)
        figures: dict[str, tuple[float | None, float | None]] = {}
        for name, ran in grouped.items():
            # A cached answer's latency is its original call's, as in the summary's percentiles:
            # the answer's own figure, so a warm run compares like a cold one.
            answered = sorted(c["latency_ms"] for c in ran if c["status"] != Status.ERROR)
            median = answered[len(answered) // 2] if answered else None
            figures[name] = (sum(c["status"] == Status.PASS for c in ran) / len(ran), median)
        return figures

    old, new = stats(before), stats(after)
    rows = []
    for name in sorted(set(old) | set(new)):
        (rate_before, latency_before), (rate_after, latency_after) = old.get(name, _NONE), new.get(name, _NONE)
        rows.append(SliceChange(name, rate_before, rate_after, latency_before, latency_after))
    return rows


def compare(older: Mapping[str, Any], newer: Mapping[str, Any]) -> Comparison:
    """What changed from the ``older`` results document to the ``newer``."""
    before, after = _by_task(older["cases"]), _by_task(newer["cases"])
    regressions, fixes, still_failing = [], [], 0
    for key in before.keys() & after.keys():
        old, new = before[key], after[key]
        if Status.NOT_RUN in (old["status"], new["status"]):
            continue
        passed_before, passes_now = old["status"] == Status.PASS, new["status"] == Status.PASS
        change = CaseChange(key[0], new["category"], key[1], key[2], old["status"], new["status"], "")
        if passed_before and not passes_now:
            regressions.append(_with_reason(change, _why(new)))
        elif passes_now and not passed_before:
            fixes.append(_with_reason(change, _why(old)))
        elif not passes_now:
            still_failing += 1
    order = sorted(before.keys() | after.keys())
    rank = {key: i for i, key in enumerate(order)}
    return Comparison(
        older["summary"],
        newer["summary"],
        sorted(regressions, key=lambda c: rank[(c.id, c.model, c.repeat)]),
        sorted(fixes, key=lambda c: rank[(c.id, c.model, c.repeat)]),
        added=len(after.keys() - before.keys()),
        removed=len(before.keys() - after.keys()),
        still_failing=still_failing,
        categories=_slices(before, after, "category"),
        models=_slices(before, after, "model"),
    )


def _with_reason(change: CaseChange, reason: str) -> CaseChange:
    return CaseChange(change.id, change.category, change.model, change.repeat, change.before, change.after, reason)
