"""Shards recombined (``evalrun merge``): one results document, as one run would have written it.

Every count is a sum, and so are the figures made of counts (pass rate, cache efficiency, the
categories); the latency percentiles come from the shards' histograms added bucket by bucket,
exactly the histogram one run would have kept. What one run would have measured differently is
time: shards run side by side, so the merged wall time is the longest shard's, the rate is the
cases over it, the average concurrency is the shards' busy time over it, and the peak is the sum
of the shards' peaks (an upper bound: their peaks need not have been at the same moment).

Only shards of one run are merged: every file's settings must agree in all but the shard's index
and what is the runner's own (``_RUN_LOCAL``), and the files are taken in the order of their shards,
so that the merged run, its thresholds and its exit code never depend on the order they are named in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import Any

from .errors import ConfigError
from .metrics import LatencyHistogram
from .schema import SCHEMA_VERSION, RunState, Status
from .verdict import eval_exit_code, exit_reason, final_state

__all__ = ["merge_results"]

_COUNTS = ("total", "passed", "failed", "errors", "not_run", "cache_hits", "retries", "truncated")

# What shards of one run may differ in (``run.settings``, as ``Settings.public`` writes it). Their
# index, and what is each runner's own: where it wrote its files, and how it went about its calls
# (concurrency, pacing, the cache, retries, timeouts, the largest body accepted) — which decide how
# fast and how hard a runner tried, never which cases ran, what they asked or how an answer is judged
# (the cache key leaves them out for the same reason); their errors and timeouts are in the merged
# figures anyway. Everything else must agree — provider, models, suites, the selection, repeat, the
# number of shards, the thresholds, the default assertion — or the merge is no run at all, and its
# thresholds would be whichever file came first. A setting not named here is held to agree: a new
# one refuses a merge until it is found to be the runner's own, never merges what it should not.
_RUN_LOCAL = frozenset(
    {
        "concurrency", "rpm", "tpm", "cache", "cache_dir", "cache_url", "cache_fallback", "cache_ttl",
        "timeout", "request_timeout", "max_response_bytes", "retries", "retry_base_delay", "rate_limit_wait",
        "output", "junit", "summary_md", "events", "progress", "history_dir", "metrics_file", "html",
        "merged_from",
    }
)  # fmt: skip
# The same in the provider's profile: its pacing, and the variable this machine reads the key from.
# Its API, base URL, model and options (Anthropic's max_tokens, the simulator's faults) must agree.
_PROFILE_RUN_LOCAL = frozenset({"name", "rpm", "tpm", "api_key_env"})
_ABSENT = object()


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
        name: {"total": total, "passed": passed, "pass_rate": round(passed / ran, 6) if ran else None}
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
    # In the order of their shards (the names breaking ties, for the messages): the first stopped
    # shard's reason, and the cases' order, are then the same whichever order the files were named in.
    order = sorted(range(len(documents)), key=lambda i: (_shard(documents[i]) or (1, 1), names[i]))
    documents, names = [documents[i] for i in order], [names[i] for i in order]
    _check_one_run(documents, names)
    _check_shards(documents, names)
    _check_disjoint(documents, names)
    runs = [document["run"] for document in documents]
    cases = list(_cases(documents))
    summary = _summary([document["summary"] for document in documents], cases)
    settings = runs[0]["settings"]  # every shard's, but for the shard and what is its runner's own
    state, code, reason = _ending(runs, summary, settings)
    run: dict[str, Any] = {
        "id": uuid.uuid4().hex[:12],
        "provider": runs[0]["provider"],
        "models": runs[0]["models"],
        "suites": runs[0]["suites"],
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


def _shard(document: Mapping[str, Any]) -> tuple[int, int] | None:
    """A results file's ``--shard I/N`` as ``(I, N)``; None for a whole run."""
    shard = document["run"]["settings"].get("shard")
    if not shard:
        return None
    index, _, count = str(shard).partition("/")
    return int(index), int(count)


def _must_agree(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What of a shard's settings every shard of its run shares: all but ``_RUN_LOCAL``, the
    shard as the number of shards alone, the provider's profile as its own fields."""
    agreed = {name: value for name, value in settings.items() if name not in _RUN_LOCAL | {"providers"}}
    shard = settings.get("shard")
    agreed["shard"] = str(shard).partition("/")[2] if shard else None
    # The suites by file name: a CI matrix names one suite by another path on each machine (a
    # checkout's folder, the package's own sample in each Python's site-packages); that their
    # cases are one set, each in one shard, the case ids say (``_check_disjoint``).
    agreed["suites"] = [PurePath(str(suite)).name for suite in settings.get("suites") or ()]
    profile = (settings.get("providers") or {}).get(settings.get("provider"))
    for name, value in (profile or {}).items():
        if name not in _PROFILE_RUN_LOCAL:
            agreed[f"profile {name}"] = value
    return agreed


def _differences(first: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """What differs between two shards' settings, one phrase each: ``min_pass_rate 0.9 vs 0.1``."""
    mine, theirs = _must_agree(first), _must_agree(other)
    found = []
    for name in dict.fromkeys([*mine, *theirs]):
        if mine.get(name, _ABSENT) == theirs.get(name, _ABSENT):
            continue
        if name == "shard":
            found.append(f"{_shard_words(first)} vs {_shard_words(other)}")
        else:
            found.append(f"{name} {_value(mine.get(name, _ABSENT))} vs {_value(theirs.get(name, _ABSENT))}")
    return found


def _shard_words(settings: Mapping[str, Any]) -> str:
    shard = settings.get("shard")
    return f"--shard {shard}" if shard else "no --shard"


def _value(value: object) -> str:
    if value is _ABSENT:
        return "(not recorded)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _check_one_run(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    """Shards of one run only: the same settings but for the shard's index and the runners' own.
    A merge of anything else has no thresholds of its own, nor one set of cases."""
    first = documents[0]["run"]["settings"]
    for document, name in zip(documents[1:], names[1:]):
        differences = _differences(first, document["run"]["settings"])
        if differences:
            raise ConfigError(
                f"{names[0]} and {name} are not shards of one run: {'; '.join(differences)} "
                "(shards of one run differ only in I of --shard I/N and in each runner's own settings: "
                "output files, --concurrency, the cache, retries, timeouts)"
            )


def _check_shards(documents: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    """Every shard of one split, each once: a missing shard is a merge that would look whole, and
    a whole run (no ``--shard``: the one shard of one) merged with another is one run twice."""
    seen: dict[tuple[int, int], str] = {}
    for document, name in zip(documents, names):
        shard = _shard(document) or (1, 1)
        if shard in seen:
            what = f"shard {shard[0]}/{shard[1]}" if _shard(document) else "whole runs (no --shard)"
            raise ConfigError(f"{seen[shard]} and {name} are both {what}: shards must not overlap")
        seen[shard] = name
    count = next(iter(seen))[1]  # one N: _check_one_run saw to it
    missing = [f"{i}/{count}" for i in range(1, count + 1) if (i, count) not in seen]
    if missing:
        raise ConfigError(f"shard {', '.join(missing)} missing: merge every shard of the split, or none is whole")


def _cases(documents: Sequence[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    cases = [case for document in documents for case in document["cases"]]
    yield from (case for case in cases if case["status"] != Status.NOT_RUN)
    yield from (case for case in cases if case["status"] == Status.NOT_RUN)


def case_lines(document: Mapping[str, Any]) -> list[str]:
    """The cases as the spool keeps them (one JSON object each)."""
    return [json.dumps(case, ensure_ascii=False) for case in document["cases"]]
