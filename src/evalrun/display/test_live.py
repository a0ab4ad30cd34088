"""The rich live display of ``evalrun test``: the eval display's look, with the test running now
and a panel of failures so far."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from ..testrun.progress import TestProgress
from .look import LiveView, header, progress_row

__all__ = ["RichTestDisplay"]

_PANEL_ROWS = 6


class RichTestDisplay(LiveView):
    def __init__(self, stream: IO[str]) -> None:
        self._progress: TestProgress | None = None
        super().__init__(stream, self._render)  # rich renders once while constructing

    def __call__(self, progress: TestProgress, event: Mapping[str, Any]) -> None:
        self._progress = progress
        if event.get("event") == "launched":
            self.start()
        elif event.get("event") == "run_finished":
            self.close()

    def _render(self) -> RenderableType:
        p = self._progress
        if p is None:
            return Text("")
        counts = Text.assemble(
            (f"✓ {p.counts['passed']} passed", "green"),
            "  ",
            (f"✗ {p.counts['failed']} failed", "red"),
            "  ",
            (f"! {p.counts['error']} errors", "magenta"),
            "  ",
            f"{p.counts['skipped']} skipped  {p.counts['xfailed']} xfailed  {p.counts['xpassed']} xpassed  "
            f"in flight {len(p.in_flight)}",
        )
        parts: list[RenderableType] = [
            header("evalrun test", "pytest", p.state),
            progress_row(p.percentage, p.done, p.total, p.rate, "tests", p.elapsed, p.eta_seconds),
            counts,
            Text(f"now: {p.current}" if p.current else "", style="dim"),
        ]
        failures = p.failures
        if failures:
            lines = [
                f"{r.outcome.upper()} {r.id}" + (f" — {r.message.splitlines()[0][:120]}" if r.message else "")
                for r in failures[-_PANEL_ROWS:]
            ]
            parts.append(Panel("\n".join(lines), title=f"failures so far: {len(failures)}", border_style="red"))
        return Group(*parts)
