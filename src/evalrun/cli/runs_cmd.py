"""``evalrun runs [show ID | prune]``: the run history (``history.py``) on the command line."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..locations import HISTORY_DIR
from ._common import fail

if TYPE_CHECKING:
    from ..history import RunHistory

app = typer.Typer(
    help="List, show or prune the recorded runs (plain 'evalrun runs' lists them, newest first).",
    invoke_without_command=True,
)

HistoryDirOption = Annotated[
    str | None, typer.Option("--history-dir", help=f"Folder of the run history (default: {HISTORY_DIR}).")
]

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def _history_dir(ctx: typer.Context, given: str | None) -> str:
    """The subcommand's --history-dir, else the one given before it ('evalrun runs --history-dir X show ID'),
    which would otherwise be silently ignored."""
    if given is not None:
        return given
    before = ctx.parent.params.get("history_dir") if ctx.parent is not None else None
    return before if isinstance(before, str) else HISTORY_DIR


@contextmanager
def _history(history_dir: str) -> Iterator[RunHistory]:
    """The history at ``history_dir``; any failure of it, or a value it refuses, one line and exit 2."""
    from ..history import HistoryUnavailable, RunHistory

    try:
        yield RunHistory(history_dir)
    except HistoryUnavailable as fault:
        advice = f"; move {fault.where}/index.db aside to start a new history" if fault.damaged else ""
        raise fail([f"{fault}{advice}"]) from None
    except ValueError as exc:
        raise fail([str(exc)]) from None


@app.callback()
def list_runs(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind: eval or test.")] = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state (running, interrupted, ...).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs to show, newest first.")] = 20,
    history_dir: HistoryDirOption = None,
) -> None:
    """The recorded runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    history_dir = history_dir or HISTORY_DIR
    if kind is not None and kind not in ("eval", "test"):
        raise fail([f"--kind: '{kind}' is not one of eval, test"])
    with _history(history_dir) as history:
        # A run whose process was killed would otherwise read 'running' forever.
        history.recover()
        runs, matching = history.list(kind=kind, state=state, limit=limit)
    if not runs:
        typer.echo(f"no runs recorded under {history_dir}")
        return
    _print_table(runs)
    if matching > len(runs):
        typer.echo(f"the newest {len(runs)} of {matching} runs; --limit shows more")


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id.")],
    history_dir: HistoryDirOption = None,
) -> None:
    """One run's record as JSON."""
    history_dir = _history_dir(ctx, history_dir)
    with _history(history_dir) as history:
        run = history.get(run_id)  # an id that could not be a folder name is refused: one line, exit 2
    if run is None:
        raise fail([f"no run {run_id} recorded under {history_dir}"])
    typer.echo(json.dumps(run, indent=1))


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str | None, typer.Option(help="Delete finished runs started longer ago than this: 30d, 12h, 90m, 45s.")
    ] = None,
    keep: Annotated[int | None, typer.Option(min=0, help="Keep only the newest N finished runs.")] = None,
    history_dir: HistoryDirOption = None,
) -> None:
    """Delete finished runs, their rows and folders; a run still going is never deleted."""
    history_dir = _history_dir(ctx, history_dir)
    if older_than is None and keep is None:
        raise fail(["prune needs --older-than, --keep or both"])
    seconds = None if older_than is None else parse_duration(older_than)
    with _history(history_dir) as history:
        history.recover()  # a run whose process died is finished, and may go
        pruned = history.prune(older_than_seconds=seconds, keep=keep)
    typer.echo(f"pruned {len(pruned)} run{'' if len(pruned) == 1 else 's'}")


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` in seconds; anything else one line and exit 2."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise fail([f"--older-than: '{text}' is not a duration such as 30d, 12h, 90m or 45s"])
    number, unit = match.groups()
    return float(number) * _UNITS[unit]


def _print_table(runs: list[dict[str, Any]]) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("id", "kind", "origin", "state", "started", "duration", "cases", "pass rate", "cases/s", "exit")
    for column in table.columns[5:]:
        column.justify = "right"
    for run in runs:
        # Text, not markup: a state or kind is stored text, never rich markup.
        table.add_row(*(Text(cell) for cell in _cells(run)))
    # Not on a terminal (CI logs, a pipe) rich would fit 80 columns and wrap the ids.
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def _cells(run: dict[str, Any]) -> tuple[str, ...]:
    from ..history import pass_rate_text

    finished = run["finished_at"] is not None
    total, passed = run["total"] or 0, run["passed"]
    return (
        run["id"],
        run["kind"] or "",
        run["origin"] or "",
        run["state"] or "",
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"])),
        _duration(run["duration_s"]) if finished else "-",
        f"{passed}/{total}" if passed is not None else f"-/{total}",
        pass_rate_text(run),
        f"{run['cases_per_second']:,.1f}" if run["cases_per_second"] is not None else "-",
        str(run["exit_code"]) if run["exit_code"] is not None else "-",
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
