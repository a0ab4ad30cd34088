"""Suites and assertions refused at load (issue 9): one line ``file:line: what is wrong``, exit 2,
no traceback, from ``evalrun validate`` and ``evalrun eval`` alike, before any request.

Real suite files in ``tmp_path``, as the defects were seen: JSON nested 100,000 deep, lone
surrogates escaped in a text field, assertion parameters a scorer could not use, two cases
without ids that are the same case; and ``evalrun validate`` of a large suite, which held every
case in memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import evalrun, local_config, write_suite

from evalrun.sim import SimProcess
from evalrun.sim.suites import arithmetic_cases
from evalrun.sim.suites import write_suite as write_many
from evalrun.suite import SuiteError, load_suites, plan_suites

GOOD = '{"id": "fine", "prompt": "What is 1+1?", "expected": "2"}'
BAD_TOLERANCE: dict[str, Any] = {
    "id": "t",
    "prompt": "What is 2+3?",
    "assert": [{"type": "number", "value": 5, "tolerance": "abc"}],
}
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_CELL = "[" * 50_000 + "]" * 50_000  # a CSV field stops at 128 KiB (its own problem, tested too)


def _suite(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suites([path])
    return info.value.problems


def _one_problem(path: Path, line: int) -> str:
    """The one problem a suite has, which must name ``path:line``; returned without that prefix."""
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:{line}: "), problem
    return problem.removeprefix(f"{path}:{line}: ")


def _refused(done: subprocess.CompletedProcess[str], where: str, needle: str) -> None:
    """Exit 2, and exactly one line on stderr: ``where`` first, then ``needle``; no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    assert lines[0].startswith(f"evalrun: {where}: "), lines[0]
    assert needle in lines[0], (needle, lines[0])


# Each defect as the user met it: (file name, its lines, where the problem is, what the line says).
DEFECTS: dict[str, tuple[str, list[str], str, str]] = {
    "json-nested-100000-deep": (
        "deep.jsonl",
        [GOOD, '{"prompt": "p", "expected": "x", "metadata": {"a": ' + DEEP + "}}"],
        "deep.jsonl:2",
        "nests lists and objects deeper than 32 levels",
    ),
    "yaml-nested-100000-deep": (
        "deep.yaml",
        ["- id: a", "  prompt: p", "  expected: x", "  metadata: {a: " + DEEP + "}"],
        "deep.yaml:4",
        "nests lists and objects deeper than 32 levels",
    ),
    "csv-json-column-nested-50000-deep": (
        "deep.csv",
        ["id,prompt,expected,metadata", 'a,p,x,"' + DEEP_CELL + '"'],
        "deep.csv:2",
        "column 'metadata': nests lists and objects deeper than 32 levels",
    ),
    "lone-surrogate-in-id": (
        "surrogate.jsonl",
        [GOOD, '{"id": "case-\\ud800", "prompt": "p", "expected": "x"}'],
        "surrogate.jsonl:2",
        "'id' holds \\ud800, a lone surrogate",
    ),
    "tolerance-not-a-number": (
        "tolerance.jsonl",
        [json.dumps(BAD_TOLERANCE)],
        "tolerance.jsonl:1",
        "assertion 1 (number): 'tolerance' must be a number >= 0, got 'abc'",
    ),
    "the-same-case-twice-without-ids": (
        "twice.jsonl",
        ['{"prompt": "p", "expected": "x"}', '{"prompt": "q", "expected": "y"}', '{"prompt": "p", "expected": "x"}'],
        "twice.jsonl:3",
        "the same case as line 1 (cases without an id are named by their content)",
    ),
}


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_is_one_line_from_the_library(tmp_path: Path, defect: str) -> None:
    name, lines, where, needle = DEFECTS[defect]
    path = _suite(tmp_path, name, *lines)
    [problem] = _problems(path)
    assert problem.startswith(f"{tmp_path / where}: ") and needle in problem, problem


