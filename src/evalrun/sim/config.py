"""How the simulated provider behaves: a plain record, light to import (no asyncio, no HTTP)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["SimConfig"]

_RATES = ("rate_429", "rate_500", "rate_timeout", "rate_malformed")


@dataclass
class SimConfig:
    """Every field can be set in a profile (``[providers.sim]``) and changed live through ``/control``."""

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
        return str(value)
    kind = int if key == "seed" else float
    try:
        if isinstance(value, bool):
            raise TypeError
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if key != "seed" and not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{key} must be 0 or more, got {value!r}")
    if key in _RATES and number > 1:
        raise ValueError(f"{key} is a share of calls, from 0 to 1, got {value!r}")
    return number
