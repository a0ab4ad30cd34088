"""How long and how often a call is tried again: the retry policy, the same for every API.

Two budgets, because a 429 and a failure mean different things. A failure (5xx, a timeout, a
reset connection, a broken body) may be a fault that will not go away, so it gets ``retries``
more attempts. A 429 says "not now", never "never": it is retried for as long as the case may
wait (``rate_limit_wait``, ten minutes by default) or the run has time, whichever ends first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["MAX_RETRY_DELAY", "TOLD_DELAY_FLOOR_CAP", "UNTOLD_429_MAX_DELAY", "CallPolicy", "backoff_delay"]

#: The longest wait evalrun accepts from a server before retrying (a longer word is capped).
MAX_RETRY_DELAY = 60.0
#: The longest backoff after a 429 that named no wait. Such a 429 comes from a concurrency cap,
#: which frees a slot within a request's latency: waiting a minute would only idle the run.
UNTOLD_429_MAX_DELAY = 5.0
#: The most the floor under a server's stated wait grows to (see ``backoff_delay``): one second,
#: the shortest wait ``retry-after`` can state in whole seconds, so that an honest
#: "retry-after: 1" is never stretched.
TOLD_DELAY_FLOOR_CAP = 1.0


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
    backoff with jitter (half the step, plus up to the other half at random), capped.

    The server's word has a floor: half the step, at most ``TOLD_DELAY_FLOOR_CAP``. A server may
    name no wait at all ("retry-after: 0", an HTTP date already past, OpenAI's
    "x-ratelimit-reset-requests: 6ms"), and taken as said, a call refused again and again
    retries in a tight loop for all of --rate-limit-wait: thousands of requests a second from
    one case. The floor grows with each refusal, as backoff does, so a first retry still comes
    soon; capped at a second, it never stretches a wait a server states in whole seconds.
    """
    step = base * 2.0 ** min(attempt - 1, 30)
    if server_delay is None:
        delay = step / 2 + random.uniform(0, step / 2)
    else:
        delay = max(server_delay, min(step / 2, TOLD_DELAY_FLOOR_CAP))
    return min(delay, ceiling)
