"""Assertions: how a response is judged.

Each assertion type is a small pure function from a response to a ``Check``. They are kept free
of I/O so that scoring a cached response costs microseconds, and so that re-scoring a cached run
after a suite's assertions change needs no model call at all.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ASSERTION_TYPES", "IMPLIABLE", "Assertion", "Check", "parse_assertion", "score_case"]

#: The assertions a bare ``expected`` can stand for (``default_assert``): those that take one text.
IMPLIABLE = ("equals", "contains", "icontains", "starts-with", "regex")


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


# A minus sign only where it starts a word: after a letter, digit or underscore a hyphen joins
# words ("Route-66", "sim-07c863f5", "COVID-19"), and the number after it is read without it.
_NUMBER = re.compile(r"(?:(?<!\w)-)?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")


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
    except RecursionError:  # an answer is as untrusted as a suite line
        return False, None, "not JSON that can be read: nested too deeply"


def _is_json(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    ok, _, reason = _parse_json(obs.text)
    return _ok(ok, reason)


def _json_schema(obs: Observation, a: Assertion) -> tuple[bool, float, str]:
    import jsonschema  # imported here: it is heavy and most suites never need it

    ok, document, reason = _parse_json(obs.text)
    if not ok:
        return False, 0.0, reason
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(a.value).iter_errors(document))
    except RecursionError:  # a recursive schema ('$ref': '#') follows the answer as deep as it goes
        return False, 0.0, "schema: the answer is nested too deeply to check"
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

# What each type reads, checked when the suite is loaded: a scorer that met a value it cannot use
# would fail on every answer to the case, after the calls were paid for.


def _shown(value: Any) -> str:
    return _clip(repr(value))  # repr escapes what a terminal cannot print, lone surrogates included


def _is_text(value: Any) -> bool:
    """A string, or a number written where text is compared (``"value": 42``)."""
    return isinstance(value, str) or is_finite_number(value)


def _text(value: Any) -> None:
    if not _is_text(value):
        raise ValueError(f"'value' must be a string or a number, got {_shown(value)}")


def _needle(value: Any) -> None:
    _text(value)
    if value == "":
        raise ValueError("'value' is empty, so every answer would match")


def _needles(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise ValueError(f"'value' must be a non-empty list, got {_shown(value)}")
    for i, item in enumerate(value):
        if not _is_text(item) or item == "":
            raise ValueError(f"value[{i}] must be a non-empty string or a number, got {_shown(item)}")


def _pattern(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"'value' must be a non-empty regex string, got {_shown(value)}")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex {_shown(value)}: {exc}") from None


def _target(value: Any) -> None:
    if not is_finite_number(value):
        raise ValueError(f"'value' must be a number, got {_shown(value)}")


def _tolerance(value: Any) -> None:
    if not is_finite_number(value) or value < 0:
        raise ValueError(f"'tolerance' must be a number >= 0, got {_shown(value)}")


def _length(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'value' must be a whole number of characters >= 0, got {_shown(value)}")


def _milliseconds(value: Any) -> None:
    if not is_finite_number(value) or value <= 0:
        raise ValueError(f"'value' must be a number of milliseconds > 0, got {_shown(value)}")


def _schema(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"'value' must be a JSON schema object, got {_shown(value)}")
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        raise ValueError("'value' is not a JSON object") from None
    problem = _schema_problem(text)
    if problem is not None:
        raise ValueError(problem)


@functools.lru_cache(maxsize=256)
def _schema_problem(text: str) -> str | None:
    """What is wrong with a schema, given as canonical JSON: checking one costs over a millisecond,
    and suites tend to repeat one schema over many cases."""
    import jsonschema  # imported here: it is heavy and most suites never need it

    schema = json.loads(text)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return f"invalid JSON schema: {exc.message}"
    except RecursionError:
        return "invalid JSON schema: nested too deeply"
    return _dangling_reference(schema)


def _dangling_reference(schema: dict[str, Any]) -> str | None:
    """A reference that resolves nowhere raises only when validation reaches it, so on some
    answers only: look each one up now. Subschemas are walked as the validator sees them, so a
    property that happens to be named '$ref' is no reference."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    root = DRAFT202012.create_resource(schema)
    base = root.id() or ""
    pending = [(root, Registry().with_resource(base, root).crawl().resolver(base))]
    while pending:
        resource, resolver = pending.pop()
        contents = resource.contents
        for keyword in ("$ref", "$dynamicRef"):
            target = contents.get(keyword) if isinstance(contents, dict) else None
            if isinstance(target, str):
                try:
                    resolver.lookup(target)
                except Unresolvable:
                    return f"'{keyword}': {_shown(target)} points nowhere in the schema (nothing is fetched)"
        pending.extend((sub, resolver.in_subresource(sub)) for sub in resource.subresources())
    return None


