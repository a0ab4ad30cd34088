"""Assertions: how a response is judged.

Each assertion type is a small pure function from a response to a ``Check``. They are kept free
of I/O so that scoring a cached response costs microseconds, and so that re-scoring a cached run
after a suite's assertions change needs no model call at all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ASSERTION_TYPES", "Assertion", "Check", "parse_assertion", "score_case"]


@dataclass(frozen=True)
class Assertion:
    """One parsed, validated assertion of a case."""

    type: str
    value: Any = None
    negate: bool = False
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"not-{self.type}" if self.negate else self.type


@dataclass(frozen=True)
class Check:
    """The outcome of one assertion against one response."""

    type: str
    passed: bool
    score: float
    reason: str = ""


@dataclass(frozen=True)
class Observation:
    """What an assertion may look at."""

    text: str
    latency_ms: float


_Judge = Callable[[Observation, Assertion], tuple[bool, float, str]]


def _ok(passed: bool, reason: str) -> tuple[bool, float, str]:
    return passed, 1.0 if passed else 0.0, "" if passed else reason


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _equals(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(obs.text.strip() == str(a.value).strip(), f"expected {a.value!r}, got {_clip(obs.text.strip())!r}")


def _contains(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(str(a.value) in obs.text, f"{a.value!r} not found")


def _icontains(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(str(a.value).lower() in obs.text.lower(), f"{a.value!r} not found (any case)")


def _contains_any(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(any(str(v) in obs.text for v in a.value), f"none of {list(a.value)!r} found")


def _contains_all(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    missing = [v for v in a.value if str(v) not in obs.text]
    score = 1.0 - len(missing) / len(a.value) if a.value else 1.0
    return not missing, score, f"missing {missing!r}" if missing else ""


def _starts_with(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(obs.text.strip().startswith(str(a.value)), f"does not start with {a.value!r}")


def _regex(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(re.search(str(a.value), obs.text) is not None, f"no match for /{a.value}/")


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")


def _first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group().replace(",", ""))
    except ValueError:
        return None


def _number(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    found = _first_number(obs.text)
    if found is None:
        return False, 0.0, "no number in the response"
    tolerance = float(a.options.get("tolerance", 0.0))
    return _ok(abs(found - float(a.value)) <= tolerance, f"{found:g} is not {float(a.value):g} ± {tolerance:g}")


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def _parse_json(text: str) -> tuple[bool, Any, str]:
    try:
        return True, json.loads(_strip_fences(text)), ""
    except ValueError as exc:
        return False, None, f"not JSON: {exc.args[0] if exc.args else exc}"


def _is_json(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    ok, _, reason = _parse_json(obs.text)
    return _ok(ok, reason)


def _json_schema(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    import jsonschema  # imported here: it is heavy and most suites never need it

    ok, document, reason = _parse_json(obs.text)
    if not ok:
        return False, 0.0, reason
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(a.value).iter_errors(document))
    return _ok(error is None, f"schema: {error.message}" if error is not None else "")


def _max_length(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(len(obs.text) <= int(a.value), f"{len(obs.text)} characters > {a.value}")


def _latency(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    return _ok(obs.latency_ms <= float(a.value), f"{obs.latency_ms:.0f} ms > {a.value} ms")


ASSERTION_TYPES: dict[str, _Judge] = {
    "equals": _equals,
    "contains": _contains,
    "icontains": _icontains,
    "contains-any": _contains_any,
    "contains-all": _contains_all,
    "starts-with": _starts_with,
    "regex": _regex,
    "number": _number,
    "is-json": _is_json,
    "json-schema": _json_schema,
    "max-length": _max_length,
    "latency": _latency,
}

_NEEDS_VALUE = set(ASSERTION_TYPES) - {"is-json"}
_LIST_VALUED = {"contains-any", "contains-all"}
_NUMERIC = {"number", "max-length", "latency"}
_KNOWN_KEYS = {"type", "value", "weight", "tolerance"}


def _check_value(kind: str, value: Any) -> None:
    if kind in _LIST_VALUED:
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{kind}' needs a non-empty list as value")
    elif kind in _NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"'{kind}' needs a number as value, got {value!r}")
    elif kind == "regex":
        try:
            re.compile(str(value))
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
    elif kind == "json-schema":
        _check_schema(value)


def _check_schema(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError("'json-schema' needs a JSON schema object as value")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.exceptions.SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from None


def parse_assertion(raw: Any) -> Assertion:
    """Validate one assertion as written in a suite; raise ``ValueError`` saying what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"an assertion must be an object, got {type(raw).__name__}")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown assertion field(s): {', '.join(sorted(unknown))}")
    name = raw.get("type")
    if not isinstance(name, str):
        raise ValueError("an assertion needs a 'type'")
    negate = name.startswith("not-")
    kind = name[4:] if negate else name
    if kind == "llm-judge":
        raise ValueError("assertion type 'llm-judge' is not supported yet")
    if kind not in ASSERTION_TYPES:
        raise ValueError(f"unknown assertion type '{name}' (known: {', '.join(ASSERTION_TYPES)})")
    if kind in _NEEDS_VALUE and "value" not in raw:
        raise ValueError(f"assertion '{name}' needs a 'value'")
    if "value" in raw:
        _check_value(kind, raw["value"])
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"assertion weight must be a number >= 0, got {weight!r}")
    options = {"tolerance": raw["tolerance"]} if "tolerance" in raw else {}
    return Assertion(kind, raw.get("value"), negate, float(weight), options)


def _run_one(assertion: Assertion, obs: Observation) -> Check:
    passed, score, reason = ASSERTION_TYPES[assertion.type](obs, assertion)
    if assertion.negate:
        passed = not passed  # a negation is all or nothing: "not all of" has no partial credit
        score = 1.0 if passed else 0.0
        reason = "" if passed else f"unexpectedly passed '{assertion.type}'"
    return Check(assertion.name, passed, score, reason)


def score_case(
    assertions: tuple[Assertion, ...], text: str, latency_ms: float, threshold: float | None
) -> tuple[bool, float, list[Check]]:
    """Score a response: the weighted mean of its assertions; pass on all-pass or the threshold."""
    obs = Observation(text, latency_ms)
    checks = [_run_one(a, obs) for a in assertions]
    total_weight = sum(a.weight for a in assertions)
    if total_weight > 0:
        score = sum(c.score * a.weight for c, a in zip(checks, assertions)) / total_weight
    else:
        score = 1.0 if all(c.passed for c in checks) else 0.0
    score = round(score, 6)
    if threshold is not None:
        return score >= threshold - 1e-9, score, checks
    passed = all(c.passed for c in checks)
    return passed, score, checks


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
