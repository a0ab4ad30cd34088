"""The results schema, in one place, and its writers (JSON, JUnit XML, Markdown).

Case records are spooled to a temporary JSON-lines file as they finish, so memory stays flat in
the number of cases and the report files are written by streaming that spool once the run ends,
whatever way it ended.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .metrics import RunMetrics

__all__ = ["SCHEMA_VERSION", "CaseResult", "CaseSpool", "build_summary", "write_reports"]

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "error", "not_run")


@dataclass(frozen=True)
class CaseResult:
    """One case x model x repeat, as it ended. ``to_dict`` gives the contract keys of DESIGN §5."""

    id: str
    category: str
    model: str
    repeat: int
    status: str
    score: float = 0.0
    response: str | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float = 0.0
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    cached: bool = False
    attempts: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "model": self.model,
            "repeat": self.repeat,
            "status": self.status,
            "score": self.score,
            "response": self.response,
            "assertions": self.assertions,
            "latency_ms": round(self.latency_ms, 3),
            "tokens": self.tokens,
            "cached": self.cached,
            "attempts": self.attempts,
            "error": self.error,
        }


def build_summary(metrics: RunMetrics) -> dict[str, Any]:
    overall = metrics.overall
    wall = metrics.elapsed
    return {
        "total": overall.total,
        "passed": overall.passed,
        "failed": overall.failed,
        "errors": overall.errors,
        "not_run": metrics.not_run,
        "pass_rate": round(overall.pass_rate, 6),
        "wall_seconds": round(wall, 3),
        "cases_per_second": round(overall.done / wall, 2) if wall > 0 else 0.0,
        "cache_hits": metrics.cache_hits,
        "cache_efficiency": round(metrics.cache_efficiency, 6),
        "avg_concurrency": round(metrics.avg_concurrency, 2),
        "peak_concurrency": metrics.peak_inflight,
        "retries": metrics.retries,
        "tokens": {"prompt": metrics.prompt_tokens, "completion": metrics.completion_tokens},
        "latency_ms": {
            "p50": round(metrics.latency.percentile(0.5), 1),
            "p95": round(metrics.latency.percentile(0.95), 1),
        },
        "by_category": {
            name: {"total": c.total, "passed": c.passed, "pass_rate": round(c.pass_rate, 6)}
            for name, c in sorted(metrics.by_category.items())
        },
    }


class CaseSpool:
    """Case records on disk, one JSON line each, in the order they finished."""

    def __init__(self) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="evalrun-cases-")
        self.count = 0
        self._reading = False

    def add(self, result: CaseResult) -> None:
        if self._reading:  # a reader may have left the position mid-file
            self._file.seek(0, os.SEEK_END)
            self._reading = False
        self._file.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self.count += 1

    def records(self) -> Iterator[dict[str, Any]]:
        self._file.flush()
        self._file.seek(0)
        self._reading = True
        for line in self._file:
            yield json.loads(line)

    def close(self) -> None:
        self._file.close()


def quoteattr(text: str) -> str:
    """An XML attribute value, quoted (``xml.sax.saxutils`` would pull in ``urllib.request``)."""
    return '"' + html.escape(text, quote=True).replace("\n", "&#10;") + '"'


def atomic_write(path: str | Path, write: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        write(handle)
    os.replace(temporary, target)


def _write_json(handle: IO[str], run: Mapping[str, Any], summary: Mapping[str, Any], spool: CaseSpool) -> None:
    head = json.dumps({"schema": SCHEMA_VERSION, "run": run, "summary": summary}, ensure_ascii=False, indent=1)
    handle.write(head[:-2] + ',\n "cases": [')
    for i, record in enumerate(spool.records()):
        handle.write(("\n  " if i == 0 else ",\n  ") + json.dumps(record, ensure_ascii=False))
    handle.write("\n ]\n}\n")


def _failure_text(record: Mapping[str, Any]) -> str:
    if record["error"]:
        return str(record["error"])
    reasons = [f"{a['type']}: {a['reason']}" for a in record["assertions"] if not a["pass"]]
    return "; ".join(reasons) or f"score {record['score']} below threshold"


def _write_junit(handle: IO[str], summary: Mapping[str, Any], spool: CaseSpool) -> None:
    handle.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    attrs = (
        f'name="evalrun" tests="{summary["total"]}" failures="{summary["failed"]}" '
        f'errors="{summary["errors"]}" skipped="{summary["not_run"]}" time="{summary["wall_seconds"]}"'
    )
    handle.write(f"<testsuites {attrs}>\n<testsuite {attrs}>\n")
    for record in spool.records():
        name = f"{record['id']} [{record['model']}]" + (f" #{record['repeat']}" if record["repeat"] else "")
        time_s = record["latency_ms"] / 1000
        handle.write(
            f'  <testcase classname={quoteattr(record["category"])} name={quoteattr(name)} time="{time_s:.3f}"'
        )
        status = record["status"]
        if status == "pass":
            handle.write("/>\n")
            continue
        tag = {"fail": "failure", "error": "error", "not_run": "skipped"}[status]
        message = "not run" if status == "not_run" else _failure_text(record)
        handle.write(f">\n    <{tag} message={quoteattr(message[:500])}/>\n  </testcase>\n")
    handle.write("</testsuite>\n</testsuites>\n")


_MD_FAILURES = 25


def _md_counts_rows(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [f"| {name} | {c['total']} | {c['passed']} | {c['pass_rate']:.1%} |" for name, c in rows.items()]


def _write_markdown(
    handle: IO[str], run: Mapping[str, Any], summary: Mapping[str, Any], spool: CaseSpool, state: str, exit_code: int
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
        *_md_counts_rows(s["by_category"]),
    ]
    failing = s["failed"] + s["errors"]
    if failing:
        lines += ["", f"### Failures ({failing})", "", "| case | model | status | why |", "|---|---|---|---|"]
        shown = (r for r in spool.records() if r["status"] in ("fail", "error"))
        for record, _ in zip(shown, range(_MD_FAILURES)):
            why = _failure_text(record).replace("|", "\\|").replace("\n", " ")[:160]
            lines.append(f"| `{record['id']}` | {record['model']} | {record['status']} | {why} |")
        if failing > _MD_FAILURES:
            lines.append(f"| … and {failing - _MD_FAILURES} more | | | |")
    handle.write("\n".join(lines) + "\n")


def write_reports(
    spool: CaseSpool,
    run: Mapping[str, Any],
    summary: Mapping[str, Any],
    *,
    output: str | None = None,
    junit: str | None = None,
    summary_md: str | None = None,
    state: str = "completed",
    exit_code: int = 0,
) -> None:
    """Write every requested report from the spooled cases."""
    if output:
        atomic_write(output, lambda h: _write_json(h, run, summary, spool))
    if junit:
        atomic_write(junit, lambda h: _write_junit(h, summary, spool))
    if summary_md:
        atomic_write(summary_md, lambda h: _write_markdown(h, run, summary, spool, state, exit_code))
