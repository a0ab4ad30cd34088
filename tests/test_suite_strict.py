"""Suites read strictly: what a file says twice, or says in a way that would be silently dropped
or merged, is a problem with its ``file:line``, and ``evalrun validate`` reads the settings a run
reads, so a suite it passes is read the same way by ``evalrun eval``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import evalrun

from evalrun.suite import SuiteError, load_suites


def _write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _problems(*paths: Path | str) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suites(paths)
    return info.value.problems


# -- 1. validate reads the settings a run reads ------------------------------------------------


def _refused(done: subprocess.CompletedProcess[str], *lines: str) -> None:
    """Exit 2, these lines on stderr and nothing else: no traceback."""
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [f"evalrun: {line}" for line in lines]


REGEX_PROBLEM = (
    "r.jsonl:1: expected (as regex): invalid regex 'hel(lo': missing ), unterminated subpattern at position 3"
)


def test_validate_reads_default_assert_from_config_toml_as_eval_does(tmp_path: Path) -> None:
    _write(tmp_path, "r.jsonl", '{"prompt": "p", "expected": "hel(lo"}')
    assert evalrun(tmp_path, "validate", "r.jsonl").returncode == 0  # equals: any text will do
    _write(tmp_path, "config.toml", "[run]", 'default_assert = "regex"')
    _refused(evalrun(tmp_path, "validate", "r.jsonl"), REGEX_PROBLEM)
    _refused(evalrun(tmp_path, "eval", "sim", "-s", "r.jsonl", "--history-dir", ""), REGEX_PROBLEM)


def test_validate_takes_config_option_environment_and_flag_in_that_order(tmp_path: Path) -> None:
    _write(tmp_path, "r.jsonl", '{"prompt": "p", "expected": "hel(lo"}')
    _write(tmp_path, "other.toml", "[run]", 'default_assert = "regex"')
    _refused(evalrun(tmp_path, "validate", "--config", "other.toml", "r.jsonl"), REGEX_PROBLEM)
    _refused(evalrun(tmp_path, "validate", "r.jsonl", env={"EVALRUN_DEFAULT_ASSERT": "regex"}), REGEX_PROBLEM)
    _refused(evalrun(tmp_path, "validate", "r.jsonl", env={"EVALRUN_CONFIG": "other.toml"}), REGEX_PROBLEM)
    flag = evalrun(tmp_path, "validate", "--config", "other.toml", "--default-assert", "contains", "r.jsonl")
    assert flag.returncode == 0, flag.stderr
    assert flag.stdout.splitlines()[1] == "assertions: contains 1"


def test_validate_checks_default_assert_in_config_toml_as_eval_does(tmp_path: Path) -> None:
    _write(tmp_path, "r.jsonl", '{"prompt": "p", "expected": "4"}')
    _write(tmp_path, "config.toml", "[run]", 'default_assert = "number"')
    wrong = (
        "config.toml: [run] default_assert: expected one of equals, contains, icontains, starts-with, regex"
        " (got string 'number')"
    )
    _refused(evalrun(tmp_path, "validate", "r.jsonl"), wrong)
    _refused(evalrun(tmp_path, "eval", "sim", "-s", "r.jsonl", "--history-dir", ""), wrong)
    missing = evalrun(tmp_path, "validate", "--config", "none.toml", "r.jsonl")
    assert missing.returncode == 2 and missing.stderr.startswith("evalrun: none.toml: cannot read: ")
    (tmp_path / "config.toml").unlink()
    _refused(
        evalrun(tmp_path, "validate", "--default-assert", "number", "r.jsonl"),
        "--default-assert: expected one of equals, contains, icontains, starts-with, regex (got string 'number')",
    )


# -- 2. CSV rows that do not fit their header ------------------------------------------------------


def test_a_csv_row_with_more_values_than_the_header_is_a_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.csv", "id,prompt,expected", "c1,p,x", 'c2,"repeat: b",b,EXTRA,MORE', "c3,q,y")
    assert _problems(path) == [f"{path}:3: 5 values, but the header names 3 columns"]


def test_a_csv_row_with_fewer_values_is_still_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.csv", "id,prompt,expected,category", "c1,p,x", "", "c2,q,y,tone")
    assert [(c.id, c.category, c.source) for c in load_suites([path])] == [
        ("c1", "default", f"{path}:2"),
        ("c2", "tone", f"{path}:4"),
    ]


def test_a_column_named_twice_in_the_header_is_a_problem_at_line_1(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.csv", "id,expected,prompt,expected", "c1,x,p,y")
    assert _problems(path) == [f"{path}:1: the header names column(s) 'expected' more than once"]


def test_an_unterminated_quote_is_reported_where_it_opened_not_merged(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.csv", "id,prompt,expected", "c1,p,x", 'c4,"repeat: unterminated,x', "c5,q,y")
    assert _problems(path) == [
        f"{path}:3: invalid CSV: a quote opened in this row is never closed: it runs to the end of the file"
    ]
    path = _write(tmp_path, "t.csv", "id,prompt,expected", "c1,p,x", 'c4,"repeat: unterminated,x', 'c5,"q",y')
    assert _problems(path) == [
        f"{path}:3: invalid CSV: a quote opened in this row does not close where a field ends"
        " (',' expected after '\"' on line 4)"
    ]


def test_a_quoted_field_may_still_hold_line_breaks(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.csv", "id,prompt,expected", 'c1,"line one', 'line ""two""",x', "c2,q,y")
    cases = load_suites([path])
    assert cases[0].messages[0]["content"] == 'line one\nline "two"'
    assert [c.source for c in cases] == [f"{path}:2", f"{path}:4"]