@pytest.mark.parametrize("command", ["validate", "eval"])
@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_is_one_line_and_exit_2_from_the_cli(tmp_path: Path, defect: str, command: str) -> None:
    name, lines, where, needle = DEFECTS[defect]
    _suite(tmp_path, name, *lines)
    if command == "validate":
        done = evalrun(tmp_path, "validate", name)
    else:
        done = evalrun(tmp_path, "eval", "sim", "--suite", name, "--cache-dir", "cache", "--progress", "plain")
        assert not (tmp_path / "cache").exists()  # refused before anything was opened, let alone asked
    _refused(done, where, needle)


def test_a_bad_assertion_parameter_costs_no_request(tmp_path: Path, sim: SimProcess) -> None:
    """It used to pass validation, cost a call per case, then break scoring."""
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", [json.loads(GOOD), BAD_TOLERANCE])
    for _ in range(2):  # the second run would have been a cached one
        done = evalrun(tmp_path, "eval", "local", "--suite", "suite.jsonl", "--cache-dir", "cache")
        _refused(done, "suite.jsonl:2", "assertion 1 (number): 'tolerance'")
    assert sim.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ({"id": "\ud800", "prompt": "p", "expected": "x"}, "'id'"),
        ({"category": "c\udfff", "prompt": "p", "expected": "x"}, "'category'"),
        ({"prompt": "say \udbff", "expected": "x"}, "'prompt'"),
        ({"system": "\udc00", "prompt": "p", "expected": "x"}, "'system'"),
        ({"messages": [{"role": "user", "content": "hi \ud800"}], "expected": "x"}, "'messages[0].content'"),
        ({"prompt": "p", "expected": "x\ud800"}, "'expected'"),
        ({"prompt": "p", "assert": [{"type": "contains-any", "value": ["a", "\ud800"]}]}, "'assert[0].value…'"),
        ({"prompt": "p", "expected": "x", "metadata": {"\ud800": 1}}, "'metadata.\\ud800'"),
    ],
)
def test_a_lone_surrogate_is_refused_in_any_text_field_naming_it(
    tmp_path: Path, case: dict[str, object], field: str
) -> None:
    path = _suite(tmp_path, "suite.jsonl", GOOD, json.dumps(case))  # ensure_ascii: escaped, as users write them
    problem = _one_problem(path, 2)
    assert problem.startswith(f"{field} holds \\u"), problem
    assert "a lone surrogate" in problem


def test_a_lone_surrogate_in_yaml_or_a_csv_json_column_is_refused(tmp_path: Path) -> None:
    yaml_suite = _suite(
        tmp_path, "suite.yaml", "- id: a", "  prompt: p", "  expected: x", '- id: "b\\ud800"', "  prompt: p"
    )
    assert _one_problem(yaml_suite, 4) == "'id' holds \\ud800, a lone surrogate, which is not text"
    csv_suite = _suite(tmp_path, "suite.csv", "id,prompt,metadata,expected", 'a,p,"{""k"": ""\\udfff""}",x')
    assert _one_problem(csv_suite, 2).startswith("'metadata.k' holds \\udfff")


def test_surrogate_pairs_and_nesting_up_to_the_limit_still_load(tmp_path: Path) -> None:
    """What the screen must let through: an escaped emoji (a valid pair) and 32 levels."""
    nested: object = "leaf"
    for _ in range(30):  # with the case and 'metadata', 32 levels of objects and lists
        nested = [nested]
    emoji = json.dumps({"id": "smile-\U0001f600", "prompt": "p", "expected": "x", "metadata": {"a": nested}})
    assert "\\ud83d\\ude00" in emoji  # written as an escaped pair
    [case] = load_suites([_suite(tmp_path, "ok.jsonl", emoji)])
    assert case.id == "smile-\U0001f600"
    deeper = emoji.replace('"leaf"', '["leaf"]')
    assert _one_problem(_suite(tmp_path, "deep.jsonl", deeper), 1).startswith("'metadata.a[0]…' nests")


