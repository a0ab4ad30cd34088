"""The simulated model's answers: a few deterministic text tricks, never a pretence of a model.

It computes arithmetic and follows a handful of explicit instructions (``repeat:``, ``uppercase:``,
``reverse:``, ``count words:``, ``json keys:``); any other prompt gets a stable pseudo-answer
derived from its hash, so a demo run shows passes and failures and the same prompt always gets the
same answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

__all__ = ["answer"]

_NUMBER = r"-?\d+(?:\.\d+)?"
_ARITHMETIC = re.compile(rf"({_NUMBER})\s*([-+*/x×÷^])\s*({_NUMBER})")
_INSTRUCTION = re.compile(
    r"^\s*(repeat|uppercase|lowercase|reverse|count words|json keys)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL
)


def _format(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _arithmetic(prompt: str) -> str | None:
    match = _ARITHMETIC.search(prompt)
    if match is None:
        return None
    left, op, right = float(match.group(1)), match.group(2), float(match.group(3))
    if op in "/÷" and right == 0:
        return "undefined"
    ops: dict[str, Callable[[float, float], float]] = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "x": lambda a, b: a * b,
        "×": lambda a, b: a * b,
        "/": lambda a, b: a / b,
        "÷": lambda a, b: a / b,
        "^": lambda a, b: a ** min(b, 64),
    }
    return _format(ops[op](left, right))


def _json_keys(text: str) -> str:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    return json.dumps({key: f"{key}-{hashlib.sha256(key.encode()).hexdigest()[:6]}" for key in keys})


_TRICKS: dict[str, Callable[[str], str]] = {
    "repeat": lambda text: text,
    "uppercase": str.upper,
    "lowercase": str.lower,
    "reverse": lambda text: text[::-1],
    "count words": lambda text: str(len(text.split())),
    "json keys": _json_keys,
}


def answer(prompt: str) -> str:
    """The simulated answer to the last user message of a chat."""
    instruction = _INSTRUCTION.match(prompt)
    if instruction is not None:
        return _TRICKS[instruction.group(1).lower()](instruction.group(2).strip())
    computed = _arithmetic(prompt)
    if computed is not None:
        return computed
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    return f"sim-{digest[:8]}: no simulated answer for this prompt"
