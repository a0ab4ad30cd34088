"""The Markdown summary of an eval run (``--summary-md``), fit for ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import IO, Any

from ..schema import RunInfo, Status, Summary

__all__ = ["failure_text", "write_markdown"]

_FAILURES_SHOWN = 25


def failure_text(record: Mapping[str, Any]) -> str:
    """Why a case did not pass: its error, else the reasons of its failed assertions."""
    if record["error"]:
        return str(record["error"])
    reasons = [f"{a['type']}: {a['reason']}" for a in record["assertions"] if not a["pass"]]
    return "; ".join(reasons) or f"score {record['score']} below threshold"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"  # none of its cases ran


def write_markdown(
    handle: IO[str],
    run: RunInfo,
    summary: Summary,
    records: Iterable[Mapping[str, Any]],
    state: str,
    exit_code: int,
) -> None:
    s = summary
    verdict = "passed" if exit_code == 0 else f"did not pass, exit code {exit_code}"
    lines = [
        f"## evalrun: {run['provider']} — {s['pass_rate']:.1%} pass rate ({verdict})",
        "",
        f"Models: {', '.join(run['models'])} · state: {state} · run `{run['id']}`",
        "",
        "| cases | passed | failed | errors | not run | wall | cases/s | cache hits | p50 | p95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {s['total']} | {s['passed']} | {s['failed']} | {s['errors']} | {s['not_run']} | "
        f"{s['wall_seconds']:.1f} s | {s['cases_per_second']:.1f} | {s['cache_hits']} "
        f"({s['cache_efficiency']:.0%}) | {s['latency_ms']['p50']:.0f} ms | {s['latency_ms']['p95']:.0f} ms |",
        "",
        "| category | cases | passed | pass rate |",
        "|---|---|---|---|",
        *(
            f"| {name} | {c['total']} | {c['passed']} | {_rate(c['pass_rate'])} |"
            for name, c in s["by_category"].items()
        ),
    ]
    failing = s["failed"] + s["errors"]
    if failing:
        lines += ["", f"### Failures ({failing})", "", "| case | model | status | why |", "|---|---|---|---|"]
        shown = (r for r in records if r["status"] in (Status.FAIL, Status.ERROR))
        repeats = int(run["settings"].get("repeat") or 1)
        for record, _ in zip(shown, range(_FAILURES_SHOWN)):
            why = failure_text(record).replace("|", "\\|").replace("\n", " ")[:160]
            which = f" #{record['repeat'] + 1}/{repeats}" if repeats > 1 else ""  # which repeat of the case
            lines.append(f"| `{record['id']}`{which} | {record['model']} | {record['status']} | {why} |")
        if failing > _FAILURES_SHOWN:
            lines.append(f"| … and {failing - _FAILURES_SHOWN} more | | | |")
    handle.write("\n".join(lines) + "\n")
