"""What went wrong in an eval run, printed once it has ended: its errors grouped by reason, its
failed cases, and one line that says why the exit code is what it is. Read from the run's case
records (streamed), so a million cases cost one pass and a few lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from ..reports.markdown import failure_text
from ..schema import Status

__all__ = ["Trouble", "trouble_tables"]

SHOWN = 10  # failed cases, and case ids per error reason: the rest is in results.json
_CUT = 100  # characters of a reason or an answer on the console


def _short(text: str, limit: int = _CUT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class Trouble:
    """The errors by reason (count, first ids) and the first failed cases, with how many in all."""

    errors: Counter[str] = field(default_factory=Counter)
    error_ids: dict[str, list[str]] = field(default_factory=dict)
    failed: list[Mapping[str, Any]] = field(default_factory=list)
    failed_count: int = 0
    #: With --repeat: how many repeats of each (case, model) did not pass; only those with one.
    not_passed: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def of(cls, records: Iterable[Mapping[str, Any]]) -> Trouble:
        trouble = cls()
        for record in records:
            if record["status"] in (Status.ERROR, Status.FAIL):
                trouble.not_passed[(str(record["id"]), str(record["model"]))] += 1
            if record["status"] == Status.ERROR:
                reason = _short(str(record["error"]))
                trouble.errors[reason] += 1
                ids = trouble.error_ids.setdefault(reason, [])
                if len(ids) < 3:
                    ids.append(str(record["id"]))
            elif record["status"] == Status.FAIL:
                trouble.failed_count += 1
                if len(trouble.failed) < SHOWN:
                    trouble.failed.append(record)
        return trouble


def trouble_tables(trouble: Trouble, where: str, repeats: int = 1) -> list[Table]:
    """The tables to print (none when nothing went wrong); ``where`` says where the rest is. With
    ``repeats`` > 1, the cases that did not pass every time, with their count (``2/3 passed``)."""
    tables = [_by_case(trouble, repeats)] if repeats > 1 and trouble.not_passed else []
    if trouble.errors:
        table = Table(title=f"Errors ({sum(trouble.errors.values()):,})", title_justify="left")
        for column in ("reason", "cases", "first ids"):
            table.add_column(column, justify="right" if column == "cases" else "left", overflow="fold")
        reasons = trouble.errors.most_common()
        for reason, count in reasons[:SHOWN]:  # user text: never read as rich markup
            table.add_row(Text(reason), f"{count:,}", Text(", ".join(trouble.error_ids[reason])))
        if len(reasons) > SHOWN:
            table.add_row(Text(f"… and {len(reasons) - SHOWN} more reasons, {where}"), "", "")
        tables.append(table)
    if trouble.failed:
        more = trouble.failed_count - len(trouble.failed)
        title = f"Failed cases ({trouble.failed_count:,})" + (f": the first {SHOWN}, all {where}" if more else "")
        table = Table(title=title, title_justify="left")
        for column in ("case", "category", "why", "answer"):
            table.add_column(column, overflow="fold")
        for record in trouble.failed:
            why = _short(failure_text(record).split("; ")[0], 60)  # the first failing assertion
            answer = _short(str(record["response"]), 40)
            table.add_row(Text(str(record["id"])), Text(str(record["category"])), Text(why), Text(answer))
        tables.append(table)
    return tables


def _by_case(trouble: Trouble, repeats: int) -> Table:
    worst = trouble.not_passed.most_common()
    title = f"Cases that did not pass all {repeats} repeats ({len(worst):,})"
    table = Table(title=title, title_justify="left", min_width=len(title))
    for column in ("case", "model", "passed"):
        table.add_column(column, justify="right" if column == "passed" else "left", overflow="fold")
    for (case_id, model), missed in worst[:SHOWN]:
        table.add_row(Text(case_id), Text(model), f"{repeats - missed}/{repeats}")
    if len(worst) > SHOWN:
        table.add_row(Text(f"… and {len(worst) - SHOWN:,} more"), "", "")
    return table