@pytest.mark.parametrize(
    ("yaml_text", "line", "needle"),
    [
        ("- id: a\n  prompt: p\n  expected: x\n  params: {stop: 2024-01-05}\n", 1, "'params.stop' is a date"),
        ("- id: a\n  prompt: p\n  expected: .nan\n", 1, "'expected' is nan, not a finite number"),
        ("- id: a\n  prompt: p\n  expected: x\n  metadata: {1: one}\n", 1, "'metadata.1' is a key of type int"),
        ("- id: a\n  prompt: p\n  expected: x\n- !foo {id: b}\n", 4, "invalid YAML: could not determine a constructor"),
        ("- id: a\n  prompt: p\n  expected: x\n  metadata: {when: 2024-13-45}\n", 1, "invalid YAML value: month"),
        ("defaults: {metadata: {when: 2024-01-05}}\ncases:\n  - {id: a, prompt: p, expected: x}\n", 1, "is a date"),
    ],
)
def test_yaml_values_json_cannot_carry_are_refused(tmp_path: Path, yaml_text: str, line: int, needle: str) -> None:
    """Dates reached the cache key's json.dumps; unknown tags and impossible dates were tracebacks."""
    path = tmp_path / "suite.yaml"
    path.write_text(yaml_text)
    assert needle in _one_problem(path, line)


def test_yaml_aliases_cannot_expand_a_case_without_bound(tmp_path: Path) -> None:
    """Nine lines of aliases name a billion values: the walk over a case stops at a million."""
    levels = ["    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = _suite(tmp_path, "laughs.yaml", "- id: a", "  prompt: p", "  expected: x", "  metadata:", *levels)
    assert "takes the case past 1000000 values" in _one_problem(path, 1)


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    lines = [json.dumps({"id": f"c{i}", "prompt": "p", "expected": "x"}) for i in range(5000)]
    lines[4321] = '{"id": "caf\xe9", "prompt": "p", "expected": "x"}'
    path.write_bytes("\n".join(lines).encode("latin-1"))  # past the text reader's first chunk
    assert _one_problem(path, 4322) == "not UTF-8 text"


def test_user_text_quoted_in_a_problem_cannot_break_its_line(tmp_path: Path) -> None:
    path = _suite(tmp_path, "s.jsonl", '{"prompt": "p", "expected": "x", "a\\nb\\u001b[2J": 1}')
    assert _one_problem(path, 1) == "unknown field 'a\\nb\\x1b[2J'"


def test_validate_keeps_no_case_in_memory(tmp_path: Path) -> None:
    """``evalrun validate`` streams: 100,000 more cases cost it far less than holding them would
    (over 100 MB before). Peak RSS of the validating process itself, one case against 100,001."""
    write_many(tmp_path / "one.jsonl", arithmetic_cases(1))
    write_many(tmp_path / "many.jsonl", arithmetic_cases(100_001, ("a", "b", "c"), "c{:07d}"))
    probe = (
        "import resource, runpy, sys\n"
        "sys.argv = ['evalrun', 'validate', sys.argv[1]]\n"
        "try:\n    runpy.run_module('evalrun', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )

    def peak_kb(name: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", probe, name], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return int(done.stderr.split()[-1])

    many = evalrun(tmp_path, "validate", "many.jsonl")
    assert many.stdout.startswith("ok: 100,001 cases in 3 categories (a 33334, b 33334, c 33333)")
    assert many.stdout.splitlines()[1] == "assertions: equals 100001"
    assert peak_kb("many.jsonl") - peak_kb("one.jsonl") < 30_000


def test_plan_suites_shows_each_valid_case_to_a_tally(tmp_path: Path) -> None:
    path = _suite(tmp_path, "s.jsonl", GOOD, '{"id": "b", "prompt": "p", "assert": [{"type": "is-json"}]}')
    seen: list[str] = []
    plan = plan_suites([path], each=lambda case: seen.append(case.id))
    assert seen == ["fine", "b"] and plan.total == 2
