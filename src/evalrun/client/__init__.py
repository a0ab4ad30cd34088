"""The model client: retries, pacing and concurrency around a provider, separate from the engine.

``ModelClient`` is what the engine calls; ``CallPolicy`` is what it may do; ``policy``,
``pacing`` and ``concurrency`` are its three policies, each testable on its own with a clock;
``breaker`` says when no call can succeed.
"""

from __future__ import annotations

from .breaker import Breaker, Trip
from .concurrency import ConcurrencyController, Outcome
from .model_client import CallLimits, ModelClient, acquire_promptly
from .pacing import ServerPacer, TokenBucket
from .policy import CallPolicy, backoff_delay

__all__ = [
    "Breaker",
    "CallLimits",
    "CallPolicy",
    "ConcurrencyController",
    "ModelClient",
    "Outcome",
    "ServerPacer",
    "TokenBucket",
    "Trip",
    "acquire_promptly",
    "backoff_delay",
]
