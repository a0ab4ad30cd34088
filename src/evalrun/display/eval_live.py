"""The rich live display of an eval run, for a terminal.

Rendering happens on rich's own refresh timer (4 times a second), reading the counters kept up to
date by events; the cost of an event is a few integer updates, whatever the case rate.
"""

from __future__ import annotations

from typing import IO

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..metrics import RunMetrics
from ._live import LiveView, bar, header, progress_row

__all__ = ["RichEvalDisplay"]

_MAX_CATEGORY_ROWS = 12


class RichEvalDisplay(LiveView):
    def __init__(self, stream: IO[str]) -> None:
        self.metrics = RunMetrics()
        super().__init__(stream, self.metrics, self._render)  # rich renders once while constructing

    def _render(self) -> RenderableType:
        m = self.metrics
        overall = m.overall
        title = header("evalrun", f"{m.provider} · {', '.join(m.models)}", *m.status)
        # Two lines, each cut with an ellipsis rather than wrapped: at 80 columns one line broke
        # mid-phrase ("in ⏎flight").
        outcomes = Text.assemble(
            (f"✓ {overall.passed} passed", "green"),
            "  ",
            (f"✗ {overall.failed} failed", "red"),
            "  ",
            (f"! {overall.errors} errors", "magenta"),
            Text(f" (top: {m.top_error})" if m.top_error else "", style="magenta"),
            no_wrap=True,
            overflow="ellipsis",
        )
        calls = Text(
            f"cache hits {m.cache_hits}  retries {m.retries} (429s {m.rate_limited})  in flight {m.inflight}/{m.limit}"
            f"  tokens {m.prompt_tokens:,}+{m.completion_tokens:,}"
            + (f"  paced {m.paced_rpm:,.0f}/min" if m.paced_rpm else ""),
            no_wrap=True,
            overflow="ellipsis",
        )
        return Group(title, progress_row(m.figures, "cases"), outcomes, calls, self._categories())

    def _categories(self) -> Table:
        table = Table(box=None, padding=(0, 2), show_header=True, header_style="dim")
        for column in ("category", "done", "passed", "failed", "errors", ""):
            table.add_column(column)
        rows = sorted(self.metrics.by_category.items())
        for name, counts in rows[:_MAX_CATEGORY_ROWS]:
            done = f"{counts.done}/{counts.total}"
            line = bar(max(counts.total, 1), counts.done, 20)
            table.add_row(Text(name), done, str(counts.passed), str(counts.failed), str(counts.errors), line)
        if len(rows) > _MAX_CATEGORY_ROWS:
            table.add_row(f"… {len(rows) - _MAX_CATEGORY_ROWS} more", "", "", "", "", "")
        return table
