"""The response cache's writer against stores that wait and fail: no answer is lost, and a run's
own errors leave the cache as themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest
from helpers import arithmetic_cases, local_config, write_suite

from evalrun.cache import ResponseCache, StoredAnswer, StoreStats
from evalrun.providers.base import ChatResponse
from evalrun.sim import SimProcess

ANSWER = ChatResponse("42", 1, 1, 5.0)


class SlowFlakyStore:
    """A store whose writes take ``delay`` seconds and fail ``failures`` times first."""

    where = "memory"

    def __init__(self, delay: float = 0.0, failures: int = 0) -> None:
        self.delay, self.failures = delay, failures
        self.kept: dict[str, StoredAnswer] = {}

    async def get_many(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        return [self.kept[k].response if k in self.kept else None for k in keys]

    async def put_many(self, entries: Sequence[tuple[str, StoredAnswer]], ttl: float | None) -> None:
        await anyio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise OSError("store unavailable")
        self.kept.update(entries)

    async def contains(self, key: str) -> bool:
        return key in self.kept

    async def entries(self) -> AsyncIterator[StoredAnswer]:
        for answer in list(self.kept.values()):
            yield answer

    async def stats(self) -> StoreStats:
        return StoreStats(self.where, len(self.kept), 0)

    async def clear(self) -> int:
        return 0

    async def prune(self) -> int:
        return 0

    async def aclose(self) -> None:
        pass


def test_a_batch_the_store_refused_stays_queued() -> None:
    store = SlowFlakyStore(failures=1)

    async def go() -> None:
        cache = ResponseCache(store)
        for i in range(3):
            cache.keep(f"k{i}", {}, ANSWER, f"c{i}")
        with pytest.raises(OSError):
            await cache.flush()
        await cache.flush()

    anyio.run(go)
    assert sorted(store.kept) == ["k0", "k1", "k2"]


def test_every_answer_reaches_a_slow_store_however_the_run_ends() -> None:
    store = SlowFlakyStore(delay=0.03)
    queued: list[str] = []

    async def go() -> None:
        with anyio.move_on_after(0.1):  # the run is cancelled while batches are on their way
            async with ResponseCache(store).writing() as cache:
                for i in range(40):
                    cache.keep(f"k{i}", {}, ANSWER, f"c{i}")
                    queued.append(f"k{i}")
                    await anyio.sleep(0.005)

    anyio.run(go)
    assert 5 < len(queued) < 40  # the run did stop midway, with writes in flight
    assert sorted(store.kept) == sorted(queued)


def test_an_error_of_the_run_leaves_the_writer_unwrapped() -> None:
    async def go() -> None:
        async with ResponseCache(SlowFlakyStore()).writing():
            raise IsADirectoryError("results.json")

    with pytest.raises(IsADirectoryError):
        anyio.run(go)


def test_an_unwritable_results_path_is_one_line_and_exit_2(tmp_path: Path, sim: SimProcess) -> None:
    import subprocess
    import sys

    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(3))
    (tmp_path / "out.json").mkdir()  # a folder where the results file should go
    done = subprocess.run(
        [sys.executable, "-m", "evalrun", "eval", "local", "--suite", "suite.jsonl", "--cache-dir", "cache",
         "--output", "out.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "out.json" in done.stderr.splitlines()[-1]
