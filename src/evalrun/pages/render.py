"""Pages of runs as HTML: the self-contained report (``evalrun report``, ``eval --html``) and the
dashboard's pages (``evalrun serve``), from one set of Jinja2 templates.

Everything a page needs is in the page: CSS, a little plain JavaScript (filters, the case view,
live updates), and charts drawn here as inline SVG. Nothing is fetched from the internet, so a
report opens from a CI artifact as it is. Cases travel as one JSON document in the page and the
rows are drawn by the page's script, a few hundred at a time: a 10,000-case report stays a few
megabytes, and long answers are cut in the table with the whole text a click away.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

__all__ = [
    "chart_events",
    "histogram_svg",
    "render_page",
    "render_report",
    "run_view",
    "series_svg",
    "sparkline_svg",
    "suite_messages",
    "test_run_view",
]

_CUT = 2_000  # characters of an answer kept in the page's table data; the whole text is kept apart
_LISTED = 500  # tests a test run's page lists in each of its tables; it says how many more there are

#: A test outcome (pytest's word) and the ``status`` class it is drawn with.
_OUTCOMES = {
    "passed": "pass",
    "failed": "fail",
    "error": "error",
    "xpassed": "pass",
    "skipped": "not_run",
    "xfailed": "not_run",
}
_STAGES = ("startup", "collection", "run", "teardown")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("evalrun.pages", "templates"),
        autoescape=jinja2.select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(template: str, **context: Any) -> str:
    """A dashboard page (``templates/<template>``) with ``context``."""
    return _environment().get_template(template).render(**context)


def render_report(document: Mapping[str, Any], title: str = "", events: Iterable[Mapping[str, Any]] = ()) -> str:
    """The run detail view of a results document as one self-contained HTML page."""
    view = run_view(document, events, suite_messages(document))
    return render_page("report.html", **view, title=title or _title(document), live=None)


_CHARTED = tuple(
    f'{{"event": "{name}"' for name in ("task_started", "task_finished", "retry_scheduled", "retry_resumed")
)


def chart_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a run's log that its charts are drawn from (throughput, calls in flight)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = [line for line in handle if line.startswith(_CHARTED)]
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:  # a run killed mid-line leaves a last line cut short
            continue
    return events


def suite_messages(document: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Each case's chat, from the run's suite files when they are still there to read (results.json
    keeps answers, not prompts); none when they are not."""
    from ..errors import ConfigError, SuiteError
    from ..suite import load_suites

    try:
        return {case.id: list(case.messages) for case in load_suites(document["run"].get("suites") or ())}
    except (OSError, ConfigError, SuiteError):
        return {}


