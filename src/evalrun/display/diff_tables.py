"""What ``evalrun diff`` prints: the headline, the regressions and fixes, the categories that moved.

Boxes as ``eval`` draws its tables, on a terminal or not; the user's text (ids, categories,
reasons) is never read as rich markup.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..compare import CaseChange, Comparison, SliceChange
from ..progress import clipped, counted

__all__ = ["print_comparison"]

_SHOWN = 20  # regressions (and fixes) listed; the rest are counted


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _delta(change: SliceChange) -> Text:
    delta = change.delta
    if delta is None:
        return Text("-")
    style = "red" if delta < -1e-9 else "green" if delta > 1e-9 else ""
    return Text(f"{delta * 100:+.1f} pt", style=style)


def _latency(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _cases(title: str, changes: list[CaseChange], style: str) -> Table:
    table = Table(title=f"{title} ({len(changes)})", title_justify="left", title_style=style)
    for column in ("case", "category", "model", "was", "now", "why"):
        table.add_column(column)
    for change in changes[:_SHOWN]:
        name = change.id + (f" #{change.repeat + 1}" if change.repeat else "")
        table.add_row(
            Text(name), Text(change.category), Text(change.model), change.before, change.after,
            Text(clipped(change.reason, 70)),
        )  # fmt: skip
    if len(changes) > _SHOWN:
        table.add_row(f"… {len(changes) - _SHOWN} more", "", "", "", "", "")
    return table


def _slices(title: str, rows: list[SliceChange]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (title.split()[-1], "pass rate before", "after", "change", "latency p50 before", "after"):
        table.add_column(column, justify="left" if column == title.split()[-1] else "right")
    for row in rows:
        table.add_row(
            Text(row.name), _rate(row.before_rate), _rate(row.after_rate), _delta(row),
            _latency(row.before_latency_ms), _latency(row.after_latency_ms),
        )  # fmt: skip
    return table


def print_comparison(comparison: Comparison, stream: IO[str] | None = None) -> None:
    console = Console(file=stream)
    if not console.is_terminal:  # CI logs are wide; 80 columns would fold every row
        console = Console(file=stream, width=120)
    before, after = comparison.before, comparison.after
    console.print(
        f"pass rate {before['pass_rate']:.1%} -> {after['pass_rate']:.1%}; "
        f"{counted(len(comparison.regressions), 'regression')}, {counted(len(comparison.fixes), 'fix')}".replace(
            "fixs", "fixes"
        )
        + f"; {comparison.still_failing:,} still failing; {comparison.added:,} new, {comparison.removed:,} gone",
        highlight=False,
    )
    if comparison.regressions:
        console.print(_cases("Regressions: passed before, not now", comparison.regressions, "bold red"))
    if comparison.fixes:
        console.print(_cases("Fixed: passing now, not before", comparison.fixes, "bold green"))
    console.print(_slices("By category", comparison.categories))
    if len(comparison.models) > 1:
        console.print(_slices("By model", comparison.models))
