"""``evalrun bench``: the engine measured against itself, every mode in one process.

Sequential without cache is the "before"; then concurrent without cache, concurrent with a cold
cache, and the same cache warm. Each mode is an ordinary ``Runner`` run (same engine, same
client, same cache code as ``evalrun eval``), so the figures are the product's own. Peak memory is
the process's resident high-water mark, reset before each mode where Linux allows it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from .runner import Runner, RunResult
from .schema import SCHEMA_VERSION, ProgressDict
from .settings import Settings, load_settings
from .sim.suites import arithmetic_cases, write_suite

__all__ = ["BenchObserver", "BenchReport", "BenchRow", "BenchSettings", "run_bench"]


@dataclass(frozen=True)
class BenchSettings:
    cases: int = 100
    latency_ms: float = 100.0
    concurrency: int = 10
    repeats: int = 3
    compare_cache: bool = False
    provider: str = "sim"
    suite: str | None = None
    config: str | None = None


class BenchObserver(Protocol):
    """What a display of a bench is told: each run of each mode as it starts, goes and ends.
    ``step`` counts the runs of the whole bench (1 to ``steps``)."""

    def started(self, mode: str, repeat: int, step: int, steps: int) -> None: ...

    def progress(self, progress: ProgressDict) -> None: ...

    def finished(self, result: RunResult) -> None: ...


@dataclass(frozen=True)
class _Mode:
    name: str
    concurrent: bool
    cache: str  # off | cold | warm


MODES = (
    _Mode("sequential, no cache", False, "off"),
    _Mode("concurrent, no cache", True, "off"),
    _Mode("concurrent, cold cache", True, "cold"),
    _Mode("concurrent, warm cache", True, "warm"),
)


@dataclass(frozen=True)
class BenchRow:
    mode: str
    concurrency: int
    wall_seconds: float
    cases_per_second: float
    speedup: float
    ideal_seconds: float | None
    efficiency: float | None
    cache_hits: int
    peak_rss_mb: float | None
    walls: tuple[float, ...]


@dataclass(frozen=True)
class BenchReport:
    settings: BenchSettings
    cases: int
    latency_ms: float
    rows: tuple[BenchRow, ...]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "settings": asdict(self.settings),
            "cases": self.cases,
            "latency_ms": self.latency_ms,
            "machine": _machine(),
            "rows": [asdict(r) for r in self.rows],
            "verdict": self.verdict,
        }

    def write(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def reset_peak_rss() -> bool:
    """Reset the resident high-water mark (Linux ``clear_refs``); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    except ImportError:  # pragma: no cover - Windows
        return None


def _generated_suite(folder: Path, cases: int) -> str:
    groups = [f"group-{k}" for k in range(4)]
    return str(write_suite(folder / f"bench-{cases}.jsonl", arithmetic_cases(cases, groups, "bench-{:07d}")))


def _base_settings(bench: BenchSettings, suite: str) -> Settings:
    settings = load_settings(
        bench.config,
        provider=bench.provider,
        suites=(suite,),
        progress="none",
        limit=bench.cases if bench.suite else None,
        min_pass_rate=0.0,
        max_errors=10**9,
        history_dir="",  # measurements, not runs anyone looks back at
    )
    if settings.profile().api != "sim":
        return settings
    return settings.with_provider_options(latency_ms=bench.latency_ms, jitter_ms=0)


def _run_mode(
    base: Settings, mode: _Mode, concurrency: int, cache_dir: str, observer: BenchObserver | None
) -> tuple[RunResult, float | None]:
    settings = replace(
        base,
        concurrency=concurrency if mode.concurrent else 1,
        cache="off" if mode.cache == "off" else "on",
        cache_dir=cache_dir,
    )
    reset_peak_rss()  # elsewhere than Linux the figure is the process's peak so far
    runner = Runner(settings)
    if observer is not None:
        runner.on_progress(observer.progress, interval=0.1)
    result = runner.run_sync()
    result.close()
    if observer is not None:
        observer.finished(result)
    return result, peak_rss_mb()


def _ideal(mode: _Mode, cases: int, concurrency: int, latency_s: float) -> float | None:
    """The wall time of perfect overlap; none for a warm cache, or calls without latency (nothing
    to overlap: an efficiency there measures only the machine)."""
    if mode.cache == "warm" or latency_s <= 0:
        return None
    lanes = concurrency if mode.concurrent else 1
    return math.ceil(cases / lanes) * latency_s


