"""What the plain displays (eval and test) share: the cadence of lines, and the head of each line.

No rich here: plain output is what CI runs, and it starts light.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

from ..progress import Figures, format_eta

__all__ = ["PlainLines", "plain_progress"]


def plain_progress(current: Figures, unit: str, state: str) -> str:
    """The head of every plain progress line, eval or test."""
    return (
        f"[{current.percentage:5.1f}%] {current.done}/{current.total} {unit} | {current.rate:.1f}/s"
        f" | elapsed {format_eta(current.elapsed)} | ETA {format_eta(current.eta)} | {state}"
    )


class PlainLines:
    """Lines to a stream at a CI-friendly cadence: every ``interval`` seconds and at each quarter."""

    def __init__(self, stream: IO[str], interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream, self._interval, self._clock = stream, interval, clock
        self._last_line = clock()
        self._next_quarter = 1

    def write(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last_line = self._clock()

    def due(self, percentage: float) -> bool:
        """Whether a progress line is due now, at ``percentage`` done."""
        if percentage >= 25 * self._next_quarter:
            self._next_quarter = int(percentage // 25) + 1
            return True
        return self._clock() - self._last_line >= self._interval

    @property
    def ended_on_a_line(self) -> bool:
        """Whether the 100 % line has been written already."""
        return self._next_quarter > 4

    def close(self) -> None:
        pass
