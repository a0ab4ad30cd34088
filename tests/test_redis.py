"""The Redis store (issue 13) against a real ``redis-server`` (Debian's package) that each test starts
on a free loopback port, persistence off, and stops."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.sim import SimProcess

if TYPE_CHECKING:
    from evalrun.client.shared_budget import SharedBudget

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs Debian's redis-server package")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    def __init__(self, port: int, durable_in: Path | None = None) -> None:
        """``durable_in``: an append-only file there, synced at every write (a restart keeps it all)."""
        self.port, self.url = port, f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._durable_in = durable_in

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self._durable_in is not None:
            command += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self._durable_in)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(_free_port()).start()
    yield server
    server.stop()


def _eval(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return evalrun(folder, "eval", "local", "--suite", "s.jsonl", "--progress", "plain", "--output", "r.json", *args)


def test_a_second_runner_with_a_fresh_disk_answers_everything_from_the_shared_cache(
    tmp_path: Path, sim: SimProcess, redis_server: RedisServer
) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(30))
    first = _eval(tmp_path, "--cache-url", redis_server.url, "--cache-dir", "disk-a")
    assert first.returncode == 0, first.stderr
    sim.reset_stats()
    second = _eval(tmp_path, "--cache-url", redis_server.url, "--cache-dir", "disk-b")
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert second.returncode == 0 and summary["cache_hits"] == 30 and sim.stats()["requests"] == 0
    keys = redis.Redis(port=redis_server.port, decode_responses=True).keys("*")
    assert len(keys) == 30 and all(str(key).startswith("evalrun:k1:") for key in keys)  # the key version in the prefix
    assert not (tmp_path / "disk-a").exists() and not (tmp_path / "disk-b").exists()  # nothing on the disks


def test_the_cache_ttl_is_redis_expiry(tmp_path: Path, sim: SimProcess, redis_server: RedisServer) -> None:
    local_config(tmp_path / "config.toml", sim)
    (tmp_path / "config.toml").write_text("[run]\ncache_ttl = 120\n\n" + (tmp_path / "config.toml").read_text())
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(3))
    assert _eval(tmp_path, "--cache-url", redis_server.url).returncode == 0
    client = redis.Redis(port=redis_server.port)
    assert all(100 < client.ttl(key) <= 120 for key in client.keys("*"))


def test_an_unreachable_redis_at_the_start_is_one_line_or_with_fallback_a_warning(
    tmp_path: Path, sim: SimProcess
) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(3))
    url = f"redis://:hunter2@127.0.0.1:{_free_port()}/0"
    refused = _eval(tmp_path, "--cache-url", url)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "unreachable" in refused.stderr and "--cache-fallback local" in refused.stderr
    assert "hunter2" not in refused.stderr  # the URL's password is never printed
    fallback = _eval(tmp_path, "--cache-url", url, "--cache-fallback", "local")
    assert fallback.returncode == 0 and "using the disk cache .evalrun/cache" in fallback.stderr
    assert (tmp_path / ".evalrun" / "cache").is_dir() and "hunter2" not in fallback.stderr + fallback.stdout
    written = [path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()]
    assert written and not [text for text in written if "hunter2" in text]  # results, history: masked
    in_query = _eval(tmp_path, "--cache-url", f"redis://127.0.0.1:{_free_port()}/0?password=hunter2")
    assert in_query.returncode == 2 and "hunter2" not in in_query.stderr
    bad_port = _eval(tmp_path, "--cache-url", "redis://127.0.0.1:abc/0")
    assert bad_port.returncode == 2 and "Traceback" not in bad_port.stderr and "not a usable URL" in bad_port.stderr


def _run_until_half_cached(tmp_path: Path, sim: SimProcess, redis_server: RedisServer) -> subprocess.Popen[str]:
    """An 80-case run on ``redis_server``, two calls of 50 ms at a time (40 cases a second), once
    30 answers are in Redis."""
    import os
    import sys

    sim.control(latency_ms=50)
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(80))
    command = ["eval", "local", "--suite", "s.jsonl", "--progress", "plain", "--output", "r.json",
               "--concurrency", "2", "--cache-url", redis_server.url]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    run = subprocess.Popen([sys.executable, "-m", "evalrun", *command], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while _cached(redis_server) < 30:
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.02)
    return run


def _cached(redis_server: RedisServer) -> int:
    try:
        return len(redis.Redis(port=redis_server.port).keys("*"))
    except redis.exceptions.ConnectionError:
        return -1


def _all_passed(tmp_path: Path) -> dict[str, Any]:
    results: dict[str, Any] = json.loads((tmp_path / "r.json").read_text())
    assert sorted(c["id"] for c in results["cases"]) == sorted(c["id"] for c in arithmetic_cases(80))
    assert all(c["status"] == "pass" for c in results["cases"])
    return results


def test_redis_killed_at_half_and_back_at_three_quarters_loses_nothing(tmp_path: Path, sim: SimProcess) -> None:
    (tmp_path / "redis").mkdir()
    redis_server = RedisServer(_free_port(), durable_in=tmp_path / "redis").start()
    run = _run_until_half_cached(tmp_path, sim, redis_server)
    redis_server.stop()  # at about half
    time.sleep(0.5)  # about a quarter of the run
    redis_server.start()
    try:
        _, err = run.communicate(timeout=60)
    finally:
        redis_server.stop()
    assert run.returncode == 0, err
    _all_passed(tmp_path)
    assert "unreachable" in err and "back after" in err and "Traceback" not in err
    redis_server.start()  # its file kept what it had; what waited while it was away was written when it came back
    try:
        assert _cached(redis_server) == 80
    finally:
        redis_server.stop()


def test_redis_gone_for_good_costs_no_answer_and_the_results_say_what_was_not_cached(
    tmp_path: Path, sim: SimProcess
) -> None:
    redis_server = RedisServer(_free_port()).start()
    run = _run_until_half_cached(tmp_path, sim, redis_server)
    redis_server.stop()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0 and "Traceback" not in err, err
    warnings = _all_passed(tmp_path)["summary"]["warnings"]
    lost = [w for w in warnings if "answers were not cached" in w]
    assert len(lost) == 1 and "still unreachable" in lost[0]  # in results.json: said before the reports
    assert 0 < int(re.search(r"; ([\d,]+) answers", lost[0])[1].replace(",", "")) <= 50  # type: ignore[index]


def test_the_cache_commands_work_on_redis(tmp_path: Path, sim: SimProcess, redis_server: RedisServer) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(4))
    assert _eval(tmp_path, "--cache-url", redis_server.url).returncode == 0
    stats = evalrun(tmp_path, "cache", "stats", "--cache-url", redis_server.url)
    assert stats.returncode == 0 and f"{redis_server.url}: 4 entries" in stats.stdout
    case_id = arithmetic_cases(4)[0]["id"]
    explained = evalrun(tmp_path, "cache", "explain", case_id, "--provider", "local", "--suite", "s.jsonl",
                        "--cache-url", redis_server.url)  # fmt: skip
    assert explained.returncode == 0 and explained.stdout.startswith(f"hit: {case_id}")
    cleared = evalrun(tmp_path, "cache", "clear", "--cache-url", redis_server.url)
    assert cleared.returncode == 0 and "removed 4 entries" in cleared.stdout
    assert redis.Redis(port=redis_server.port).dbsize() == 0


def test_the_shared_bucket_lends_each_call_its_turn_on_redis_clock(redis_server: RedisServer) -> None:
    import anyio

    from evalrun.client.shared_budget import SharedBudget

    async def waits() -> list[float]:
        budget = SharedBudget(redis_server.url, "http://provider", "sk-secret", warn=lambda message: None)
        try:
            return [await budget.take(f"{budget.prefix}:requests", 5.0, 1.0) or 0.0 for _ in range(10)]
        finally:
            await budget.aclose()

    spaced = anyio.run(waits)
    assert spaced[0] == 0.0 and all(later > earlier for earlier, later in itertools.pairwise(spaced))
    # The tenth call, 9 tokens of debt at 5 a second, waits 1.8 s less the time the ten calls took.
    assert 1.4 < spaced[-1] <= 1.8
    keys = redis.Redis(port=redis_server.port, decode_responses=True).keys("*")
    assert keys and all("sk-secret" not in str(key) for key in keys)  # named by a hash, never the key


def test_two_runners_on_one_key_stay_under_its_budget_together(
    tmp_path: Path, sim: SimProcess, redis_server: RedisServer
) -> None:
    import os
    import sys

    # The key allows 50 a second; the server takes 60, room for a loaded machine's jitter (a runner
    # that stalls sends its due calls together). Two runners pacing alone would send 100.
    sim.control(rpm=3600, latency_ms=20)
    local_config(tmp_path / "config.toml", sim, rpm=3000)
    cases = arithmetic_cases(120)
    write_suite(tmp_path / "a.jsonl", cases[:60])
    write_suite(tmp_path / "b.jsonl", cases[60:])
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    runs = [
        subprocess.Popen([sys.executable, "-m", "evalrun", "eval", "local", "--suite", f"{name}.jsonl", "--progress",
                          "none", "--cache-url", redis_server.url, "--cache-dir", name, "--concurrency", "8"],
                         cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]  # fmt: skip
    assert [run.wait(timeout=60) for run in runs] == [0, 0]
    served = sim.stats()
    assert served["requests"] == 120 and served["by_status"].get("429", 0) == 0
    assert served["busiest"]["1s"] <= 60  # 50 a second, and the jitter: far from two runners' 100


def test_answers_dropped_while_redis_is_away_are_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    from evalrun.cache import redis_store
    from evalrun.cache.store import StoredAnswer
    from evalrun.providers.base import ChatResponse

    monkeypatch.setattr(redis_store, "_HELD_MAX", 3)
    told: list[str] = []
    store = redis_store.RedisStore(f"redis://127.0.0.1:{_free_port()}/0", warn=told.append)
    answer = StoredAnswer({"v": 1}, ChatResponse("4", 1, 1, 1.0), "c", 0.0)

    async def keep_many() -> None:
        for n in range(5):
            await store.put_many([(f"k{n}a", answer), (f"k{n}b", answer)], None)

    anyio.run(keep_many)
    assert [m for m in told if "unreachable" in m] and len([m for m in told if "over 3 answers waiting" in m]) == 1


# -- the shared budget settles token estimates -------------------------------------------------------

_TPM = 3000  # 50 tokens a second: a call's first estimate (a short prompt and 256) is 5 s of it


def _budget(url: str) -> SharedBudget:
    from evalrun.client.shared_budget import SharedBudget

    return SharedBudget(url, "http://provider", "sk-secret", warn=lambda message: None)


def _rate() -> float:
    from evalrun.client.shared_budget import _SAFETY

    return _TPM * _SAFETY / 60


def test_a_give_back_fills_the_shared_bucket_at_most(redis_server: RedisServer) -> None:
    import anyio

    stored: list[float] = []

    async def waits() -> tuple[float | None, float | None]:
        budget = _budget(redis_server.url)
        key = f"{budget.prefix}:tokens"
        try:
            await budget.take(key, 5.0, 10.0)  # 9 tokens of debt
            given = await budget.take(key, 5.0, -100.0)  # more given back than was owed
            stored.append(float(redis.Redis(port=redis_server.port).hget(key, "tokens") or "nan"))
            return given, await budget.take(key, 5.0, 3.0)
        finally:
            await budget.aclose()

    given, after = anyio.run(waits)
    assert given == 0.0 and stored == [1.0]  # full, not 91
    assert after is not None and 0.2 < after <= 0.4  # the next call's 3 tokens are 2 owed (0.4 s, less the time since)


def test_what_a_call_gave_back_reaches_every_runner_with_the_next_take(redis_server: RedisServer) -> None:
    import anyio

    async def others_wait() -> float | None:
        mine, other = _budget(redis_server.url), _budget(redis_server.url)
        key, bucket = f"{mine.prefix}:tokens", mine.bucket("tokens", _TPM)
        try:
            await mine.take(key, _rate(), 260)  # a call's estimate; the call was sent
            bucket.adjust(5 - 260)  # and cost 5
            with anyio.fail_after(2):  # 5.3 s, had the estimate stood
                await bucket.take(5)  # this runner's next call: the give-back goes with it
            return await other.take(key, _rate(), 5)  # another runner's call
        finally:
            await mine.aclose()
            await other.aclose()

    wait = anyio.run(others_wait)
    assert wait is not None and wait < 1.0  # 5.4 s, had the estimate stood


def test_a_runners_calls_asleep_in_the_queue_move_up_by_what_it_gave_back(redis_server: RedisServer) -> None:
    import anyio

    async def second_call() -> None:
        budget = _budget(redis_server.url)
        key, bucket = f"{budget.prefix}:tokens", budget.bucket("tokens", _TPM)
        try:
            await budget.take(key, _rate(), 260)  # the first call's estimate; it was sent
            with anyio.fail_after(2):  # 5.3 s behind the first call's estimate
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(bucket.take, 5)  # the second call (its answer's size now known)
                    await anyio.wait_all_tasks_blocked()
                    bucket.adjust(5 - 260)  # the first call cost 5
        finally:
            await budget.aclose()

    anyio.run(second_call)


def test_what_was_given_back_waits_out_a_redis_that_is_away(tmp_path: Path) -> None:
    import anyio

    (tmp_path / "redis").mkdir()
    server = RedisServer(_free_port(), durable_in=tmp_path / "redis").start()  # its debt survives the restart

    async def others_wait() -> float | None:
        mine, other = _budget(server.url), _budget(server.url)
        key, bucket = f"{mine.prefix}:tokens", mine.bucket("tokens", _TPM)
        try:
            await mine.take(key, _rate(), 260)
            bucket.adjust(5 - 260)
            server.stop()
            await bucket.take(5)  # paced locally; what is owed to Redis is kept
            server.start()
            await anyio.sleep(1.2)  # until the runner tries Redis again
            with anyio.fail_after(2):
                await bucket.take(5)  # back: the give-back goes with it
            return await other.take(key, _rate(), 5)
        finally:
            await mine.aclose()
            await other.aclose()

    try:
        wait = anyio.run(others_wait)
    finally:
        server.stop()
    assert wait is not None and wait < 1.0  # about 4 s of debt, had the give-back been lost


def test_a_call_paced_locally_while_redis_was_away_settles_locally(redis_server: RedisServer) -> None:
    """Redis never took its estimate: its give-back, sent to Redis, would shrink every runner's
    debt by tokens never owed."""
    import anyio

    async def others_wait() -> float | None:
        mine, other = _budget(redis_server.url), _budget(redis_server.url)
        key, bucket = f"{mine.prefix}:tokens", mine.bucket("tokens", _TPM)
        try:
            redis_server.stop()
            await bucket.take(260)  # paced on the local bucket
            redis_server.start()
            await anyio.sleep(1.2)  # until the runner tries Redis again
            await bucket.take(0)  # Redis is back
            bucket.adjust(5 - 260)  # the call paced locally is answered
            await other.take(key, _rate(), 100)  # another runner's debt: 100 tokens, about 2 s
            with anyio.move_on_after(0.1):
                await bucket.take(1)  # this runner's next take carries whatever it owes Redis
            return await other.take(key, _rate(), 1)
        finally:
            await mine.aclose()
            await other.aclose()

    wait = anyio.run(others_wait)
    assert wait is not None and wait > 1.5  # the debt stands (a leaked give-back would clear it)


def test_a_shared_tpm_paces_a_run_by_what_its_calls_cost(
    tmp_path: Path, sim: SimProcess, redis_server: RedisServer
) -> None:
    """20 calls of about 5 tokens, under 3000 TPM: 100 s paced by their first estimates."""
    from helpers import local_settings

    from evalrun import Runner

    sim.control(latency_ms=10)
    settings = local_settings(tmp_path, sim, arithmetic_cases(20), cache_url=redis_server.url, tpm=_TPM,
                              concurrency=10, timeout=60)  # fmt: skip
    result = Runner(settings, env={}).run_sync()
    assert result.summary["passed"] == 20 and sim.stats()["requests"] == 20
    assert result.summary["wall_seconds"] < 40  # about 6 s: the first call's own estimate, then seconds
