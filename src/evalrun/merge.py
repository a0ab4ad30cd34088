"""Shards recombined (``evalrun merge``): one results document, as one run would have written it.

Every count is a sum, and so are the figures made of counts (pass rate, cache efficiency, the
categories); the latency percentiles come from the shards' histograms added bucket by bucket,
exactly the histogram one run would have kept. What one run would have measured differently is
time: shards run side by side, so the merged wall time is the longest shard's, the rate is the
cases over it, the average concurrency is the shards' busy time over it, and the peak is the sum
of the shards' peaks (an upper bound: their peaks need not have been at the same moment).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .errors import ConfigError
from .metrics import LatencyHistogram
from .schema import SCHEMA_VERSION, RunState, Status
from .verdict import eval_exit_code, exit_reason, final_state

__all__ = ["merge_results"]

_COUNTS = ("total", "passed", "failed", "errors", "not_run", "cache_hits", "retries", "truncated")


def _histogram(summaries: Sequence[Mapping[str, Any]]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    growths = {summary["latency_histogram"]["growth"] for summary in summaries}
    if len(growths) > 1:
        raise ConfigError(f"the shards' latency histograms differ in their buckets ({sorted(growths)})")
    for summary in summaries:
        for index, count in summary["latency_histogram"]["buckets"].items():
            histogram.buckets[int(index)] = histogram.buckets.get(int(index), 0) + count
            histogram.count += count
    return histogram


def _by_category(cases: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each category's counts, from the cases themselves (a shard's pass rate alone cannot say how
    many of its cases ran)."""
    tally: dict[str, list[int]] = {}
    for case in cases:
        total, passed, ran = tally.setdefault(case["category"], [0, 0, 0])
        tally[case["category"]] = [
            total + 1,
            passed + (case["status"] == Status.PASS),
            ran + (case["status"] != Status.NOT_RUN),
        ]
    return {
        name: {"total": total, "passed": passed, "pass_rate": round(passed / ran, 6) if ran else 0.0}
        for name, (total, passed, ran) in sorted(tally.items())
    }