def _verdict(rows: Mapping[str, BenchRow], concurrency: int) -> str:
    """The table in words, quoting its own figures (a verdict that computed its own "efficiency"
    once disagreed with the column beside it)."""
    parts = []
    concurrent = rows.get("concurrent, no cache") or rows.get("concurrent, cold cache")
    if concurrent is not None:
        parts.append(f"Concurrency {concurrency} ran {concurrent.speedup:.1f}x faster than one call at a time")
        if concurrent.efficiency is not None and concurrent.ideal_seconds is not None:
            parts[-1] += (
                f", at {concurrent.efficiency:.0%} efficiency"
                f" ({concurrent.wall_seconds:.3f} s against an ideal {concurrent.ideal_seconds:.3f} s)"
            )
        parts[-1] += "."
    cold, warm = rows.get("concurrent, cold cache"), rows.get("concurrent, warm cache")
    if cold is not None and warm is not None and warm.wall_seconds > 0:
        parts.append(
            f"A warm cache answered {warm.cases_per_second:,.0f} cases/s, "
            f"{cold.wall_seconds / warm.wall_seconds:.0f}x faster than the cold run, with no provider call."
        )
    return " ".join(parts)


def run_bench(bench: BenchSettings, observer: BenchObserver | None = None) -> BenchReport:
    """Run every mode ``repeats`` times; rows carry medians."""
    modes = [MODES[0], MODES[2], MODES[3]] if bench.compare_cache else list(MODES)
    with tempfile.TemporaryDirectory(prefix="evalrun-bench-") as folder:
        suite = bench.suite or _generated_suite(Path(folder), bench.cases)
        base = _base_settings(bench, suite)
        samples: dict[str, list[tuple[RunResult, float | None]]] = {m.name: [] for m in modes}
        steps = bench.repeats * len(modes)
        for repeat in range(bench.repeats):
            for index, mode in enumerate(modes):
                if observer is not None:
                    observer.started(mode.name, repeat, repeat * len(modes) + index + 1, steps)
                cache_dir = os.path.join(folder, f"cache-{repeat}" if mode.cache != "off" else "unused")
                samples[mode.name].append(_run_mode(base, mode, bench.concurrency, cache_dir, observer))
    first = samples[modes[0].name][0][0]
    cases = first.summary["total"]
    latency_s = (
        bench.latency_ms / 1000
        if base.profile().api == "sim"
        else statistics.median(r.summary["latency_ms"]["p50"] for r, _ in samples[modes[0].name]) / 1000
    )
    rows = _rows(modes, samples, cases, bench.concurrency, latency_s)
    return BenchReport(
        bench, cases, round(latency_s * 1000, 1), rows, _verdict({r.mode: r for r in rows}, bench.concurrency)
    )


def _rows(
    modes: list[_Mode],
    samples: Mapping[str, list[tuple[RunResult, float | None]]],
    cases: int,
    concurrency: int,
    latency_s: float,
) -> tuple[BenchRow, ...]:
    # The metrics' own clock, not the summary's figure rounded to the millisecond: a warm run of
    # 20 cases takes about 2 ms, and the rounding alone moved its rate by a fifth.
    before = statistics.median(r.metrics.elapsed for r, _ in samples[modes[0].name])
    rows = []
    for mode in modes:
        runs = samples[mode.name]
        walls = tuple(r.metrics.elapsed for r, _ in runs)
        wall = statistics.median(walls)
        ideal = _ideal(mode, cases, concurrency, latency_s)
        peaks = [peak for _, peak in runs if peak is not None]
        rows.append(
            BenchRow(
                mode=mode.name,
                concurrency=concurrency if mode.concurrent else 1,
                wall_seconds=round(wall, 4),
                cases_per_second=round(cases / wall, 1) if wall > 0 else 0.0,
                speedup=round(before / wall, 2) if wall > 0 else 0.0,
                ideal_seconds=round(ideal, 3) if ideal is not None else None,
                efficiency=round(ideal / wall, 3) if ideal is not None and wall > 0 else None,
                cache_hits=int(statistics.median(r.summary["cache_hits"] for r, _ in runs)),
                peak_rss_mb=round(statistics.median(peaks), 1) if peaks else None,
                walls=walls,
            )
        )
    return tuple(rows)