def run_view(
    document: Mapping[str, Any],
    events: Iterable[Mapping[str, Any]] = (),
    messages: Mapping[str, list[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """What the run detail view shows of a results document (and of its events and its cases'
    messages, when there are)."""
    cases = list(document["cases"])
    latencies = [c["latency_ms"] for c in cases if c["status"] in ("pass", "fail") and not c["cached"]]
    events = list(events)
    finished = [e["ts"] for e in events if e.get("event") == "task_finished"]
    chats = messages or {}
    return {
        "run": document["run"],
        "summary": document["summary"],
        "categories": sorted({c["category"] for c in cases}),
        "models": sorted({c["model"] for c in cases}),
        "cases_json": _script_json([_row(c) for c in cases]),
        "answers_json": _script_json({i: c["response"] for i, c in enumerate(cases) if _long(c)}),
        "messages_json": _script_json({c["id"]: chats[c["id"]] for c in cases if c["id"] in chats}),
        "latency_svg": histogram_svg(latencies, "latency (ms)"),
        "throughput_svg": series_svg(_per_second(finished), "cases finished a second") if finished else "",
        "concurrency_svg": series_svg(_in_flight(events), "calls in flight"),
    }


def test_run_view(document: Mapping[str, Any]) -> dict[str, Any]:
    """What a test run's page shows of its results document (``evalrun test --output``): how it
    ended, the counts by outcome, the stages' times, the failures with their messages, and the
    tests in flight and not run when it was stopped. Long lists are cut at ``_LISTED``."""
    summary = document["summary"]
    tests = list(document.get("tests") or ())
    failures = [t for t in tests if t["outcome"] in ("failed", "error")]
    skips = [t for t in tests if t["outcome"] in ("skipped", "xfailed")]
    stages = document.get("stages") or {}
    in_flight, not_run = list(document.get("in_flight") or ()), list(document.get("not_run") or ())
    return {
        "test": {
            "state": document["state"],
            "message": document.get("message") or "",
            "exit_code": document.get("exit_code"),
            "pytest_exit_status": document.get("pytest_exit_status"),
            "processes_killed": document.get("processes_killed") or 0,
            "replayed": bool(document.get("replayed")),
            "command": " ".join(document.get("command") or ()),
            "summary": summary,
            "outcomes": [(name, summary.get(name, 0), css) for name, css in _OUTCOMES.items()],
            "stages": [(name, stages[name]) for name in _STAGES if stages.get(name) is not None],
            "failures": failures[:_LISTED],
            "failures_more": max(0, len(failures) - _LISTED),
            "skips": skips[:_LISTED],
            "skips_more": max(0, len(skips) - _LISTED),
            "in_flight": in_flight[:_LISTED],
            "in_flight_more": max(0, len(in_flight) - _LISTED),
            "not_run": not_run[:_LISTED],
            "not_run_more": max(0, len(not_run) - _LISTED),
            "status_class": _OUTCOMES,
        }
    }


def _step(event: Mapping[str, Any]) -> int:
    """How an event moves the calls in flight: +1 a call sent, -1 one answered or waiting out a retry."""
    name = event.get("event")
    if name in ("task_started", "retry_resumed"):
        return 1
    if name == "retry_scheduled":
        return -1 if event.get("slot_released", True) else 0
    if name == "task_finished":
        result = event["result"]
        return 0 if result["cached"] or result["status"] == "not_run" else -1
    return 0


def _in_flight(events: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """Calls in flight over time, from the event log, sampled at each change."""
    if not events:
        return []
    start, flying, points = events[0]["ts"], 0, []
    for event in events:
        step = _step(event)
        if step:
            at = event["ts"] - start
            points.append((at, float(max(flying, 0))))  # a step, not a slope: the count held until now
            flying += step
            points.append((at, float(max(flying, 0))))
    return points


def _title(document: Mapping[str, Any]) -> str:
    run = document["run"]
    return f"evalrun · {run.get('provider', '')} · {', '.join(run.get('models', []))} · {run.get('id', '')}"


def _long(case: Mapping[str, Any]) -> bool:
    return isinstance(case.get("response"), str) and len(case["response"]) > _CUT


def _row(case: Mapping[str, Any]) -> dict[str, Any]:
    """A case as the page's script draws it (its answer cut when long)."""
    response = case.get("response")
    return {
        **case,
        "response": response[:_CUT] if isinstance(response, str) else response,
        "cut": _long(case),
    }


def _script_json(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``</script>`` can end it."""
    encoded = json.dumps(value, separators=(",", ":"))  # ASCII: a lone surrogate in an answer travels as an escape
    # Any <, > and & as JSON escapes: no text of a case (an id, an answer) can end the script
    # element or open a comment in it, whatever it holds.
    return encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _per_second(stamps: Sequence[float]) -> list[tuple[float, float]]:
    if not stamps:
        return []
    start = min(stamps)
    counts: dict[int, int] = {}
    for stamp in stamps:
        counts[int(stamp - start)] = counts.get(int(stamp - start), 0) + 1
    return [(float(second), float(counts.get(second, 0))) for second in range(max(counts) + 1)]


# -- charts, drawn here: no chart library, nothing fetched -------------------------------------------


def histogram_svg(values: Sequence[float], label: str, bins: int = 24, width: int = 560, height: int = 160) -> str:
    """A histogram of ``values`` on a log scale (latencies span orders of magnitude)."""
    if not values:
        return ""
    low, high = max(min(values), 0.01), max(max(values), 0.02)
    if high <= low * 1.0001:
        high = low * 1.5
    edges = [low * (high / low) ** (i / bins) for i in range(bins + 1)]
    counts = [0] * bins
    for value in values:
        index = min(bins - 1, max(0, int(math.log(max(value, low) / low) / math.log(high / low) * bins)))
        counts[index] += 1
    top, bar = max(counts), (width - 40) / bins
    rects = []
    for i, count in enumerate(counts):
        h = (height - 30) * count / top if top else 0
        x, y = 30 + i * bar, height - 20 - h
        tip = f"{edges[i]:,.0f}-{edges[i + 1]:,.0f} ms: {count}"
        box = f'x="{x:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" height="{h:.1f}"'
        rects.append(f'<rect {box} class="bar"><title>{tip}</title></rect>')
    axis = (
        f'<text x="30" y="{height - 5}" class="axis">{low:,.0f}</text>'
        f'<text x="{width - 10}" y="{height - 5}" class="axis" text-anchor="end">{high:,.0f}</text>'
        f'<text x="30" y="12" class="axis">{top}</text>'
    )
    return _svg(width, height, label, "".join(rects) + axis)


def series_svg(points: Sequence[tuple[float, float]], label: str, width: int = 560, height: int = 160) -> str:
    """A line of ``(x, y)`` points, x from 0 (none for fewer than two: a run of a second)."""
    if len(points) < 2:
        return ""
    right, top = max(x for x, _ in points) or 1.0, max(y for _, y in points) or 1.0
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{30 + (width - 40) * x / right:.1f},{height - 20 - (height - 30) * y / top:.1f}"
        for i, (x, y) in enumerate(points)
    )
    axis = (
        f'<text x="30" y="{height - 5}" class="axis">0 s</text>'
        f'<text x="{width - 10}" y="{height - 5}" class="axis" text-anchor="end">{_seconds(right)}</text>'
        f'<text x="30" y="12" class="axis">{top:,.0f}</text>'
    )
    return _svg(width, height, label, f'<path d="{path}" class="line"/>' + axis)


def _seconds(value: float) -> str:
    """An axis's end in seconds, to the digits a short run needs (0.15 s is not "0 s")."""
    return f"{value:.2f} s" if value < 1 else f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


def sparkline_svg(values: Sequence[float], label: str, width: int = 120, height: int = 24) -> str:
    """Pass rates (0 to 1) over time, oldest first, as a small line."""
    if len(values) < 2:
        return ""
    step = (width - 4) / (len(values) - 1)
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{2 + i * step:.1f},{height - 2 - (height - 4) * v:.1f}" for i, v in enumerate(values)
    )
    return _svg(width, height, label, f'<path d="{path}" class="line"/>')


def _svg(width: int, height: int, label: str, body: str) -> str:
    title = markupsafe.escape(label)
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{title}">'
        f"<title>{title}</title>{body}</svg>"
    )
