"""Suites: files of cases, read and fully validated before any request is sent.

Every problem is reported as ``file:line: what is wrong`` and all of them are collected, so a
user fixes a broken suite in one pass rather than one error per run.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import itertools
import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .assertions import Assertion, is_finite_number, parse_assertion
from .errors import SuiteError

__all__ = ["Case", "SuiteError", "SuitePlan", "load_suites", "plan_suites"]

_CASE_KEYS = (
    "id",
    "category",
    "prompt",
    "messages",
    "system",
    "expected",
    "assert",
    "params",
    "threshold",
    "metadata",
)
_ROLES = {"system", "user", "assistant", "tool", "developer"}
_DEFAULT_CATEGORY = "default"


@dataclass(frozen=True)
class Case:
    """One validated case. ``messages`` is the full chat the model receives."""

    id: str
    category: str
    messages: tuple[Mapping[str, Any], ...]
    assertions: tuple[Assertion, ...]
    expected: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass
class _Raw:
    """A case as written, before validation, with where it was written."""

    data: Any
    where: str


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _derived_id(data: Mapping[str, Any]) -> str:
    content = {k: v for k, v in data.items() if k != "id"}
    return "case-" + hashlib.sha256(_canonical(content).encode()).hexdigest()[:12]


def _read_jsonl(path: Path, handle: IO[str], problems: list[str]) -> Iterator[_Raw]:
    for number, line in enumerate(handle, start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            yield _Raw(json.loads(line), f"{path}:{number}")
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})")


def _read_yaml(path: Path, handle: IO[str], problems: list[str]) -> Iterator[_Raw]:
    import yaml  # here: 15 ms of start-up, and most suites are JSON lines

    loader = yaml.SafeLoader(handle.read())
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(f"{path}:{line}: invalid YAML: {getattr(exc, 'problem', exc)}")
        return
    finally:
        loader.dispose()
    if root is None:
        return
    defaults: dict[str, Any] = {}
    items = root
    if isinstance(root, yaml.MappingNode):
        top = {k.value: v for k, v in root.value}
        unknown = set(top) - {"defaults", "cases"}
        if unknown or "cases" not in top:
            what = f"unknown key(s) {', '.join(sorted(unknown))}" if unknown else "no 'cases:'"
            problems.append(
                f"{path}:{root.start_mark.line + 1}: a suite mapping needs 'cases:' and optionally 'defaults:' ({what})"
            )
            return
        defaults_node = top.get("defaults")
        if defaults_node is not None:
            defaults = loader.construct_object(defaults_node, deep=True) or {}
            if not isinstance(defaults, dict):
                problems.append(f"{path}:{defaults_node.start_mark.line + 1}: 'defaults' must be a mapping")
                return
        items = top["cases"]
    if not isinstance(items, yaml.SequenceNode):
        problems.append(f"{path}:{items.start_mark.line + 1}: expected a list of cases")
        return
    for node in items.value:
        data = loader.construct_object(node, deep=True)
        yield _Raw(_merge_defaults(defaults, data), f"{path}:{node.start_mark.line + 1}")


def _merge_defaults(defaults: Mapping[str, Any], data: Any) -> Any:
    if not defaults or not isinstance(data, dict):
        return data
    merged = {**defaults, **data}
    if isinstance(defaults.get("params"), dict) and isinstance(data.get("params"), dict):
        merged["params"] = {**defaults["params"], **data["params"]}
    if isinstance(defaults.get("assert"), list) and isinstance(data.get("assert"), list):
        merged["assert"] = [*data["assert"], *defaults["assert"]]
    return merged


def _read_csv(path: Path, handle: IO[str], problems: list[str]) -> Iterator[_Raw]:
    reader = csv.DictReader(handle)
    for row in reader:
        data: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        where = f"{path}:{reader.line_num}"
        for key in ("assert", "params", "metadata", "messages"):
            if key in data:
                try:
                    data[key] = json.loads(data[key])
                except json.JSONDecodeError as exc:
                    problems.append(f"{where}: column '{key}' is not valid JSON: {exc.msg}")
        if "threshold" in data:
            try:
                data["threshold"] = float(data["threshold"])
            except ValueError:
                problems.append(f"{where}: column 'threshold' is not a number")
        yield _Raw(data, where)


_READERS = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".yaml": _read_yaml, ".yml": _read_yaml, ".csv": _read_csv}


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, _CASE_KEYS, n=1)
    return f"unknown field '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")


def _validate_messages(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        return ["'messages' must be a non-empty list of {role, content} objects"]
    errors = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            errors.append(f"messages[{i}] needs a 'role' among {', '.join(sorted(_ROLES))}")
        elif not isinstance(message.get("content"), (str, list)):
            errors.append(f"messages[{i}] needs a string 'content'")
    return errors


def _validate_params(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["'params' must be an object"]
    errors = []
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        if name in value and not is_finite_number(value[name]):
            errors.append(f"params.{name} must be a number, got {value[name]!r}")
    for name in ("max_tokens", "seed", "max_completion_tokens"):
        if name in value and (isinstance(value[name], bool) or not isinstance(value[name], int)):
            errors.append(f"params.{name} must be an integer, got {value[name]!r}")
    return errors


def _field_errors(data: Mapping[str, Any]) -> list[str]:
    errors = [_unknown_key_message(k) for k in data if k not in _CASE_KEYS]
    has_prompt, has_messages = "prompt" in data, "messages" in data
    if has_prompt == has_messages:
        errors.append("a case needs exactly one of 'prompt' or 'messages'")
    if has_prompt and (not isinstance(data["prompt"], str) or not data["prompt"].strip()):
        errors.append("'prompt' must be a non-empty string")
    if has_messages:
        errors.extend(_validate_messages(data["messages"]))
    for name in ("id", "category", "system"):
        if name in data and (not isinstance(data[name], str) or not data[name].strip()):
            errors.append(f"'{name}' must be a non-empty string")
    if "expected" in data and not isinstance(data["expected"], (str, int, float)):
        errors.append("'expected' must be a string or a number")
    if "params" in data:
        errors.extend(_validate_params(data["params"]))
    threshold = data.get("threshold")
    if threshold is not None and not (is_finite_number(threshold) and 0 <= threshold <= 1):
        errors.append(f"'threshold' must be a number from 0 to 1, got {threshold!r}")
    if "metadata" in data and not isinstance(data["metadata"], dict):
        errors.append("'metadata' must be an object")
    if "expected" not in data and not data.get("assert"):
        errors.append("a case needs 'expected' or at least one 'assert'")
    return errors


def _assertions(data: Mapping[str, Any], default_assert: str) -> tuple[list[Assertion], list[str]]:
    raw = data.get("assert")
    if raw is None:
        raw = [{"type": default_assert, "value": str(data["expected"])}] if "expected" in data else []
    if not isinstance(raw, list):
        return [], ["'assert' must be a list of assertions"]
    parsed, errors = [], []
    for i, item in enumerate(raw):
        try:
            parsed.append(parse_assertion(item))
        except ValueError as exc:
            errors.append(f"assert[{i}]: {exc}")
    return parsed, errors


def _build_case(raw: _Raw, default_assert: str) -> tuple[Case | None, list[str]]:
    data = raw.data
    if not isinstance(data, dict):
        return None, [f"{raw.where}: a case must be an object, got {type(data).__name__}"]
    errors = _field_errors(data)
    assertions, assertion_errors = _assertions(data, default_assert) if not errors else ([], [])
    errors += assertion_errors
    if errors:
        return None, [f"{raw.where}: {e}" for e in errors]
    messages = list(data["messages"]) if "messages" in data else [{"role": "user", "content": data["prompt"]}]
    if "system" in data:
        messages.insert(0, {"role": "system", "content": data["system"]})
    expected = data.get("expected")
    case = Case(
        id=data.get("id") or _derived_id(data),
        category=data.get("category") or _DEFAULT_CATEGORY,
        messages=tuple(messages),
        assertions=tuple(assertions),
        expected=None if expected is None else str(expected),
        params=dict(data.get("params") or {}),
        threshold=data.get("threshold"),
        metadata=dict(data.get("metadata") or {}),
        source=raw.where,
    )
    return case, []


def _read(path: Path, problems: list[str]) -> Iterator[_Raw]:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        problems.append(f"{path}:1: unknown suite format '{path.suffix}' (use .jsonl, .yaml or .csv)")
        return
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            yield from reader(path, handle, problems)
    except OSError as exc:
        problems.append(f"{path}:1: cannot read: {exc.strerror or exc}")
    except UnicodeDecodeError:
        problems.append(f"{path}:1: not UTF-8 text")


def _built(paths: tuple[str, ...], default_assert: str, problems: list[str]) -> Iterator[tuple[Case, str]]:
    for path in map(Path, paths):
        for raw in _read(path, problems):
            case, errors = _build_case(raw, default_assert)
            problems.extend(errors)
            if case is not None:
                yield case, raw.where


def _digest(case_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(case_id.encode(), digest_size=8).digest(), "little")


def _repeated(digests: array[int]) -> set[int]:
    ordered = sorted(digests)
    return {a for a, b in itertools.pairwise(ordered) if a == b}


def _duplicate_problems(paths: tuple[str, ...], default_assert: str, repeated: set[int]) -> list[str]:
    """Second pass, only when the first found a repeated id: say where each copy stands."""
    first_seen: dict[str, str] = {}
    problems: list[str] = []
    for case, where in _built(paths, default_assert, []):
        if _digest(case.id) not in repeated:
            continue
        if case.id in first_seen:
            problems.append(f"{where}: duplicate id '{case.id}' (first at {first_seen[case.id]})")
        else:
            first_seen[case.id] = where
    return problems


@dataclass(frozen=True)
class SuitePlan:
    """Validated suites, the selection made of them and its size, without the cases in memory.

    Suites are read twice: once to validate everything and count (keeping 8 bytes an id to find
    duplicates), once more, lazily, while the run consumes them. Memory stays flat however many
    cases there are.
    """

    paths: tuple[str, ...]
    default_assert: str
    total: int
    categories: Mapping[str, int]
    select: Callable[[Case], bool] | None = None
    limit: int | None = None

    def cases(self) -> Iterator[Case]:
        """The selected cases, read afresh from the files."""
        taken = 0
        for case, _ in _built(self.paths, self.default_assert, []):
            if self.limit is not None and taken >= self.limit:
                return
            if self.select is None or self.select(case):
                taken += 1
                yield case


def plan_suites(
    paths: Iterable[str | Path],
    default_assert: str = "equals",
    select: Callable[[Case], bool] | None = None,
    limit: int | None = None,
) -> SuitePlan:
    """Validate suites and size the selection; raise ``SuiteError`` listing every problem."""
    names = tuple(map(str, paths))
    problems: list[str] = []
    digests: array[int] = array("Q")
    categories: dict[str, int] = {}
    total = 0
    for case, _ in _built(names, default_assert, problems):
        digests.append(_digest(case.id))
        if (select is None or select(case)) and (limit is None or total < limit):
            total += 1
            categories[case.category] = categories.get(case.category, 0) + 1
    repeated = _repeated(digests)
    if repeated:
        problems.extend(_duplicate_problems(names, default_assert, repeated))
    if not digests and not problems:
        problems.append(f"{', '.join(names)}:1: no cases found")
    if problems:
        raise SuiteError(problems)
    return SuitePlan(names, default_assert, total, categories, select, limit)


def load_suites(paths: Iterable[str | Path], default_assert: str = "equals") -> list[Case]:
    """Read and validate suites into a list (for tools; runs use ``plan_suites``)."""
    return list(plan_suites(paths, default_assert).cases())