# -- 3. keys given twice -----------------------------------------------------------------------


def test_a_key_given_twice_in_a_json_line_is_a_problem(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.jsonl",
        '{"id": "a", "prompt": "p", "expected": "x"}',
        '{"id": "b", "prompt": "p", "expected":"x","expected":"y"}',
        '{"id": "c", "prompt": "p", "expected": "x", "params": {"temperature": 0, "temperature": 1}}',
    )
    assert _problems(path) == [
        f"{path}:2: duplicate key 'expected' (only one of its values would count: give it once)",
        f"{path}:3: duplicate key 'temperature' (only one of its values would count: give it once)",
    ]


def test_a_key_given_twice_in_a_csv_json_column_is_a_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.csv", "id,prompt,expected,params", 'a,p,x,"{""seed"": 1, ""seed"": 2}"')
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:2: column 'params': duplicate key 'seed'")


def test_the_same_key_in_different_objects_is_fine(tmp_path: Path) -> None:
    case = {"prompt": "p", "assert": [{"type": "contains", "value": "a"}, {"type": "contains", "value": "b"}]}
    path = _write(tmp_path, "s.jsonl", json.dumps(case))
    assert [a.value for a in load_suites([path])[0].assertions] == ["a", "b"]


def test_a_key_given_twice_in_a_yaml_mapping_names_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.yaml",
        "- id: a",
        "  prompt: p",
        "  expected: x",
        "  params: {temperature: 0, temperature: 1}",
        "- id: b",
        "  prompt: q",
        "  expected: x",
        "  expected: y",
        "- id: c",
        "  prompt: r",
        "  expected: z",
    )
    assert _problems(path) == [
        f"{path}:4: duplicate key 'temperature' (first at line 4; only one value would count)",
        f"{path}:8: duplicate key 'expected' (first at line 7; only one value would count)",
    ]


def test_yaml_keys_twice_in_defaults_or_at_the_top(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "s.yaml", "defaults:", "  category: a", "  category: b", "cases:", "  - {prompt: p, expected: x}"
    )
    assert _problems(path) == [f"{path}:3: duplicate key 'category' (first at line 2; only one value would count)"]
    path = _write(
        tmp_path, "t.yaml", "cases:", "  - {prompt: p, expected: x}", "cases:", "  - {prompt: q, expected: y}"
    )
    assert _problems(path) == [f"{path}:3: duplicate key 'cases' (first at line 1; only one value would count)"]


def test_a_yaml_case_may_override_what_it_merges_and_reuse_an_anchor(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.yaml",
        "- &base",
        "  id: a",
        "  prompt: p",
        "  expected: x",
        "  params: &params {temperature: 0, max_tokens: 5}",
        "- <<: *base",
        "  id: b",
        "  params:",
        "    <<: *params",
        "    temperature: 1",
        "- {id: c, prompt: q, expected: y, params: *params}",
    )
    cases = load_suites([path])
    assert [(c.id, dict(c.params)) for c in cases] == [
        ("a", {"temperature": 0, "max_tokens": 5}),
        ("b", {"temperature": 1, "max_tokens": 5}),
        ("c", {"temperature": 0, "max_tokens": 5}),
    ]


def test_a_repeated_key_in_an_anchor_is_reported_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.yaml",
        "- id: a",
        "  prompt: p",
        "  expected: x",
        "  params: &params {seed: 1, seed: 2}",
        "- {id: b, prompt: q, expected: y, params: *params}",
    )
    assert _problems(path) == [f"{path}:4: duplicate key 'seed' (first at line 4; only one value would count)"]


# -- 4. defaults with an unknown key -----------------------------------------------------------


def test_an_unknown_key_in_defaults_is_reported_once_on_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "b2.yaml",
        "defaults:",
        "  category: tone",
        "  bogus_key: 1",
        "  expcted: x",
        "cases:",
        "  - id: a",
        "    prompt: p",
        "    expected: x",
        "  - id: b",
        "    prompt: q",
        "    expected: y",
        "  - id: c",
        "    prompt: r",
    )
    assert _problems(path) == [
        f"{path}:3: defaults: unknown field 'bogus_key'",
        f"{path}:4: defaults: unknown field 'expcted' (did you mean 'expected'?)",
        f"{path}:12: a case needs 'expected' or at least one 'assert'",
    ]


# -- 5. what is not one suite file -------------------------------------------------------------


def test_a_folder_is_said_to_be_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    assert _problems(folder) == [f"{folder}: is a folder, not a suite file (name its files: {folder / '*.jsonl'})"]
    done = evalrun(tmp_path, "validate", "s")
    _refused(done, "s: is a folder, not a suite file (name its files: s/*.jsonl)")


def test_the_same_file_named_twice_is_refused_once_not_a_duplicate_of_itself(tmp_path: Path) -> None:
    path = _write(tmp_path, "f.yaml", "- id: a", "  prompt: p", "  expected: x")
    assert _problems(path, path) == [f"{path}: the same suite is named twice: name it once"]
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    assert _problems(path, link) == [f"{link}: the same suite is named twice (as {path} and as {link}): name it once"]
    _refused(
        evalrun(tmp_path, "validate", "f.yaml", "./f.yaml"),
        "./f.yaml: the same suite is named twice (as f.yaml and as ./f.yaml): name it once",
    )
