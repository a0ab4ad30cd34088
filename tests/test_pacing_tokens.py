"""Token budgets (the client's --tpm, the server's stated one) pace a run by what its calls cost,
not by the estimates each call takes before it is sent. End to end against the simulated provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import arithmetic_cases, local_settings

from evalrun import Runner, RunResult
from evalrun.client.model_client import AnswerSizes
from evalrun.providers.base import estimate_tokens
from evalrun.sim import SimProcess

#: A call's estimate before any answer is seen: the prompt (a few tokens) and 256 for the answer.
#: Under 3000 TPM (50 tokens a second), paced by estimates, 20 calls take 20 * 5.2 s; paced by what
#: they cost (about 5 tokens each), a second or two. The bound leaves a slow machine room.
_SLOWER_THAN_ANY_MACHINE = 40.0


def _run(tmp_path: Path, sim: SimProcess, cases: int, **overrides: Any) -> RunResult:
    settings = local_settings(tmp_path, sim, arithmetic_cases(cases), retry_base_delay=0.005, **overrides)
    return Runner(settings, env={}).run_sync()


def test_the_clients_tpm_paces_by_what_calls_cost(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=10)
    result = _run(tmp_path, sim, 20, tpm=3000, concurrency=10, timeout=60)
    assert result.summary["passed"] == 20 and result.state == "completed"
    assert sim.stats()["requests"] == 20
    assert result.summary["wall_seconds"] < _SLOWER_THAN_ANY_MACHINE


def test_the_servers_stated_tpm_paces_by_what_calls_cost(tmp_path: Path, sim: SimProcess) -> None:
    """The budget the headers state, 50 tokens a second: read from the first answers, then kept."""
    sim.control(tpm=3000, latency_ms=10)
    result = _run(tmp_path, sim, 30, concurrency=20, timeout=60)
    assert result.summary["passed"] == 30 and result.state == "completed"
    assert sim.stats()["by_status"].get("429", 0) <= 20  # only the opening burst's, sent before any was known
    assert result.summary["wall_seconds"] < _SLOWER_THAN_ANY_MACHINE


def test_an_answer_is_estimated_at_its_cap_else_at_what_answers_have_cost() -> None:
    messages = [{"role": "user", "content": "x" * 40}]  # 10 tokens
    assert estimate_tokens(messages, {}) == 10 + 256  # nothing seen yet
    assert estimate_tokens(messages, {"max_tokens": 50}, answer_tokens=3.2) == 60  # the cap, as OpenAI reserves
    assert estimate_tokens(messages, {"max_completion_tokens": 7}) == 17
    assert estimate_tokens(messages, {}, answer_tokens=3.2) == 14
    sizes = AnswerSizes()
    assert sizes.expected("m") is None
    sizes.seen("m", 10)
    assert sizes.expected("m") == 10  # the first answer replaces the guess
    for _ in range(30):
        sizes.seen("m", 100)
    assert 95 < (sizes.expected("m") or 0) <= 100  # followed within a few dozen answers
    assert sizes.expected("other") is None  # each model its own
