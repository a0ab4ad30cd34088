"""The scoring stage and the provider seam, end to end through the Python API.

A scorer that calls a model (the shape of a future LLM judge) goes through the engine's own
limiter and cache; a failing scorer costs its case, never the run; and a provider of another API
(Anthropic's Messages, against a fake of it on loopback) runs a suite like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic
from helpers import arithmetic_cases, local_settings, write_suite

from evalrun import Runner, RunResult
from evalrun.providers.base import ChatResponse
from evalrun.schema import AssertionResult, Status
from evalrun.scoring import Generate, ModelRequest, Scorer, Verdict
from evalrun.settings import load_settings
from evalrun.sim import SimProcess
from evalrun.suite import Case


class EchoJudge:
    """Asks the model to repeat the answer in upper case, and passes when it did: one model call a case."""

    def __init__(self) -> None:
        self.calls = 0

    async def score(self, case: Case, answer: ChatResponse, generate: Generate) -> Verdict:
        self.calls += 1
        verdict = await generate(ModelRequest("sim-1", [{"role": "user", "content": f"uppercase: {answer.text}"}]))
        passed = verdict.text == answer.text.upper()
        check: AssertionResult = {"type": "judge", "pass": passed, "score": float(passed), "reason": verdict.text}
        return Verdict(passed, float(passed), [check])


class Broken:
    async def score(self, case: Case, answer: ChatResponse, generate: Generate) -> Verdict:
        raise RuntimeError(f"no verdict for {case.id}")


def run(tmp_path: Path, sim: SimProcess, scorer: Scorer | None, cases: int = 12, **overrides: Any) -> RunResult:
    settings = local_settings(tmp_path, sim, arithmetic_cases(cases), **overrides)
    return Runner(settings, env={}, scorer=scorer).run_sync()


def test_a_model_graded_scorer_calls_through_the_engines_limiter_and_cache(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=30)
    judge = EchoJudge()
    first = run(tmp_path, sim, judge, concurrency=3)
    stats = sim.stats()
    assert first.summary["passed"] == 12 and judge.calls == 12
    assert stats["requests"] == 24  # every case, then its judge call
    assert stats["peak_inflight"] <= 3  # the judge's calls held slots of the same limiter
    assert all(case["assertions"][0]["reason"] == str(2 * int(case["id"][1:])) for case in first.cases())
    sim.reset_stats()
    second = run(tmp_path, sim, EchoJudge(), concurrency=3)
    assert second.summary["passed"] == 12 and second.summary["cache_hits"] == 12
    assert sim.stats()["requests"] == 0  # the judge's answers were cached like any other


def test_a_warm_cache_is_judged_concurrently(tmp_path: Path, sim: SimProcess) -> None:
    """Cached answers, uncached judgements: the judge calls run side by side, not one by one."""
    assert run(tmp_path, sim, None).summary["passed"] == 12
    sim.control(latency_ms=60)
    sim.reset_stats()
    judged = run(tmp_path, sim, EchoJudge(), concurrency=4)
    stats = sim.stats()
    assert judged.summary["cache_hits"] == 12 and judged.summary["passed"] == 12
    assert stats["requests"] == 12 and 2 <= stats["peak_inflight"] <= 4  # side by side (exactly 4: an idle machine)


def test_a_failing_scorer_costs_its_case_never_the_run(tmp_path: Path, sim: SimProcess) -> None:
    fresh = run(tmp_path, sim, Broken(), max_errors=100, min_pass_rate=0)
    assert fresh.summary["errors"] == 12 and fresh.exit_code == 0
    records = list(fresh.cases())
    assert all(r["status"] == Status.ERROR and r["error"].startswith("scoring failed: RuntimeError") for r in records)
    assert all(r["response"] == str(2 * int(r["id"][1:])) and r["tokens"]["completion"] for r in records)  # kept
    assert run(tmp_path, sim, None).summary["cache_hits"] == 12  # the answers themselves were kept
    cached = run(tmp_path, sim, Broken(), max_errors=100, min_pass_rate=0)  # the cache-hit path is guarded too
    assert cached.summary["errors"] == 12 and cached.summary["cache_hits"] == 12


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_anthropic_profile_runs_a_suite_end_to_end(tmp_path: Path, concurrency: int) -> None:
    cases: list[dict[str, Any]] = [
        {"id": "greet", "system": "Be brief.", "prompt": "hello there", "expected": "echo: hello there"},
        {
            "id": "stop",
            "prompt": "one two three",
            "params": {"stop": ["three"]},
            "assert": [{"type": "starts-with", "value": "echo: one two"}, {"type": "not-contains", "value": "three"}],
        },
        {"id": "wrong", "prompt": "ping", "expected": "pong"},
    ]
    suite = write_suite(tmp_path / "suite.jsonl", cases)
    with FakeAnthropic(api_key="sk-ant-e2e") as fake:
        fake.fail_next(1, 529)  # overloaded once: retried like a 5xx
        (tmp_path / "config.toml").write_text(
            f'[providers.claude]\napi = "anthropic"\nbase_url = "{fake.url}"\napi_key_env = "CLAUDE_KEY"\n'
            'model = "claude-test"\nmax_tokens = 50\n'
        )
        settings = load_settings(
            tmp_path / "config.toml",
            env={},
            provider="claude",
            suites=(str(suite),),
            cache_dir=str(tmp_path / "cache"),
            concurrency=concurrency,
            retry_base_delay=0.001,
            min_pass_rate=0,
        )
        result = Runner(settings, env={"CLAUDE_KEY": "sk-ant-e2e"}).run_sync()
        bodies = fake.bodies
    statuses = {case["id"]: case["status"] for case in result.cases()}
    assert statuses == {"greet": Status.PASS, "stop": Status.PASS, "wrong": Status.FAIL}
    assert result.summary["retries"] == 1 and result.summary["errors"] == 0
    greet = next(b for b in bodies if b["messages"][-1]["content"] == "hello there")
    assert greet["system"] == "Be brief." and greet["max_tokens"] == 50 and greet["model"] == "claude-test"
    again = Runner(settings, env={"CLAUDE_KEY": "sk-ant-e2e"}).run_sync()  # the fake is gone: all from the cache
    assert again.summary["cache_hits"] == 3 and again.summary["errors"] == 0
