"""The rich look shared by the live displays (eval and test): state colours, the progress row."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..metrics import format_eta

STATE_STYLE = {
    "starting": "cyan",
    "collecting": "cyan",
    "running": "green",
    "backing off": "yellow",
    "completed": "bold green",
    "failed": "bold red",
    "timeout": "bold red",
    "interrupted": "bold red",
    "error": "bold red",
}


def header(title: str, detail: str, state: str) -> Text:
    return Text.assemble((f"{title} ", "bold"), f"{detail} · ", (state, STATE_STYLE.get(state, "")))


def progress_row(
    percentage: float, done: int, total: int, rate: float, unit: str, elapsed: float, eta: float | None
) -> Table:
    row = Table.grid(padding=(0, 1))
    row.add_row(
        ProgressBar(total=max(total, 1), completed=min(done, max(total, 1)), width=40),
        Text(f"{percentage:5.1f}%", style="bold"),
        f"{done}/{total}",
        f"{rate:,.1f} {unit}/s",
        f"elapsed {format_eta(elapsed)}",
        f"ETA {format_eta(eta)}",
    )
    return row


class LiveView:
    """A rich ``Live`` that renders on its own timer (4 times a second), whatever the event rate."""

    def __init__(self, stream: IO[str], render: Callable[[], RenderableType], refresh_per_second: float = 4) -> None:
        self._live = Live(
            console=Console(file=stream),
            get_renderable=render,
            auto_refresh=True,
            refresh_per_second=refresh_per_second,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._live.start()

    def close(self) -> None:
        if self._started:
            self._started = False
            self._live.stop()
