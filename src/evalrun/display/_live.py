"""The rich look shared by the live displays (eval and test): state colours, the progress row."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..events import Event, Observer, RunFinished, RunStarted, RunWarning
from ..progress import Figures, format_eta
from ..schema import RunState

__all__ = ["LiveView", "header", "progress_row"]

STATE_STYLE = {
    RunState.STARTING: "cyan",
    RunState.COLLECTING: "cyan",
    RunState.RUNNING: "green",
    RunState.BACKING_OFF: "yellow",
    RunState.COMPLETED: "bold green",
    RunState.FAILED: "bold red",
    RunState.TIMEOUT: "bold red",
    RunState.INTERRUPTED: "bold red",
    RunState.ERROR: "bold red",
}


def header(title: str, detail: str, state: RunState, message: str = "") -> Text:
    """The first line: what runs, its state in its colour, and what it is doing (cut, never wrapped)."""
    return Text.assemble(
        (f"{title} ", "bold"),
        f"{detail} · ",
        (state, STATE_STYLE.get(state, "")),
        f" · {message}" if message else "",
        no_wrap=True,
        overflow="ellipsis",
    )


def bar(total: int, completed: int, width: int) -> ProgressBar:
    """A progress bar in the 16 standard colours (cyan running, green done, grey to go): rich's own
    are RGB, which a 16-colour terminal shows as red while running and an invisible grey at 100 %."""
    return ProgressBar(
        total=total,
        completed=completed,
        width=width,
        style="bright_black",
        complete_style="cyan",
        finished_style="green",
    )


def progress_row(current: Figures, unit: str) -> Table:
    row = Table.grid(padding=(0, 1))
    total = max(current.total, 1)
    row.add_row(
        bar(total, min(current.done, total), 40),
        Text(f"{current.percentage:5.1f}%", style="bold"),
        f"{current.done}/{current.total}",
        f"{current.rate:,.1f} {unit}/s",
        f"elapsed {format_eta(current.elapsed)}",
        f"ETA {format_eta(current.eta)}",
    )
    return row


class LiveView:
    """A live display: events update ``view`` (the run as the display knows it), and a rich ``Live``
    renders it on its own timer (4 times a second), whatever the event rate, from the run's start
    to its end."""

    def __init__(
        self, stream: IO[str], view: Observer, render: Callable[[], RenderableType], refresh_per_second: float = 4
    ) -> None:
        self._view = view
        self._live = Live(
            console=Console(file=stream),
            get_renderable=render,
            auto_refresh=True,
            refresh_per_second=refresh_per_second,
            redirect_stdout=False,
            redirect_stderr=True,  # log records (-v) print above the view, not through it
        )
        self._started = False

    def __call__(self, event: Event) -> None:
        self._view(event)
        if isinstance(event, RunStarted):
            self.start()
        elif isinstance(event, RunWarning):  # above the live view, where it stays
            self._live.console.print(Text(f"warning: {event.message}", style="yellow"))
        elif isinstance(event, RunFinished):
            self.close()

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._live.start()

    def close(self) -> None:
        if self._started:
            self._started = False
            self._live.stop()
