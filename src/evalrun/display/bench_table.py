"""What ``evalrun bench`` shows: a line per run of each mode as it goes, then the table and the verdict.

A terminal gets a live line (a bar, the run's counts, rate and ETA) that leaves a finished line
behind for each run; anything else gets plain lines: a finished line per run, and a progress line
every few seconds while a long run (the sequential one) goes. The table is drawn as ``eval`` draws
its own, on a terminal or not.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..bench import BenchObserver, BenchReport
from ..runner import RunResult
from ..schema import ProgressDict
from ._live import bar

__all__ = ["bench_progress", "print_bench"]

_PLAIN_EVERY = 5.0  # seconds between plain progress lines of one run


def print_bench(report: BenchReport, stream: IO[str] | None = None) -> None:
    console = Console(file=stream)
    if not console.is_terminal:  # CI logs are wide; 80 columns would fold every row
        console = Console(file=stream, width=120)
    table = Table(
        title=f"evalrun bench: {report.cases} cases, {report.latency_ms:g} ms latency, "
        f"medians of {report.settings.repeats}",
        title_justify="left",
    )
    for column in ("mode", "conc.", "wall", "cases/s", "speed-up", "efficiency", "cache hits", "peak RSS"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for row in report.rows:
        table.add_row(
            row.mode,
            str(row.concurrency),
            f"{row.wall_seconds:.3f} s",
            f"{row.cases_per_second:,.0f}",
            f"{row.speedup:.1f}x",
            f"{row.efficiency:.0%}" if row.efficiency is not None else "-",
            f"{row.cache_hits:,}",
            f"{row.peak_rss_mb:.0f} MB" if row.peak_rss_mb is not None else "-",
        )
    console.print(table)
    console.print(report.verdict, soft_wrap=True)


def bench_progress(stream: IO[str] | None = None) -> BenchObserver:
    """The live line on a terminal, plain lines elsewhere."""
    stream = stream if stream is not None else sys.stderr
    console = Console(file=stream)
    return _LiveLine(console) if console.is_terminal else _PlainLines(stream)


class _Run:
    """Which run of the bench is going, and how far it is."""

    def __init__(self) -> None:
        self.name = ""
        self.latest: ProgressDict | None = None

    def start(self, mode: str, repeat: int, step: int, steps: int) -> None:
        self.name, self.latest = f"[{step}/{steps}] {mode}, run {repeat + 1}", None

    def so_far(self) -> str:
        p = self.latest
        if p is None:
            return f"{self.name}: starting"
        return (
            f"{self.name}: {p['completed']}/{p['total']} cases, {p['cases_per_second']:,.1f}/s,"
            f" ETA {p['eta_formatted']}"
        )

    def done(self, result: RunResult) -> str:
        s = result.summary
        return (
            f"{self.name}: {s['total'] - s['not_run']} cases in {s['wall_seconds']:.3f} s,"
            f" {s['cases_per_second']:,.0f} cases/s, {s['cache_hits']:,} cache hits"
        )


class _PlainLines(_Run):
    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream
        self._last_line = 0.0

    def started(self, mode: str, repeat: int, step: int, steps: int) -> None:
        self.start(mode, repeat, step, steps)
        self._last_line = time.monotonic()

    def progress(self, progress: ProgressDict) -> None:
        self.latest = progress
        if time.monotonic() - self._last_line >= _PLAIN_EVERY:
            self._write(self.so_far())

    def finished(self, result: RunResult) -> None:
        self._write(self.done(result))

    def _write(self, line: str) -> None:
        self._stream.write(f"evalrun bench: {line}\n")
        self._stream.flush()
        self._last_line = time.monotonic()


class _LiveLine(_Run):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=8, transient=True)

    def started(self, mode: str, repeat: int, step: int, steps: int) -> None:
        self.start(mode, repeat, step, steps)
        self._live.start()

    def progress(self, progress: ProgressDict) -> None:
        self.latest = progress

    def finished(self, result: RunResult) -> None:
        self._live.stop()
        self._console.print(Text(f"✓ {self.done(result)}", style="green"), no_wrap=True, overflow="ellipsis")

    def _render(self) -> Table:
        row = Table.grid(padding=(0, 1))
        p = self.latest
        done, total = (p["completed"], p["total"]) if p else (0, 1)
        row.add_row(bar(max(total, 1), done, 24), Text(self.so_far(), no_wrap=True, overflow="ellipsis"))
        return row
