"""``evalrun bench``: sequential vs concurrent, cold vs warm cache, in one run."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ._common import user_errors


def bench_command(
    compare_cache: Annotated[
        bool, typer.Option("--compare-cache", help="Only the before, cold-cache and warm-cache runs.")
    ] = False,
    cases: Annotated[int, typer.Option(min=1, help="Cases in the generated suite (or the first N of --suite).")] = 100,
    latency_ms: Annotated[float, typer.Option(min=0, help="Latency of the simulated provider.")] = 100.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrency of the concurrent modes.")] = 10,
    repeats: Annotated[int, typer.Option(min=1, help="Runs of each mode; the table shows medians.")] = 3,
    provider: Annotated[str, typer.Option(help="Provider profile; anything but sim makes real, paid calls.")] = "sim",
    suite: Annotated[str | None, typer.Option(help="A suite to run instead of the generated one.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write the report as JSON here.")] = None,
    config: Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")] = None,
) -> None:
    """Measure the engine: wall time, cases/s, speed-up, efficiency against the ideal, cache hits, peak RSS."""
    from ..bench import BenchSettings, run_bench
    from ..display.bench_table import bench_progress, print_bench

    settings = BenchSettings(cases, latency_ms, concurrency, repeats, compare_cache, provider, suite, config)
    if provider != "sim":
        modes = 3 if compare_cache else 4
        print(
            f"evalrun bench: warning: '{provider}' is a real provider; this makes up to "
            f"{cases * (modes - 1) * repeats:,} paid calls",
            file=sys.stderr,
        )

    with user_errors():
        report = run_bench(settings, bench_progress())
    print_bench(report)
    if output:
        report.write(output)
