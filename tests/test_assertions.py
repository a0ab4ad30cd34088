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


# What each type reads, wrong: (assertion, what parse_assertion says). None of these may reach a scorer.
BAD: list[tuple[dict[str, Any], str]] = [
    ({"type": "equals", "value": None}, "'value' must be a string or a number, got None"),
    ({"type": "equals", "value": True}, "'value' must be a string or a number, got True"),
    ({"type": "equals", "value": ["x"]}, "'value' must be a string or a number"),
    ({"type": "contains", "value": ""}, "'value' is empty, so every answer would match"),
    ({"type": "icontains", "value": {"a": 1}}, "'value' must be a string or a number"),
    ({"type": "starts-with", "value": ""}, "'value' is empty"),
    ({"type": "contains-any", "value": []}, "'value' must be a non-empty list, got []"),
    ({"type": "contains-all", "value": ["a", ""]}, "value[1] must be a non-empty string or a number, got ''"),
    ({"type": "contains-any", "value": ["a", None]}, "value[1] must be a non-empty string or a number, got None"),
    ({"type": "regex", "value": 5}, "'value' must be a non-empty regex string, got 5"),
    ({"type": "regex", "value": "a(b"}, "invalid regex 'a(b': missing ), unterminated subpattern"),
    ({"type": "number", "value": "5"}, "'value' must be a number, got '5'"),
    ({"type": "number", "value": float("inf")}, "'value' must be a number, got inf"),
    ({"type": "number", "value": 5, "tolerance": "abc"}, "'tolerance' must be a number >= 0, got 'abc'"),
    ({"type": "number", "value": 5, "tolerance": -0.1}, "'tolerance' must be a number >= 0, got -0.1"),
    ({"type": "equals", "value": "5", "tolerance": 1}, "'tolerance' is not read by 'equals'"),
    ({"type": "is-json", "value": True}, "'is-json' takes no 'value'"),
    ({"type": "json-schema", "value": "object"}, "'value' must be a JSON schema object, got 'object'"),
    ({"type": "json-schema", "value": {"type": "string", "pattern": "("}}, "invalid JSON schema: '(' is not a 'regex'"),
    ({"type": "json-schema", "value": {"$ref": "#/$defs/user"}}, "'$ref': '#/$defs/user' points nowhere"),
    (
        {"type": "json-schema", "value": {"$ref": "https://example.com/s.json"}},
        "'$ref': 'https://example.com/s.json' points nowhere",
    ),
    ({"type": "json-schema", "value": {"items": {"$dynamicRef": "#node"}}}, "'$dynamicRef': '#node' points nowhere"),
    ({"type": "max-length", "value": 5.5}, "'value' must be a whole number of characters >= 0, got 5.5"),
    ({"type": "max-length", "value": -1}, "'value' must be a whole number of characters >= 0, got -1"),
    ({"type": "latency", "value": 0}, "'value' must be a number of milliseconds > 0, got 0"),
    ({"type": "latency", "value": "fast"}, "'value' must be a number of milliseconds > 0"),
    ({"type": "equals", "value": "x", "weight": float("nan")}, "'weight' must be a number >= 0, got nan"),
    ({"type": "equals", "value": "x", "weight": "2"}, "'weight' must be a number >= 0, got '2'"),
    ({"type": "not-number"}, "needs a 'value'"),
    ({"type": "equals", "value": "x", "colour": 1}, "unknown assertion field(s): colour"),
]


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[f"{s['type']}-{i}" for i, (s, _) in enumerate(BAD)])
def test_every_parameter_a_scorer_reads_is_checked_when_parsed(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_assertion(spec)
    assert str(info.value).startswith(message), str(info.value)


def test_a_wrong_value_is_shown_clipped() -> None:
    with pytest.raises(ValueError) as info:
        parse_assertion({"type": "number", "value": "n" * 500})
    assert len(str(info.value)) < 100 and str(info.value).endswith("…")


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "equals", "value": ""},  # an empty answer is a fair target
        {"type": "contains", "value": 0},
        {"type": "number", "value": -2, "tolerance": 0},
        {"type": "max-length", "value": 0},
        {"type": "latency", "value": 0.5},
        {"type": "not-is-json", "weight": 0},
        {
            "type": "json-schema",
            "value": {"$defs": {"id": {"type": "integer"}}, "properties": {"id": {"$ref": "#/$defs/id"}}},
        },
        {"type": "json-schema", "value": {"type": "object", "properties": {"$ref": {"type": "string"}}}},  # a property
        {
            "type": "json-schema",
            "value": {"$dynamicAnchor": "node", "type": "array", "items": {"$dynamicRef": "#node"}},
        },
    ],
)
def test_the_edges_of_each_rule_are_accepted(spec: dict[str, Any]) -> None:
    assert parse_assertion(spec).type == spec["type"].removeprefix("not-")


def test_tolerance_is_kept_as_the_number_assertion_reads_it() -> None:
    assert _check({"type": "number", "value": 10, "tolerance": 0.5}, "10.4") == (True, 1.0)
    assert parse_assertion({"type": "number", "value": 10}).options == {}


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("Route-66 is 2448 miles long", 66),  # a hyphen after a letter joins words: no minus sign
        ("sim-07c863f5", 7),
        ("COVID-19", 19),
        ("rev_-3", 3),  # nor after an underscore
        ("-5", -5),
        ("x = -5", -5),
        ("(-5)", -5),
        ("about -3.5e-2 units", -0.035),
        ("1e-3", 0.001),
        ("5-3", 5),
    ],
)
def test_a_minus_sign_counts_only_where_no_word_character_comes_before_it(answer: str, value: float) -> None:
    assert _check({"type": "number", "value": value, "tolerance": 1e-9}, answer) == (True, 1.0)
    assert _check({"type": "number", "value": -value}, answer)[0] is False  # the sign is read right


def test_a_hyphenated_name_is_not_read_as_a_negative_number() -> None:
    _, _, [check] = score_case(
        (parse_assertion({"type": "number", "value": -66}),), "Route-66 is 2448 miles", 1.0, None
    )
    assert check.reason == "66 is not -66 ± 0"


def test_a_schema_checked_before_does_not_vouch_for_a_different_one() -> None:
    """Schema checks are remembered by content: the same schema again, a broken one after it."""
    good = {"type": "object", "required": ["a"]}
    for _ in range(2):
        parse_assertion({"type": "json-schema", "value": good})
    with pytest.raises(ValueError, match="invalid JSON schema"):
        parse_assertion({"type": "json-schema", "value": {**good, "required": "a"}})


def test_an_answer_nested_past_the_recursion_limit_fails_its_checks_instead_of_raising() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    passed, _, [check] = score_case((parse_assertion({"type": "is-json"}),), deep, 1.0, None)
    assert not passed and check.reason == "not JSON that can be read: nested too deeply"
    tree = parse_assertion({"type": "json-schema", "value": {"type": "array", "items": {"$ref": "#"}}})
    answer = "[" * 900 + "]" * 900  # json reads it, the schema then follows it down level by level
    passed, _, [check] = score_case((tree,), answer, 1.0, None)
    assert not passed and check.reason == "schema: the answer is nested too deeply to check"