#: What each type's 'value' must be; a type missing here takes no value.
_VALUE_RULES: dict[str, Callable[[Any], None]] = {
    "equals": _text,
    "contains": _needle,
    "icontains": _needle,
    "contains-any": _needles,
    "contains-all": _needles,
    "starts-with": _needle,
    "regex": _pattern,
    "number": _target,
    "json-schema": _schema,
    "max-length": _length,
    "latency": _milliseconds,
}
#: The fields a type reads besides 'type', 'value' and 'weight'.
_OPTION_RULES: dict[str, dict[str, Callable[[Any], None]]] = {"number": {"tolerance": _tolerance}}
_COMMON_KEYS = frozenset({"type", "value", "weight"})
_OPTION_KEYS = frozenset(key for rules in _OPTION_RULES.values() for key in rules)


def _kind(raw: Any) -> tuple[str, bool]:
    """The type an assertion names, without its 'not-', and whether it is negated."""
    if not isinstance(raw, dict):
        raise ValueError(f"must be an object, got {type(raw).__name__}")
    name = raw.get("type")
    if not isinstance(name, str):
        raise ValueError("needs a 'type'")
    negate = name.startswith("not-")
    kind = name[4:] if negate else name
    if kind == "llm-judge":
        raise ValueError("assertion type 'llm-judge' is not supported yet")
    if kind not in ASSERTION_TYPES:
        raise ValueError(f"unknown assertion type '{name}' (known: {', '.join(ASSERTION_TYPES)})")
    return kind, negate


def _check_value(raw: dict[Any, Any], kind: str) -> None:
    rule = _VALUE_RULES.get(kind)
    if rule is None:
        if "value" in raw:
            raise ValueError(f"'{kind}' takes no 'value'")
    elif "value" not in raw:
        raise ValueError("needs a 'value'")
    else:
        rule(raw["value"])


def _options(raw: dict[Any, Any], kind: str, extra: set[Any]) -> dict[str, Any]:
    """The fields of ``extra`` (beyond 'type', 'value', 'weight'), checked as ``kind`` reads them."""
    unknown = sorted(map(str, extra - _OPTION_KEYS))
    if unknown:
        raise ValueError(f"unknown assertion field(s): {', '.join(unknown)}")
    rules = _OPTION_RULES.get(kind, {})
    for key in sorted(extra):
        if key not in rules:
            raise ValueError(f"'{key}' is not read by '{kind}'")
        rules[key](raw[key])
    return {key: raw[key] for key in extra}


def parse_assertion(raw: Any) -> Assertion:
    """Validate one assertion as written in a suite; raise ``ValueError`` saying what is wrong."""
    kind, negate = _kind(raw)
    extra = raw.keys() - _COMMON_KEYS
    options = _options(raw, kind, extra) if extra else {}
    _check_value(raw, kind)
    weight = raw.get("weight", 1.0)
    if "weight" in raw and (not is_finite_number(weight) or weight < 0):
        raise ValueError(f"'weight' must be a number >= 0, got {_shown(weight)}")
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
