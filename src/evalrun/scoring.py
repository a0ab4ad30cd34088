"""The scoring stage: how an answer becomes a verdict, outside the engine.

The engine hands every answer (fresh or cached) to a ``Scorer`` and records what it says; a scorer
that fails turns that one case into an error, never the run. Scorers are async and receive
``generate``, the engine's own way to call a model (cache first, then a slot of the limiter and the
rate buckets), so a model-graded scorer costs and caches like any other call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .assertions import score_case
from .providers.base import ChatResponse
from .schema import AssertionResult

if TYPE_CHECKING:
    from .suite import Case

__all__ = ["AssertionScorer", "Generate", "ModelRequest", "Scorer", "Verdict"]


@dataclass(frozen=True)
class ModelRequest:
    """A chat call a scorer asks for; ``category`` keeps its cache entries apart from the cases'."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    params: Mapping[str, Any] = field(default_factory=dict)
    category: str = "scoring"


#: The engine's model call, as scorers get it: cached, limited, paced, retried.
Generate = Callable[[ModelRequest], Awaitable[ChatResponse]]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    score: float
    assertions: list[AssertionResult]


class Scorer(Protocol):
    """Judges answers. A scorer that never calls ``generate`` may say so with a class attribute
    ``calls_models = False``: the engine then scores where the answer is, without a task of its own."""

    async def score(self, case: Case, answer: ChatResponse, generate: Generate) -> Verdict:
        """Judge ``answer`` to ``case``; may call models through ``generate``."""
        ...


class AssertionScorer:
    """The case's own assertions: pure functions of the answer, no model call."""

    calls_models = False

    async def score(self, case: Case, answer: ChatResponse, generate: Generate) -> Verdict:
        passed, score, checks = score_case(case.assertions, answer.text, answer.latency_ms, case.threshold)
        results: list[AssertionResult] = [
            {"type": c.type, "pass": c.passed, "score": round(c.score, 6), "reason": c.reason} for c in checks
        ]
        return Verdict(passed, score, results)
