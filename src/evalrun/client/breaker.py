"""When nothing can succeed, say so at once instead of retrying every case for minutes.

Two signs are enough. A 401 or 403 means the key is refused: every other call would be refused
too, so the first one stops the run. And when the first attempts all fail to reach the server at
all (a name that does not resolve, a refused connection, a TLS failure) and not one answer has
come, the server is not there: without a network, a Groq run used to retry 48 cases for 99 s.
Once a single answer has come, a failure to connect is a blip, and the retries deal with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["UNREACHABLE_AFTER", "Breaker", "Trip"]

#: Attempts that must all fail to reach the server, with no answer yet, before the run stops: more
#: than one (a single refused connection can be a server restarting), few enough to stop in seconds.
UNREACHABLE_AFTER = 3

AUTH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class Trip:
    """Why nothing can succeed: the key is refused (``auth``) or the server cannot be reached."""

    kind: Literal["auth", "unreachable"]
    reason: str  # the last failure's own words


class Breaker:
    """Watches every attempt's outcome; ``tripped`` is set once, by the first sign."""

    def __init__(self) -> None:
        self.tripped: Trip | None = None
        self._answered = False
        self._unreachable = 0

    def answered(self) -> None:
        self._answered = True

    def unreachable(self, reason: str) -> Trip | None:
        """An attempt that never reached the server; the trip, if this one makes it."""
        self._unreachable += 1
        if self._answered or self._unreachable < UNREACHABLE_AFTER:
            return None
        return self._trip(Trip("unreachable", reason))

    def refused(self, status: int | None, reason: str) -> Trip | None:
        """A final error; the trip, if it says the key is refused."""
        return self._trip(Trip("auth", reason)) if status in AUTH_STATUSES else None

    def _trip(self, trip: Trip) -> Trip | None:
        if self.tripped is not None:
            return None  # told once
        self.tripped = trip
        return trip
