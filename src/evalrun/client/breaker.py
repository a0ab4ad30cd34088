"""When nothing can succeed, say so at once instead of retrying every case for minutes.

Two signs are enough. A 401 means the key is refused: every other call would be refused too, so
the first one stops the run; so does a 403 before any answer came (after one, a 403 is more
likely one case's content than the key, and is that case's error). And when a call has failed to
reach the server at all (a name that does not resolve, a refused connection, a TLS failure)
``UNREACHABLE_AFTER`` times in a row, across its backoffs, or attempts of several calls have for
``UNREACHABLE_FOR`` seconds (a name that takes seconds to fail to resolve, on a paced key, would
keep one call from its third attempt for long), and not one response of any status has come, the
server is not there: without a network, a Groq run used to retry 48 cases for 99 s. Neither
counts the first wave alone: a server still starting gets the time to come up.
Once the server has said anything, a failure to connect is a blip, and the retries deal with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["UNREACHABLE_AFTER", "UNREACHABLE_FOR", "Breaker", "Trip"]

#: Attempts of one call, in a row, that must fail to reach the server, with no response yet, before
#: the run stops: with the backoff between them, a second or more; few enough to stop in seconds.
UNREACHABLE_AFTER = 3
#: Or twice as many attempts, over this many seconds at least, whichever calls made them.
UNREACHABLE_FOR = 1.0


@dataclass(frozen=True)
class Trip:
    """Why nothing can succeed: the key is refused (``auth``) or the server cannot be reached."""

    kind: Literal["auth", "unreachable"]
    reason: str  # the last failure's own words


class Breaker:
    """Watches every attempt's outcome; ``tripped`` is set once, by the first sign."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.tripped: Trip | None = None
        self._answered = False
        self._clock = clock
        self._unreachable = 0
        self._first_unreachable_at: float | None = None

    def answered(self) -> None:
        """The server responded (any status): it is there."""
        self._answered = True

    def unreachable(self, reason: str, in_a_row: int) -> Trip | None:
        """A call's ``in_a_row``-th attempt in a row that never reached the server; the trip, if
        this one makes it."""
        now = self._clock()
        if self._first_unreachable_at is None:
            self._first_unreachable_at = now
        self._unreachable += 1
        lasting = self._unreachable >= 2 * UNREACHABLE_AFTER and now - self._first_unreachable_at >= UNREACHABLE_FOR
        if self._answered or not (in_a_row >= UNREACHABLE_AFTER or lasting):
            return None
        return self._trip(Trip("unreachable", reason))

    def refused(self, status: int | None, reason: str) -> Trip | None:
        """A final error; the trip, if it says the key is refused."""
        if status == 401 or (status == 403 and not self._answered):
            return self._trip(Trip("auth", reason))
        return None

    def _trip(self, trip: Trip) -> Trip | None:
        if self.tripped is not None:
            return None  # told once
        self.tripped = trip
        return trip
