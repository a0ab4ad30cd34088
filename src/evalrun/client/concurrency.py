"""The effective concurrency: lowered only on sustained evidence that concurrency causes the 429s.

A 429 means one of two things. "This key's budget is spent, come back at T" (OpenAI, Groq and
Anthropic name the wait in ``retry-after`` or reset headers) is about the rate of requests, not
their number in flight: the client delays that request and paces new ones, and cutting
concurrency would only slow the run. "Too many at once" (a gateway's or a local server's cap)
usually names no wait at all. So the policy:

- A 429 whose headers say a budget of the key is spent is not counted at all: the pacer reads its
  headers and keeps the run to the budget, whatever the concurrency.
- Attempts are judged in *rounds* of the limit's worth (at least ``MIN_ROUND``): each attempt is
  a success, a failure (5xx, timeout, broken body: counted in the round, as it is in what the
  server was sent), a *told* 429 (the server named a wait) or an *untold* 429. A round restarts at every
  change of the limit, and 429s of calls begun before a change are left out, so no limit is cut
  for what was sent under the one before (successes all count: the server did serve them).
- Untold 429s cut at once, when there are ``UNTOLD_MIN`` of them making ``UNTOLD_SHARE`` of the
  round so far. Told 429s cut only when they are most of a whole round (``TOLD_SHARE``): then they
  are no longer a budget's word but the sign of a server we overload. Random 429s that name a
  wait, at any rate below that, never move the limit.
- A cut multiplies the limit by the share of the round that was not refused, kept between
  ``DEEPEST_CUT`` and ``GENTLEST_CUT``: a server refusing 60 % of 50 calls serves about 20, so the
  limit goes straight to half, not through five steps of refusals; weak evidence costs a fifth.
  At most one cut per round trip (the smoothed latency of successful attempts), so that the 429s
  of one overload count once.
- Growth, after a round without an untold 429 (and without a majority of told ones), never above
  the configured concurrency: +1 a round just after a cut, where the limit probes the server's
  cap and a step too far costs a few refusals; times ``INCREASE`` once ``FAST_AFTER`` rounds in a row
  were clean, so that from half back to whole takes a second or two at hosted models' latencies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from enum import IntEnum

__all__ = ["ConcurrencyController", "Outcome"]

MIN_ROUND = 20  # attempts: fewer say too little about a share of 429s
UNTOLD_MIN = 3
UNTOLD_SHARE = 0.10
TOLD_SHARE = 0.5
GENTLEST_CUT = 0.8
DEEPEST_CUT = 0.5
INCREASE = 1.2
FAST_AFTER = 3  # clean rounds in a row before growth turns from +1 to x INCREASE
FIRST_ROUND_TRIP = 0.5  # seconds assumed before any latency is measured
MIN_ROUND_TRIP = 0.05
SMOOTHING = 0.2  # weight of each new latency in the smoothed round trip


class Outcome(IntEnum):
    OK = 0
    TOLD_429 = 1
    UNTOLD_429 = 2
    FAILED = 3  # a 5xx, a timeout, a broken body: an attempt of the round, and no sign of overload


class ConcurrencyController:
    """The limit in force, between 1 and ``ceiling``; ``record`` says when it changed."""

    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self._clock = clock
        self._round_trip: float | None = None
        self._changed_at = float("-inf")
        self._clean_rounds = FAST_AFTER
        self._attempts = self._told = self._untold = 0

    @property
    def round_trip(self) -> float:
        return max(MIN_ROUND_TRIP, self._round_trip if self._round_trip is not None else FIRST_ROUND_TRIP)

    def record(self, outcome: Outcome, sent_at: float, latency: float | None = None) -> str | None:
        """Count one attempt sent at ``sent_at`` (the clock's time); the reason when the limit
        changed, else ``None``."""
        if latency is not None:
            previous = self._round_trip
            self._round_trip = latency if previous is None else previous + SMOOTHING * (latency - previous)
        if outcome in (Outcome.TOLD_429, Outcome.UNTOLD_429) and sent_at < self._changed_at:
            return None  # refused under an older limit: says nothing of this one
        self._attempts += 1
        if outcome is Outcome.UNTOLD_429:
            self._untold += 1
            if self._untold >= UNTOLD_MIN and self._untold >= UNTOLD_SHARE * self._attempts:
                return self._cut(
                    self._untold, f"{self._untold} of {self._attempts} calls refused (429) without a reset"
                )
        elif outcome is Outcome.TOLD_429:
            self._told += 1
        if self._attempts >= max(MIN_ROUND, self.limit):
            return self._end_round()
        return None

    def _end_round(self) -> str | None:
        attempts, told = self._attempts, self._told
        if told > TOLD_SHARE * attempts:  # most of the round
            return self._cut(told, f"{told} of {attempts} calls rate limited (429)")
        clean = not self._untold
        self._clean_rounds = self._clean_rounds + 1 if clean else 0
        self._new_round()
        if not clean or self.limit >= self.ceiling:
            return None
        grown = math.ceil(self.limit * INCREASE) if self._clean_rounds >= FAST_AFTER else self.limit + 1
        self._change(min(self.ceiling, max(self.limit + 1, grown)))
        return "recovering"

    def _cut(self, refused: int, reason: str) -> str | None:
        if self.limit <= 1 or self._clock() - self._changed_at < self.round_trip:
            if self._attempts >= max(MIN_ROUND, self.limit):  # a whole round judged: start another
                self._clean_rounds = 0
                self._new_round()
            return None
        kept = min(GENTLEST_CUT, max(DEEPEST_CUT, 1 - refused / self._attempts))
        self._clean_rounds = 0
        self._change(max(1, min(self.limit - 1, round(self.limit * kept))))
        return reason

    def _change(self, limit: int) -> None:
        self.limit = limit
        self._changed_at = self._clock()
        self._new_round()

    def _new_round(self) -> None:
        self._attempts = self._told = self._untold = 0
