"""A run that cannot succeed stops at once, saying why (issue 10, item 1): a refused key after the
first answers, a server that cannot be reached after the first few attempts; a server that
answered once keeps its retries. Real runs against real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun.client import Breaker
from evalrun.client.breaker import UNREACHABLE_AFTER
from evalrun.sim import SimProcess


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def test_a_closed_port_stops_the_run_after_a_few_attempts_naming_the_host(tmp_path: Path) -> None:
    port = _closed_port()
    _config(tmp_path, f"http://127.0.0.1:{port}/v1")
    code, stderr, summary = _run(tmp_path)
    assert code == 3 and f"cannot reach 127.0.0.1:{port}: ConnectError" in stderr
    # Retried 4 times each, 50 cases would be 250 attempts: it stopped with the first wave.
    assert summary["not_run"] >= 45 and summary["retries"] <= 10


def test_a_name_that_does_not_resolve_stops_the_run_naming_the_host(tmp_path: Path) -> None:
    _config(tmp_path, "http://no-such-host.invalid/v1")  # .invalid never resolves (RFC 2606)
    code, stderr, summary = _run(tmp_path, "--request-timeout", "3")
    assert code == 3 and "cannot reach no-such-host.invalid: Connect" in stderr
    assert summary["not_run"] >= 45


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


def test_a_server_that_answered_once_keeps_its_retries() -> None:
    breaker = Breaker()
    breaker.answered()
    assert all(breaker.unreachable("ConnectError: refused") is None for _ in range(10 * UNREACHABLE_AFTER))
    fresh = Breaker()
    trips = [fresh.unreachable("ConnectError: refused") for _ in range(UNREACHABLE_AFTER + 2)]
    assert trips[: UNREACHABLE_AFTER - 1] == [None] * (UNREACHABLE_AFTER - 1)
    assert trips[UNREACHABLE_AFTER - 1] is not None and trips[UNREACHABLE_AFTER:] == [None, None]  # told once
    assert Breaker().refused(500, "HTTP 500: boom") is None and Breaker().refused(403, "HTTP 403: no") is not None
