"""The rich live display for a terminal.

Rendering happens on rich's own refresh timer (4 times a second), reading the counters kept up to
date by events; the cost of an event is a few integer updates, whatever the case rate.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..events import Event, RunFinished, RunStarted
from ..metrics import RunMetrics, format_eta

__all__ = ["RichDisplay"]

_STATE_STYLE = {"starting": "cyan", "running": "green", "backing off": "yellow", "completed": "bold green",
                "timeout": "bold red", "interrupted": "bold red", "error": "bold red"}
_MAX_CATEGORY_ROWS = 12


class RichDisplay:
    def __init__(self, stream: IO[str], refresh_per_second: float = 4) -> None:
        self.metrics = RunMetrics()
        self._console = Console(file=stream)
        self._live = Live(console=self._console, get_renderable=self._render, auto_refresh=True,
                          refresh_per_second=refresh_per_second, transient=False, redirect_stdout=False,
                          redirect_stderr=False)
        self._started = False

    def __call__(self, event: Event) -> None:
        self.metrics(event)
        if isinstance(event, RunStarted) and not self._started:
            self._started = True
            self._live.start()
        elif isinstance(event, RunFinished):
            self.close()

    def close(self) -> None:
        if self._started:
            self._started = False
            self._live.stop()

    def _render(self) -> RenderableType:
        m = self.metrics
        overall = m.overall
        state = m.display_state
        header = Text.assemble(("evalrun ", "bold"), f"{m.provider} · {', '.join(m.models)} · ",
                               (state, _STATE_STYLE.get(state, "")))
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(overall.total, 1), completed=overall.done, width=40),
            Text(f"{m.percentage:5.1f}%", style="bold"),
            f"{overall.done}/{overall.total}",
            f"{m.rate:,.1f} cases/s",
            f"elapsed {format_eta(m.elapsed)}",
            f"ETA {format_eta(m.eta_seconds)}",
        )
        counters = Text.assemble(
            (f"✓ {overall.passed} passed", "green"), "  ", (f"✗ {overall.failed} failed", "red"), "  ",
            (f"! {overall.errors} errors", "magenta"), "  ",
            f"cache hits {m.cache_hits}  retries {m.retries} (429s {m.rate_limited})  "
            f"in flight {m.inflight}/{m.limit}  tokens {m.prompt_tokens:,}+{m.completion_tokens:,}",
        )
        return Group(header, bar, counters, self._categories())

    def _categories(self) -> Table:
        table = Table(box=None, padding=(0, 2), show_header=True, header_style="dim")
        for column in ("category", "done", "passed", "failed", "errors", ""):
            table.add_column(column)
        rows = sorted(self.metrics.by_category.items())
        for name, counts in rows[:_MAX_CATEGORY_ROWS]:
            table.add_row(name, f"{counts.done}/{counts.total}", str(counts.passed), str(counts.failed),
                          str(counts.errors), ProgressBar(total=max(counts.total, 1), completed=counts.done, width=20))
        if len(rows) > _MAX_CATEGORY_ROWS:
            table.add_row(f"… {len(rows) - _MAX_CATEGORY_ROWS} more", "", "", "", "", "")
        return table
