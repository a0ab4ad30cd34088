"""The response cache's writer against stores that wait and fail: no answer reaching a working store
is lost, a failing store costs the cache (with one warning) and never the run, and a run's own
errors leave the cache as themselves."""

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
    """A store whose writes take ``delay`` seconds and raise ``error`` ``failures`` times first,
    and whose lookups raise ``broken_reads`` when given."""

    where = "memory"

    def __init__(
        self,
        delay: float = 0.0,
        failures: int = 0,
        error: BaseException = OSError("store unavailable"),
        broken_reads: Exception | None = None,
    ) -> None:
        self.delay, self.failures, self.error, self.broken_reads = delay, failures, error, broken_reads
        self.kept: dict[str, StoredAnswer] = {}

    async def get_many(self, keys: Sequence[str]) -> list[ChatResponse | None]:
        if self.broken_reads is not None:
            raise self.broken_reads
        return [self.kept[k].response if k in self.kept else None for k in keys]

    async def put_many(self, entries: Sequence[tuple[str, StoredAnswer]], ttl: float | None) -> None:
        await anyio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise self.error
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

    async def settle(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_a_store_that_fails_a_write_turns_the_cache_off_with_one_warning() -> None:
    store = SlowFlakyStore(failures=1)
    warnings: list[str] = []

    async def go() -> list[ChatResponse | None]:
        cache = ResponseCache(store, warn=warnings.append)
        for i in range(3):
            cache.keep(f"k{i}", {}, ANSWER, f"c{i}")
        await cache.flush()  # fails, and says so instead of raising
        assert not cache.active
        cache.keep("k3", {}, ANSWER, "c3")
        await cache.flush()  # the store would take this one: the cache is off, it is not offered
        return await cache.lookup_many(["k3"])

    assert anyio.run(go) == [None]
    assert store.kept == {}
    assert warnings == ["cache memory: OSError: store unavailable; the run goes on without it"]


def test_a_store_that_fails_a_lookup_is_a_miss_and_one_warning() -> None:
    warnings: list[str] = []

    async def go() -> list[list[ChatResponse | None]]:
        cache = ResponseCache(SlowFlakyStore(broken_reads=RuntimeError("no route\nto host")), warn=warnings.append)
        return [await cache.lookup_many(["a", "b"]), await cache.lookup_many(["c"])]

    assert anyio.run(go) == [[None, None], [None]]
    assert warnings == ["cache memory: RuntimeError: no route; the run goes on without it"]


def test_an_interrupt_during_a_write_is_not_swallowed_and_the_batch_stays_queued() -> None:
    store = SlowFlakyStore(failures=1, error=KeyboardInterrupt())
    warnings: list[str] = []

    async def go() -> None:
        cache = ResponseCache(store, warn=warnings.append)
        cache.keep("k0", {}, ANSWER, "c0")
        with pytest.raises(KeyboardInterrupt):
            await cache.flush()
        await cache.flush()

    anyio.run(go)
    assert list(store.kept) == ["k0"] and warnings == []


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
