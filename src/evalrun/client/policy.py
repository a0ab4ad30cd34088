"""How long and how often a call is tried again: the retry policy, the same for every API.

Two budgets, because a 429 and a failure mean different things. A failure (5xx, a timeout, a
reset connection, a broken body) may be a fault that will not go away, so it gets ``retries``
more attempts. A 429 says "not now", never "never": it is retried for as long as the case may
wait (``rate_limit_wait``, ten minutes by default) or the run has time, whichever ends first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["MAX_RETRY_DELAY", "UNTOLD_429_MAX_DELAY", "CallPolicy", "backoff_delay"]

#: The longest wait evalrun accepts from a server before retrying (a longer word is capped).
MAX_RETRY_DELAY = 60.0
#: The longest backoff after a 429 that named no wait. Such a 429 comes from a concurrency cap,
#: which frees a slot within a request's latency: waiting a minute would only idle the run.
UNTOLD_429_MAX_DELAY = 5.0


@dataclass(frozen=True)
class CallPolicy:
    """What the model client may do around each call; none of it changes an answer or a cache key."""

    concurrency: int = 10
    retries: int = 4  # more attempts after a failure that is not a 429
    retry_base_delay: float = 0.5  # the first backoff when the server names no wait
    rate_limit_wait: float = 600.0  # seconds a case keeps retrying 429s before it is an error
    rpm: int | None = None  # the client's own budgets, on top of what the server's headers say
    tpm: int | None = None


def backoff_delay(server_delay: float | None, attempt: int, base: float, ceiling: float = MAX_RETRY_DELAY) -> float:
    """Seconds before retry number ``attempt`` (1-based): the server's word, else exponential
    backoff with jitter (half the step, plus up to the other half at random), capped."""
    if server_delay is None:
        step = base * 2 ** min(attempt - 1, 30)
        server_delay = step / 2 + random.uniform(0, step / 2)
    return min(server_delay, ceiling)
