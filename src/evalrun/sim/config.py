"""How the simulated provider behaves: a plain record, light to import (no asyncio, no HTTP)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SimConfig"]

_RATES = ("rate_429", "rate_500", "rate_timeout", "rate_malformed")
_WHOLE = ("seed", "max_inflight")


@dataclass
class SimConfig:
    """Every field can be set in a profile (``[providers.sim]``) and changed live through ``/control``.

    Numbers are 0 or more, and 0 turns a behaviour off. ``rpm``, ``tpm`` and ``max_inflight`` make
    the server refuse work as a real key does (see ``sim/server.py``): a request and token budget
    answered with 429 and ``x-ratelimit-*`` headers, and a gateway's cap on concurrent requests.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    retry_after_ms: float = 20.0
    seed: int = 0
    #: When set, chat requests must carry ``authorization: Bearer <api_key>`` (else 401).
    api_key: str = ""
    #: Requests a minute the key may make (0: unlimited); over it, 429 with ``retry-after``.
    rpm: float = 0.0
    #: Prompt and completion tokens a minute the key may spend (0: unlimited).
    tpm: float = 0.0
    #: Chat requests served at once; one more is refused at once with a bare 429 (0: no cap).
    max_inflight: int = 0

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply changes; ``ValueError`` names an unknown setting or a value out of range."""
        names = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(names)})")
        for key, value in changes.items():
            setattr(self, key, _value(key, value))


def _value(key: str, value: Any) -> Any:
    if key == "api_key":
        if not isinstance(value, str):  # str() would make a key of a number or a list
            raise ValueError(f"api_key must be a string, got {type(value).__name__}")  # a key: not shown
        return value
    whole = key in _WHOLE
    try:
        if isinstance(value, bool):
            raise TypeError
        number = int(value) if whole else float(value)
        if whole and isinstance(value, float) and number != value:
            raise ValueError  # int() would silently drop the fraction of 2.5
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key} must be a {'whole ' if whole else ''}number, got {value!r}") from None
    if key != "seed" and not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{key} must be 0 or more, got {value!r}")
    if key in _RATES and number > 1:
        raise ValueError(f"{key} is a share of calls, from 0 to 1, got {value!r}")
    return number
