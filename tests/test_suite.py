from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalrun.errors import ConfigError
from evalrun.suite import SuiteError, load_suites


def _jsonl(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _problems(*paths: Path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suites(paths)
    return info.value.problems


def test_jsonl_case_becomes_messages_and_default_assertion(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        json.dumps(
            {
                "id": "a",
                "category": "math",
                "prompt": "2+2?",
                "expected": 4,
                "system": "be brief",
                "params": {"temperature": 0},
            }
        ),
    )
    [case] = load_suites([path])
    assert case.messages == ({"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"})
    assert [(a.type, a.value) for a in case.assertions] == [("equals", "4")]
    assert case.params == {"temperature": 0}
    assert case.source == f"{path}:1"


def test_default_assertion_is_configurable(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, json.dumps({"prompt": "p", "expected": "x"}))
    [case] = load_suites([path], default_assert="icontains")
    assert case.assertions[0].type == "icontains"


def test_missing_id_is_a_content_hash_not_a_line_number(tmp_path: Path) -> None:
    case_line = json.dumps({"prompt": "hello", "expected": "x"})
    first = load_suites([_jsonl(tmp_path, case_line)])[0].id
    moved = tmp_path / "moved.jsonl"
    moved.write_text("\n" + json.dumps({"prompt": "other", "expected": "y"}) + "\n" + case_line + "\n")
    ids = [c.id for c in load_suites([moved])]
    assert first in ids and first.startswith("case-")
    assert ids.index(first) == 1


def test_yaml_list_and_mapping_with_defaults(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- id: a\n  prompt: hi\n  expected: hi\n- id: b\n  prompt: yo\n  expected: yo\n")
    assert [c.id for c in load_suites([listed])] == ["a", "b"]
    mapped = tmp_path / "map.yml"
    mapped.write_text(
        "defaults:\n  category: tone\n  params: {temperature: 0, max_tokens: 10}\n"
        "  assert: [{type: max-length, value: 50}]\n"
        "cases:\n  - id: c\n    prompt: hi\n    params: {max_tokens: 20}\n    assert: [{type: contains, value: h}]\n"
    )
    [case] = load_suites([mapped])
    assert case.category == "tone"
    assert case.params == {"temperature": 0, "max_tokens": 20}
    assert [a.type for a in case.assertions] == ["contains", "max-length"]
    assert case.source == f"{mapped}:6"


def test_csv_suite(tmp_path: Path) -> None:
    path = tmp_path / "suite.csv"
    path.write_text(
        "id,category,prompt,expected,assert\n"
        "a,x,What is 1+1?,2,\n"
        'b,y,hi,,"[{""type"": ""contains"", ""value"": ""h""}]"\n'
    )
    cases = load_suites([path])
    assert [(c.id, c.category, c.assertions[0].type) for c in cases] == [("a", "x", "equals"), ("b", "y", "contains")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "p", "expected": "x", "expcted": 1}', "unknown field 'expcted' (did you mean 'expected'?)"),
        ('{"expected": "x"}', "exactly one of 'prompt' or 'messages'"),
        ('{"prompt": "p", "messages": [{"role": "user", "content": "p"}], "expected": "x"}', "exactly one of"),
        ('{"prompt": "", "expected": "x"}', "'prompt' must be a non-empty string"),
        ('{"messages": [{"role": "robot", "content": "p"}], "expected": "x"}', "messages[0] needs a 'role'"),
        ('{"messages": [{"role": "user"}], "expected": "x"}', "messages[0] needs a string 'content'"),
        ('{"messages": [], "expected": "x"}', "'messages' must be a non-empty list"),
        ('{"prompt": "p"}', "needs 'expected' or at least one 'assert'"),
        ('{"prompt": "p", "expected": {"a": 1}}', "'expected' must be a string or a number"),
        ('{"prompt": "p", "expected": true}', "'expected' must be a string or a number"),
        ('{"prompt": "p", "expected": NaN}', "invalid JSON: NaN is not a JSON value"),
        ('{"prompt": "p", "expected": "x", "params": {"temperature": "hot"}}', "params.temperature must be a number"),
        ('{"prompt": "p", "expected": "x", "params": {"max_tokens": 1.5}}', "params.max_tokens must be an integer"),
        ('{"prompt": "p", "expected": "x", "params": []}', "'params' must be an object"),
        ('{"prompt": "p", "expected": "x", "threshold": 2}', "'threshold' must be a number from 0 to 1"),
        ('{"prompt": "p", "expected": "x", "metadata": 3}', "'metadata' must be an object"),
        ('{"prompt": "p", "expected": "x", "id": ""}', "'id' must be a non-empty string"),
        ('{"prompt": "p", "assert": {"type": "equals"}}', "'assert' must be a list"),
        ('{"prompt": "p", "assert": [{"type": "magic", "value": 1}]}', "assertion 1 (magic): unknown assertion type"),
        ('{"prompt": "p", "assert": [{"type": "llm-judge", "value": "r"}]}', "'llm-judge' is not supported yet"),
        ('{"prompt": "p", "assert": [{"type": "equals"}]}', "assertion 1 (equals): needs a 'value'"),
        ('{"prompt": "p", "assert": [{"type": "regex", "value": "("}]}', "assertion 1 (regex): invalid regex '('"),
        ('{"prompt": "p", "assert": [{"type": "contains-any", "value": "x"}]}', "'value' must be a non-empty list"),
        ('{"prompt": "p", "assert": [{"type": "number", "value": "ten"}]}', "(number): 'value' must be a number"),
        ('{"prompt": "p", "assert": [{"type": "json-schema", "value": {"type": 5}}]}', "invalid JSON schema"),
        (
            '{"prompt": "p", "assert": [{"type": "equals", "value": "x", "weight": -1}]}',
            "'weight' must be a number >= 0",
        ),
        (
            '{"prompt": "p", "assert": [{"type": "equals", "value": "x", "colour": 1}]}',
            "unknown assertion field(s): colour",
        ),
        ('{"prompt": "p", "assert": ["equals"]}', "assertion 1: must be an object, got str"),
        ('{"prompt": "p", "assert": [{"value": "x"}]}', "assertion 1: needs a 'type'"),
        ("[1, 2]", "a case must be an object"),
        ("{not json", "invalid JSON"),
    ],
)
def test_each_validation_error_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _jsonl(tmp_path, '{"id": "ok", "prompt": "p", "expected": "x"}', line)
    problems = _problems(path)
    assert len(problems) >= 1
    assert problems[0].startswith(f"{path}:2: ")
    assert message in problems[0]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        '{"prompt": ""}',
        '{"id": "a", "prompt": "p", "expected": "x"}',
        "{bad",
        '{"id": "a", "prompt": "q", "expected": "y"}',
    )
    problems = _problems(path)
    assert any(p.startswith(f"{path}:1: ") for p in problems)
    assert f"{path}:3: invalid JSON" in "\n".join(problems)
    assert f"{path}:4: duplicate id 'a' (first at {path}:2)" in problems


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    one = _jsonl(tmp_path, '{"id": "a", "prompt": "p", "expected": "x"}')
    two = tmp_path / "two.jsonl"
    two.write_text('{"id": "a", "prompt": "q", "expected": "x"}\n')
    assert _problems(one, two) == [f"{two}:1: duplicate id 'a' (first at {one}:1)"]


