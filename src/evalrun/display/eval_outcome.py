"""What went wrong in an eval run, printed once it has ended: its errors grouped by reason (as the
metrics counted them), its failed cases and, with --repeat, how often each case passed. The
failures are read from the run's case records (streamed), only when there are any."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from ..metrics import RunMetrics
from ..progress import clipped
from ..reports.markdown import failure_text
from ..schema import Status

__all__ = ["Trouble", "trouble_tables"]

SHOWN = 10  # failed cases, error reasons, flaky cases: the rest is in results.json


@dataclass
class Trouble:
    """The first failed cases, with how many in all, and the cases that did not pass every repeat."""

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
            if record["status"] == Status.FAIL:
                trouble.failed_count += 1
                if len(trouble.failed) < SHOWN:
                    trouble.failed.append(record)
        return trouble


def trouble_tables(trouble: Trouble, metrics: RunMetrics, where: str, repeats: int = 1) -> list[Table]:
    """The tables to print (none when nothing went wrong); ``where`` says where the rest is. With
    ``repeats`` > 1, the cases that did not pass every time, with their count (``2/3 passed``)."""
    tables = [_by_case(trouble, repeats)] if repeats > 1 and trouble.not_passed else []
    if metrics.error_reasons:
        table = Table(title=f"Errors ({sum(metrics.error_reasons.values()):,})", title_justify="left")
        for column in ("reason", "cases", "first ids"):
            table.add_column(column, justify="right" if column == "cases" else "left", overflow="fold")
        reasons = metrics.error_reasons.most_common()
        for reason, count in reasons[:SHOWN]:  # user text: never read as rich markup
            table.add_row(Text(reason), f"{count:,}", Text(", ".join(metrics.error_ids[reason])))
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
            why = clipped(failure_text(record).split("; ")[0], 60)  # the first failing assertion
            answer = clipped(str(record["response"]), 40)
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
