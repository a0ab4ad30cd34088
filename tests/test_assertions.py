from __future__ import annotations

from typing import Any

import pytest

from evalrun.assertions import parse_assertion, score_case


def _check(spec: dict[str, Any], text: str, latency_ms: float = 10.0) -> tuple[bool, float]:
    passed, score, _ = score_case((parse_assertion(spec),), text, latency_ms, None)
    return passed, score


# (assertion, a response it passes on, a response it fails on)
CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"type": "equals", "value": "42"}, " 42\n", "43"),
    ({"type": "contains", "value": "cat"}, "a cat sat", "a dog sat"),
    ({"type": "icontains", "value": "CAT"}, "a Cat sat", "a dog sat"),
    ({"type": "contains-any", "value": ["x", "cat"]}, "a cat", "a dog"),
    ({"type": "contains-all", "value": ["a", "b"]}, "a b", "a c"),
    ({"type": "starts-with", "value": "Yes"}, "  Yes, indeed", "No"),
    ({"type": "regex", "value": r"^\d{3}$"}, "123", "12a"),
    ({"type": "number", "value": 3.14, "tolerance": 0.01}, "about 3.141", "about 3.2"),
    ({"type": "number", "value": 1000}, "1,000 items", "no number"),
    ({"type": "is-json"}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ({"type": "json-schema", "value": {"type": "object", "required": ["a"]}}, '{"a": 1}', '{"b": 1}'),
    ({"type": "max-length", "value": 5}, "short", "too long"),
    ({"type": "latency", "value": 100}, "any", "any"),
]


@pytest.mark.parametrize(("spec", "good", "bad"), CASES, ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(CASES)])
def test_assertion_and_its_negation(spec: dict[str, Any], good: str, bad: str) -> None:
    bad_latency = 500.0 if spec["type"] == "latency" else 10.0
    assert _check(spec, good) == (True, 1.0)
    assert _check(spec, bad, bad_latency)[0] is False
    negated = {**spec, "type": f"not-{spec['type']}"}
    assert _check(negated, good)[0] is False
    assert _check(negated, bad, bad_latency) == (True, 1.0)


def test_contains_all_gives_partial_credit_and_threshold_can_pass_it() -> None:
    assertion = parse_assertion({"type": "contains-all", "value": ["a", "b", "c", "d"]})
    passed, score, checks = score_case((assertion,), "a b c", 1.0, None)
    assert (passed, score) == (False, 0.75)
    assert "missing ['d']" in checks[0].reason
    assert score_case((assertion,), "a b c", 1.0, 0.7)[0] is True
    assert score_case((assertion,), "a b c", 1.0, 0.8)[0] is False


def test_score_is_the_weighted_mean() -> None:
    heavy = parse_assertion({"type": "equals", "value": "x", "weight": 3})
    light = parse_assertion({"type": "contains", "value": "y", "weight": 1})
    passed, score, _ = score_case((heavy, light), "x", 1.0, None)
    assert (passed, score) == (False, 0.75)


def test_failure_reasons_say_what_was_wrong() -> None:
    _, _, [check] = score_case((parse_assertion({"type": "equals", "value": "42"}),), "41", 1.0, None)
    assert check.reason == "expected '42', got '41'"
    _, _, [check] = score_case((parse_assertion({"type": "not-contains", "value": "x"}),), "x", 1.0, None)
    assert check.type == "not-contains" and "unexpectedly passed" in check.reason
