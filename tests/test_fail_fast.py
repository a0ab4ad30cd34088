"""A run that cannot succeed stops at once, saying why (issue 10, item 1): a refused key after the
first answers, a server that a call could not reach a few times in a row; a server that
responded once keeps its retries. Real runs against real sockets on 127.0.0.1 (a name that does
not resolve fails the same way as a closed port, but resolving it would ask the network)."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.client import Breaker, CallPolicy, ModelClient, Trip
from evalrun.client.breaker import UNREACHABLE_AFTER, UNREACHABLE_FOR
from evalrun.providers.base import ChatResponse, ProviderError, Reply, TransientError
from evalrun.sim import SimProcess


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound and never listened on, for the whole test: a connection there is
    refused, and no other test's server can take the port meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def _config(tmp_path: Path, base_url: str, key_variable: str = "") -> None:
    extra = f'api_key_env = "{key_variable}"\n' if key_variable else ""
    (tmp_path / "config.toml").write_text(f'[providers.p]\nbase_url = "{base_url}"\nmodel = "m"\n{extra}')


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, dict[str, int]]:
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(50))
    done = evalrun(
        tmp_path, "eval", "p", "--suite", "suite.jsonl", "--no-cache", "--retries", "4", "--concurrency", "5",
        "--progress", "plain", "--output", "r.json", *args, env=env,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr, json.loads((tmp_path / "r.json").read_text())["summary"]


def test_a_closed_port_stops_the_run_after_a_few_attempts_naming_the_host(tmp_path: Path, closed_port: int) -> None:
    port = closed_port
    _config(tmp_path, f"http://127.0.0.1:{port}/v1")
    code, stderr, summary = _run(tmp_path)
    assert code == 3 and f"cannot reach 127.0.0.1:{port}: ConnectError" in stderr
    # Without the stop: 4 retries x 50 cases = 200. With it: the calls begun before the first one's
    # third attempt (at most 4 x concurrency: the engine's live budget), two retries each at most.
    assert summary["not_run"] >= 25 and summary["retries"] <= 2 * 4 * 5 + 5


def test_a_refused_key_stops_the_run_after_the_first_answers(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(api_key="the-right-key")
    local_config(tmp_path / "config.toml", sim, api_key_env="P_KEY")
    (tmp_path / "config.toml").write_text(
        (tmp_path / "config.toml").read_text().replace("[providers.local]", "[providers.p]")
    )
    code, stderr, summary = _run(tmp_path, env={"P_KEY": "sk-wrong-key-0001"})
    assert code == 3 and "provider 'p' rejected the API key (HTTP 401): check P_KEY" in stderr
    assert sim.stats()["requests"] <= 5 and summary["not_run"] >= 45  # the first wave, then nothing
    assert "sk-wrong-key-0001" not in stderr


def test_the_breaker_trips_on_one_call_failing_to_connect_in_a_row_never_after_a_response() -> None:
    fresh = Breaker()
    trips = [fresh.unreachable("ConnectError: refused", n) for n in range(1, UNREACHABLE_AFTER + 2)]
    assert trips[: UNREACHABLE_AFTER - 1] == [None] * (UNREACHABLE_AFTER - 1)
    assert trips[UNREACHABLE_AFTER - 1] is not None and trips[UNREACHABLE_AFTER] is None  # told once
    answered = Breaker()
    answered.answered()
    assert answered.unreachable("ConnectError: refused", 10 * UNREACHABLE_AFTER) is None


def test_the_breaker_trips_on_many_first_attempts_only_once_they_have_lasted() -> None:
    now = [0.0]
    breaker = Breaker(clock=lambda: now[0])
    first_wave = [breaker.unreachable("ConnectError: refused", 1) for _ in range(20)]  # all at once
    assert first_wave == [None] * 20  # a server still starting gets its time
    now[0] = UNREACHABLE_FOR
    assert breaker.unreachable("ConnectError: refused", 1) is not None


def test_a_401_always_trips_a_403_only_before_any_response() -> None:
    assert Breaker().refused(401, "HTTP 401: no") is not None and Breaker().refused(403, "HTTP 403: no") is not None
    assert Breaker().refused(500, "HTTP 500: boom") is None
    answered = Breaker()
    answered.answered()
    assert answered.refused(403, "HTTP 403: this case's content") is None  # one case's error, not the key's
    assert answered.refused(401, "HTTP 401: revoked") is not None


def test_a_server_that_responded_once_keeps_its_retries_when_it_goes_away() -> None:
    class Flaky:
        """Answers the first call, then cannot be reached at all."""

        identity: ClassVar[dict[str, str]] = {"name": "flaky"}
        calls = 0

        async def send(self, model: str, messages: Any, params: Any) -> Reply:
            Flaky.calls += 1
            if Flaky.calls == 1:
                return Reply(ChatResponse("4", 1, 1, 1.0))
            raise TransientError("ConnectError: refused", unreachable=True)

    trips: list[Trip] = []

    async def go() -> int:
        policy = CallPolicy(concurrency=1, retries=5, retry_base_delay=0.001)
        client = ModelClient(Flaky(), policy, lambda e: None, trips.append)  # type: ignore[arg-type]
        for _ in range(2):
            holder = object()
            await client.acquire(holder)
            with contextlib.suppress(ProviderError):
                await client.complete(holder, "m", [{"role": "user", "content": "2+2?"}], {}, "c")
        return Flaky.calls

    assert anyio.run(go) == 1 + 6 and trips == []  # every retry spent, and no stop