def _summary(summaries: Sequence[Mapping[str, Any]], cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    counts = {name: sum(summary[name] for summary in summaries) for name in _COUNTS}
    ran = counts["passed"] + counts["failed"] + counts["errors"]
    wall = max(summary["wall_seconds"] for summary in summaries)
    histogram = _histogram(summaries)
    busy = sum(summary["avg_concurrency"] * summary["wall_seconds"] for summary in summaries)
    return {
        "total": counts["total"],
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errors": counts["errors"],
        "not_run": counts["not_run"],
        "pass_rate": round(counts["passed"] / ran, 6) if ran else 0.0,
        "wall_seconds": round(wall, 3),
        "cases_per_second": round(ran / wall, 2) if wall > 0 else 0.0,
        "cache_hits": counts["cache_hits"],
        "cache_efficiency": round(counts["cache_hits"] / ran, 6) if ran else 0.0,
        "avg_concurrency": round(busy / wall, 2) if wall > 0 else 0.0,
        "peak_concurrency": sum(summary["peak_concurrency"] for summary in summaries),
        "retries": counts["retries"],
        "tokens": {part: sum(summary["tokens"][part] for summary in summaries) for part in ("prompt", "completion")},
        "latency_ms": {
            "p50": round(histogram.percentile(0.5), 1),
            "p95": round(histogram.percentile(0.95), 1),
        },
        "by_category": _by_category(cases),
        "truncated": counts["truncated"],
        "warnings": [warning for summary in summaries for warning in summary["warnings"]],
        "latency_histogram": {
            "growth": summaries[0]["latency_histogram"]["growth"],
            "buckets": {str(index): count for index, count in sorted(histogram.buckets.items())},
        },
    }


def _check_disjoint(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    seen: dict[tuple[str, str, int], str] = {}
    for document, name in zip(documents, names):
        for case in document["cases"]:
            key = (case["id"], case["model"], case["repeat"])
            if key in seen:
                raise ConfigError(f"{name}: case {case['id']!r} is in {seen[key]} too: shards must not overlap")
            seen[key] = name


def merge_results(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """One results document from shards' (``names`` say where each came from, for errors). Cases
    keep each shard's order, the shards' not-run cases last, as one run lists them."""
    if not documents:
        raise ConfigError("no results to merge")
    for document, name in zip(documents, names):
        if "latency_histogram" not in document["summary"]:
            raise ConfigError(
                f"{name}: no latency_histogram in its summary (results of an older evalrun): run it again to merge"
            )
    _check_disjoint(documents, names)
    _check_shards(documents, names)
    runs = [document["run"] for document in documents]
    cases = list(_cases(documents))
    summary = _summary([document["summary"] for document in documents], cases)
    settings = runs[0]["settings"]
    state, code, reason = _ending(runs, summary, settings)
    run: dict[str, Any] = {
        "id": uuid.uuid4().hex[:12],
        "provider": runs[0]["provider"],
        "models": list(dict.fromkeys(model for run in runs for model in run["models"])),
        "suites": list(dict.fromkeys(suite for run in runs for suite in run["suites"])),
        "started_at": min(run["started_at"] for run in runs),
        "settings": {**settings, "shard": None, "merged_from": [run["id"] for run in runs]},
        "state": state,
        "exit_code": code,
        "exit_reason": reason,
    }
    return {"schema": SCHEMA_VERSION, "run": run, "summary": summary, "cases": cases}


def _ending(
    runs: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[str, int, str]:
    """The merged run's state, exit code and reason, as one run with these figures would have
    had them: a shard that stopped (interrupted, timed out, refused) stops the whole; otherwise
    the merged counts are held to the run's thresholds."""
    min_pass_rate, max_errors = settings.get("min_pass_rate", 1.0), settings.get("max_errors", 0)
    ended = [run for run in runs if run.get("state", RunState.COMPLETED) not in (RunState.COMPLETED, RunState.ERROR)]
    ended += [
        run
        for run in runs
        if run.get("state") == RunState.ERROR and "more than --max-errors" not in run.get("exit_reason", "")
    ]
    state = RunState(ended[0]["state"]) if ended else RunState.COMPLETED
    message = _without_code(ended[0].get("exit_reason", "")) if ended else ""
    code = eval_exit_code(state, summary["errors"], summary["pass_rate"], min_pass_rate, max_errors)
    state, message = final_state(state, message, code, summary["errors"], max_errors)
    return state, int(code), exit_reason(code, summary, message, min_pass_rate, max_errors)


def _without_code(reason: str) -> str:
    """``exit 130: stopped by SIGINT; 12 tasks not run`` as its why: ``stopped by SIGINT``."""
    why = reason.split(": ", 1)[1] if reason.startswith("exit ") and ": " in reason else reason
    return why.split("; ")[0]


def _check_shards(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    """Every shard of one split, each once: a missing shard is a merge that would look whole."""
    shards = [document["run"]["settings"].get("shard") for document in documents]
    if not any(shards):
        return
    counts = {shard.split("/")[1] for shard in shards if shard}
    if None in shards or len(counts) > 1:
        raise ConfigError(
            "the results are not shards of one split (--shard I/N with one N): "
            + ", ".join(f"{n}: {s or 'no --shard'}" for n, s in zip(names, shards))
        )
    count = int(counts.pop())
    missing = [f"{i}/{count}" for i in range(1, count + 1) if f"{i}/{count}" not in shards]
    if missing:
        raise ConfigError(f"shard {', '.join(missing)} missing: merge every shard of the split, or none is whole")


def _cases(documents: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    cases = [case for document in documents for case in document["cases"]]
    yield from (case for case in cases if case["status"] != Status.NOT_RUN)
    yield from (case for case in cases if case["status"] == Status.NOT_RUN)


def case_lines(document: Mapping[str, Any]) -> list[str]:
    """The cases as the spool keeps them (one JSON object each)."""
    return [json.dumps(case, ensure_ascii=False) for case in document["cases"]]