def test_a_repeated_case_without_id_names_lines_not_its_hash(tmp_path: Path) -> None:
    same = '{"prompt": "p", "expected": "x"}'
    one = _jsonl(tmp_path, same, '{"prompt": "q", "expected": "x"}', same)
    two = tmp_path / "two.jsonl"
    two.write_text(same + "\n")
    assert _problems(one, two) == [
        f"{one}:3: the same case as line 1 (cases without an id are named by their content)",
        f"{two}:1: the same case as {one}:1 (cases without an id are named by their content)",
    ]


def test_assertions_are_numbered_from_one_and_named_by_type(tmp_path: Path) -> None:
    good = {"type": "contains", "value": "a"}
    bad = {"type": "max-length", "value": -3}
    path = _jsonl(tmp_path, json.dumps({"prompt": "p", "assert": [good, bad]}))
    assert _problems(path) == [
        f"{path}:1: assertion 2 (max-length): 'value' must be a whole number of characters >= 0, got -3"
    ]


def test_an_implied_assertion_is_named_after_expected(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, '{"prompt": "p", "expected": ""}')
    assert load_suites([path])[0].assertions[0].value == ""  # equals: an empty answer is a fair target
    with pytest.raises(SuiteError) as info:
        load_suites([path], default_assert="contains")
    assert info.value.problems == [f"{path}:1: expected (as contains): 'value' is empty, so every answer would match"]


@pytest.mark.parametrize("default_assert", ["number", "is-json", "not-equals", "magic"])
def test_a_default_assertion_that_cannot_take_expected_is_one_config_error(tmp_path: Path, default_assert: str) -> None:
    """Once, as the setting it is, rather than once a case on every line."""
    path = _jsonl(tmp_path, '{"prompt": "p", "expected": "4"}', '{"prompt": "q", "expected": "5"}')
    with pytest.raises(ConfigError, match=f"default_assert: '{default_assert}' cannot stand for a bare 'expected'"):
        load_suites([path], default_assert=default_assert)


def test_csv_cells_that_are_not_json_or_a_number_name_their_column(tmp_path: Path) -> None:
    path = tmp_path / "suite.csv"
    path.write_text("id,prompt,expected,params,threshold\na,p,x,{oops,\nb,p,x,,high\n")
    assert _problems(path) == [
        f"{path}:2: column 'params': invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:3: column 'threshold' is not a number",
    ]


def test_a_csv_field_past_the_csv_modules_limit_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "suite.csv"
    path.write_text("id,prompt,expected\na,p,x\nb," + "w" * 200_000 + ",x\n")
    assert _problems(path) == [f"{path}:3: invalid CSV: field larger than field limit (131072)"]


def test_yaml_errors_have_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- id: a\n  prompt: p\n  expected: x\n- id: b\n  prompt: [unclosed\n")
    assert _problems(path)[0].startswith(f"{path}:")
    path.write_text("- id: a\n  prompt: p\n  expected: x\n- id: b\n  expected: y\n")
    assert _problems(path) == [f"{path}:4: a case needs exactly one of 'prompt' or 'messages'"]
    path.write_text("stuff: 1\n")
    assert "needs 'cases:'" in _problems(path)[0]


def test_unreadable_or_unknown_files(tmp_path: Path) -> None:
    assert "cannot read" in _problems(tmp_path / "missing.jsonl")[0]
    other = tmp_path / "suite.txt"
    other.write_text("x")
    assert "unknown suite format '.txt'" in _problems(other)[0]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert "no cases found" in _problems(empty)[0]


def test_bundled_sample_suite_is_valid_and_broad() -> None:
    from evalrun.settings import BUNDLED_SUITE

    cases = load_suites([BUNDLED_SUITE])
    assert len(cases) >= 40
    assert len({c.category for c in cases}) >= 4
    kinds = {a.type for c in cases for a in c.assertions}
    assert kinds >= {
        "equals",
        "contains",
        "icontains",
        "contains-any",
        "contains-all",
        "starts-with",
        "regex",
        "number",
        "is-json",
        "json-schema",
        "max-length",
        "latency",
    }
    assert any(a.negate for c in cases for a in c.assertions)
