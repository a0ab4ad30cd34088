"""The rich live display of ``evalrun test``: the eval display's look, with the test running now
and a panel of failures so far."""

from __future__ import annotations

from typing import IO

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from ..schema import TestOutcome
from ..testrun.progress import TestProgress
from ._live import LiveView, header, progress_row

__all__ = ["RichTestDisplay"]

_PANEL_ROWS = 6


class RichTestDisplay(LiveView):
    def __init__(self, stream: IO[str]) -> None:
        self.progress = TestProgress()
        super().__init__(stream, self.progress, self._render)  # rich renders once while constructing

    def _render(self) -> RenderableType:
        p = self.progress
        c = p.counts
        counts = Text.assemble(
            (f"✓ {c[TestOutcome.PASSED]} passed", "green"),
            "  ",
            (f"✗ {c[TestOutcome.FAILED]} failed", "red"),
            "  ",
            (f"! {c[TestOutcome.ERROR]} errors", "magenta"),
            "  ",
            f"{c[TestOutcome.SKIPPED]} skipped  {c[TestOutcome.XFAILED]} xfailed  {c[TestOutcome.XPASSED]} xpassed  "
            f"in flight {len(p.in_flight)}",
        )
        parts: list[RenderableType] = [
            header("evalrun test", "pytest", p.state),
            progress_row(p.figures, "tests"),
            counts,
            Text(f"now: {p.current}" if p.current else "", style="dim"),
        ]
        if p.failures:
            lines = [
                f"{r.outcome.upper()} {r.id}" + (f" — {r.message.splitlines()[0][:120]}" if r.message else "")
                for r in p.failures[-_PANEL_ROWS:]
            ]
            parts.append(Panel("\n".join(lines), title=f"failures so far: {len(p.failures)}", border_style="red"))
        return Group(*parts)
