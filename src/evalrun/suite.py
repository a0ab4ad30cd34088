"""Suites: files of cases, read and fully validated before any request is sent.

Every problem is reported as ``file:line: what is wrong`` and all of them are collected, so a
user fixes a broken suite in one pass rather than one error per run.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import functools
import hashlib
import itertools
import json
import math
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .assertions import IMPLIABLE, Assertion, is_finite_number, parse_assertion
from .errors import ConfigError, SuiteError, printable_line

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
#: The types a bare 'expected' can stand for: those whose value is one string.
#: Lists and objects nest at most this deep in a case. The cache key, the request body and
#: jsonschema handle a case's data recursively, deeper in the stack than the loader: far more
#: than any real case needs, far less than would exhaust Python's recursion limit there.
_MAX_DEPTH = 32
_TOO_DEEP = f"nests lists and objects deeper than {_MAX_DEPTH} levels"
_MAX_VALUES = 1_000_000
_BUCKETS = 256  # of id digests, sorted one at a time to find duplicates


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
    """A case as written, before validation, with where it was written.

    ``screen``: whether the data may hold what JSON text cannot carry (see ``_Screen``); the JSON
    readers tell from the raw text, which spares the walk to nearly every line."""

    data: Any
    where: str
    screen: bool = True


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _derived_id(data: Mapping[str, Any]) -> str:
    content = {k: v for k, v in data.items() if k != "id"}
    return "case-" + hashlib.sha256(_canonical(content).encode()).hexdigest()[:12]


def _no_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON: {name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: JSON itself would keep the last of a repeated key
    without a word (one C call to ``dict`` when they are, which is nearly always)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key '{key}' (only one of its values would count: give it once)")
            seen.add(key)
    return data


_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def _decode(text: str) -> tuple[Any, str | None]:
    """JSON text as (value, None), or (None, what is wrong)."""
    try:
        return _DECODER.decode(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except ValueError as exc:
        return None, str(exc)
    except RecursionError:
        return None, _TOO_DEEP


def _suspect(text: str) -> bool:
    """Whether decoded JSON text may need the screen: a \\uD800-\\uDFFF escape is the only way a
    lone surrogate gets past strict UTF-8 decoding, and nesting cannot outgrow the brackets."""
    escaped = "\\u" in text and ("\\ud" in text or "\\uD" in text)
    return escaped or text.count("[") + text.count("{") >= _MAX_DEPTH


def _read_jsonl(path: Path, handle: IO[str], problems: list[str]) -> Iterator[_Raw]:
    for number, line in enumerate(handle, start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        data, wrong = _decode(line)
        if wrong is None:
            yield _Raw(data, f"{path}:{number}", _suspect(line))
        else:
            problems.append(f"{path}:{number}: {wrong}")


def _read_yaml(path: Path, handle: IO[str], problems: list[str]) -> Iterator[_Raw]:
    import yaml  # here: 15 ms of start-up, and most suites are JSON lines

    loader = _strict_loader()(handle.read())
    root = _yaml_root(path, loader, problems)
    if root is None:
        return
    defaults: Any = {}
    items = root
    if isinstance(root, yaml.MappingNode):
        problems.extend(f"{path}:{line}: {what}" for line, what in loader.repeated_in(root))
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
            defaults, wrong = _construct(loader, defaults_node)
            if not wrong:
                flaw = _defaults_problem(defaults)
                wrong = [] if flaw is None else [(defaults_node.start_mark.line + 1, flaw)]
            if wrong:
                problems.extend(f"{path}:{line}: {what}" for line, what in wrong)
                return
            defaults = _known_defaults(path, defaults_node, defaults, problems)
        items = top["cases"]
    if not isinstance(items, yaml.SequenceNode):
        problems.append(f"{path}:{items.start_mark.line + 1}: expected a list of cases")
        return
    for node in items.value:
        data, wrong = _construct(loader, node)
        if not wrong:
            yield _Raw(_merge_defaults(defaults or {}, data), f"{path}:{node.start_mark.line + 1}")
        else:
            problems.extend(f"{path}:{line}: {what}" for line, what in wrong)


def _known_defaults(path: Path, node: Any, defaults: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The defaults a case can take: an unknown one is reported once, on its own line, rather
    than once in every case it would be merged into."""
    unknown = [key for key in defaults if key not in _CASE_KEYS]
    for key in unknown:
        lines = (k.start_mark.line + 1 for k, _ in node.value if getattr(k, "value", None) == key)
        problems.append(f"{path}:{next(lines, node.start_mark.line + 1)}: defaults: {_unknown_key_message(key)}")
    return {k: v for k, v in defaults.items() if k not in unknown} if unknown else defaults


@functools.cache
def _strict_loader() -> type[Any]:
    """PyYAML's safe loader, but a key given twice in one mapping is a problem, not the last one
    winning without a word. Keys are compared as composed, before merge keys (``<<: *base``) are
    flattened: a case may override what it merges, but not repeat itself."""
    import yaml

    merge_tag = "tag:yaml.org,2002:merge"

    class StrictLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.repeated: dict[yaml.Node, list[tuple[int, str]]] = {}
            self.found: list[tuple[int, str]] = []

        def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
            node = super().compose_mapping_node(anchor)
            seen: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == merge_tag:
                    continue
                line, first = key.start_mark.line + 1, seen.get((key.tag, key.value))
                if first is None:
                    seen[key.tag, key.value] = line
                else:
                    problem = f"duplicate key '{key.value}' (first at line {first}; only one value would count)"
                    self.repeated.setdefault(node, []).append((line, problem))
            return node

        def repeated_in(self, node: yaml.Node) -> list[tuple[int, str]]:
            """The keys repeated in this mapping, each said once."""
            return self.repeated.pop(node, [])

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            self.found.extend(self.repeated_in(node))
            return super().construct_mapping(node, deep)

    return StrictLoader


def _yaml_root(path: Path, loader: Any, problems: list[str]) -> Any:
    """The document's node; None when it is empty or wrong (then ``problems`` says why)."""
    import yaml

    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(f"{path}:{line}: invalid YAML: {getattr(exc, 'problem', exc)}")
    except RecursionError:  # PyYAML composes nodes recursively
        problems.append(f"{path}:{loader.line + 1}: {_TOO_DEEP}")
    finally:
        loader.dispose()
    return None


def _construct(loader: Any, node: Any) -> tuple[Any, list[tuple[int, str]]]:
    """A node's value, or what is wrong with it, each problem with its line: PyYAML raises on an
    unknown tag or an impossible date (a ``ValueError``), and recurses as deep as the nesting
    goes; a key repeated in a mapping of it is noted by ``_strict_loader``'s."""
    import yaml

    line = node.start_mark.line + 1
    before = len(loader.found)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        return None, [(line, f"invalid YAML: {getattr(exc, 'problem', exc)}")]
    except ValueError as exc:
        return None, [(line, f"invalid YAML value: {exc}")]
    except RecursionError:
        return None, [(line, _TOO_DEEP)]
    finally:
        repeated = loader.found[before:]
        del loader.found[before:]
    return (None, repeated) if repeated else (value, [])


def _defaults_problem(defaults: Any) -> str | None:
    if defaults is not None and not isinstance(defaults, dict):
        return "'defaults' must be a mapping"
    return _flaw_message(defaults or {})


def _merge_defaults(defaults: Mapping[str, Any], data: Any) -> Any:
    if not defaults or not isinstance(data, dict):
        return data
    merged = {**defaults, **data}
    if isinstance(defaults.get("params"), dict) and isinstance(data.get("params"), dict):
        merged["params"] = {**defaults["params"], **data["params"]}
    if isinstance(defaults.get("assert"), list) and isinstance(data.get("assert"), list):
        merged["assert"] = [*data["assert"], *defaults["assert"]]
    return merged


_CSV_JSON_COLUMNS = ("assert", "params", "metadata", "messages")


def _read_csv(path: Path, handle: IO[str], problems: list[str]) -> Iterator[_Raw]:
    # strict: a quote left open reads on into the next rows, which it would otherwise swallow
    # without a word; strict stops at the first quote that cannot close a field.
    reader = csv.reader(handle, strict=True)
    start = 1  # the line the next row starts on: a quoted field may hold line breaks
    try:
        header = next(reader, None)
        if header is None:
            return
        repeated = sorted(name for name, times in Counter(header).items() if name and times > 1)
        if repeated:
            names = ", ".join(f"'{name}'" for name in repeated)
            problems.append(f"{path}:1: the header names column(s) {names} more than once")
            return
        start = reader.line_num + 1
        for row in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if not row:  # a blank line
                continue
            if len(row) > len(header):
                problems.append(f"{where}: {len(row)} values, but the header names {len(header)} columns")
                continue
            data: dict[str, Any] = {k: v for k, v in zip(header, row) if k and v != ""}
            texts = [data[key] for key in _CSV_JSON_COLUMNS if key in data]
            wrong = _decode_columns(data)
            if wrong:
                problems.extend(f"{where}: {w}" for w in wrong)
            else:
                yield _Raw(data, where, any(map(_suspect, texts)))
    except csv.Error as exc:  # a quote that does not close, a field past the csv module's limit (128 KiB)
        problems.append(f"{path}:{start}: invalid CSV: {_csv_problem(exc, start, reader.line_num)}")


def _csv_problem(exc: csv.Error, start: int, end: int) -> str:
    """What the csv module says; for a quote, that it is one, opened in the row on ``start``."""
    said = str(exc)
    if "field larger than field limit" in said:
        return said
    if "unexpected end of data" in said:
        return "a quote opened in this row is never closed: it runs to the end of the file"
    where = f" on line {end}" if end > start else ""
    return f"a quote opened in this row does not close where a field ends ({said}{where})"


def _decode_columns(data: dict[str, Any]) -> list[str]:
    """Decode, in place, the columns that hold JSON or a number; say what is wrong with them."""
    wrong = []
    for key in _CSV_JSON_COLUMNS:
        if key in data:
            data[key], problem = _decode(data[key])
            if problem is not None:
                wrong.append(f"column '{key}': {problem}")
    if "threshold" in data:
        try:
            data["threshold"] = float(data["threshold"])
        except ValueError:
            wrong.append("column 'threshold' is not a number")
    return wrong


_READERS = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".yaml": _read_yaml, ".yml": _read_yaml, ".csv": _read_csv}


class _Screen:
    """One walk over a case for what cannot travel as JSON text: see ``_scalar_flaw``, a key that
    is not a string, lists and objects nested past ``_MAX_DEPTH``, or more than ``_MAX_VALUES``
    values in all (a few lines of YAML aliases, which share objects, expand to billions)."""

    def __init__(self) -> None:
        self.left = _MAX_VALUES

    def flaw(self, value: Any, depth: int) -> tuple[str, list[str]] | None:
        """What is wrong in ``value`` (at ``depth``), and the path to it (``.key``, ``[index]``),
        innermost first."""
        self.left -= 1
        if self.left < 0:
            return f"takes the case past {_MAX_VALUES} values (YAML aliases repeat what they name)", []
        if not isinstance(value, (dict, list)):
            what = _scalar_flaw(value)
            return None if what is None else (what, [])
        if depth > _MAX_DEPTH:
            return _TOO_DEEP, []
        items: Iterable[tuple[Any, Any]] = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            what = _key_flaw(key) if isinstance(value, dict) else None
            found = (what, []) if what is not None else self.flaw(item, depth + 1)
            if found is not None:
                found[1].append(f".{key}" if isinstance(value, dict) else f"[{key}]")
                return found
        return None


def _scalar_flaw(value: Any) -> str | None:
    """A lone surrogate, which no UTF-8 encoder takes (the cache key, results and stderr all
    encode); a number that is not finite; a type JSON has no word for (YAML's dates, sets, binary)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:  # strict UTF-8 refuses only surrogates
            return f"holds \\u{ord(value[exc.start]):04x}, a lone surrogate, which is not text"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value}, not a finite number"
    if value is None or isinstance(value, int):
        return None
    return f"is a {type(value).__name__}, which JSON cannot hold (quote it)"


def _key_flaw(key: Any) -> str | None:
    return _scalar_flaw(key) if isinstance(key, str) else f"is a key of type {type(key).__name__}, not a string"


def _flaw_message(data: Mapping[str, Any]) -> str | None:
    """What ``_Screen`` finds in a case, as one line naming the field (``'messages[0].content' ...``)."""
    found = _Screen().flaw(data, 1)
    if found is None:
        return None
    what, path = found
    path.reverse()
    shown = "".join(path[:3]).removeprefix(".")
    return f"'{shown}{'…' if len(path) > 3 else ''}' {what}"


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
    if "expected" in data and not (isinstance(data["expected"], str) or is_finite_number(data["expected"])):
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
    implied = raw is None
    if implied:
        raw = [{"type": default_assert, "value": str(data["expected"])}] if "expected" in data else []
    if not isinstance(raw, list):
        return [], ["'assert' must be a list of assertions"]
    parsed, errors = [], []
    for i, item in enumerate(raw):
        try:
            parsed.append(parse_assertion(item))
        except ValueError as exc:
            errors.append(f"{f'expected (as {default_assert})' if implied else _assertion_label(i, item)}: {exc}")
    return parsed, errors


def _assertion_label(index: int, item: Any) -> str:
    kind = item.get("type") if isinstance(item, dict) else None
    return f"assertion {index + 1}" + (f" ({kind})" if isinstance(kind, str) else "")


def _build_case(raw: _Raw, default_assert: str) -> tuple[Case | None, list[str]]:
    data = raw.data
    if not isinstance(data, dict):
        return None, [f"{raw.where}: a case must be an object, got {type(data).__name__}"]
    flaw = _flaw_message(data) if raw.screen else None
    if flaw is not None:  # before anything quotes a field back to the user
        return None, [f"{raw.where}: {flaw}"]
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
    if path.is_dir():
        problems.append(f"{path}: is a folder, not a suite file (name its files: {path / '*.jsonl'})")
        return
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        problems.append(f"{path}:1: unknown suite format '{path.suffix}' (use .jsonl, .yaml or .csv)")
        return
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            yield from reader(path, handle, problems)
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")  # no line: the file itself
    except UnicodeDecodeError:
        problems.append(f"{path}:{_undecodable_line(path)}: not UTF-8 text")


def _undecodable_line(path: Path) -> int:
    """The line of a file's first byte that is not UTF-8: the text reader decodes ahead of the
    line it hands out, so its error cannot say."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            pending = len(decoder.getstate()[0])  # bytes of a character the last chunk split
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk.count(b"\n", 0, max(exc.start - pending, 0))
            line += chunk.count(b"\n")
    return line


def _never() -> bool:
    return False


def _built(
    paths: tuple[str, ...], default_assert: str, problems: list[str], skimming: Callable[[], bool] = _never
) -> Iterator[tuple[Case, _Raw]]:
    for path in map(Path, paths):
        for raw in _read(path, problems):
            case, errors = (_skimmed(raw), []) if skimming() else _build_case(raw, default_assert)
            problems.extend(errors)
            if case is not None:
                yield case, raw


def _skimmed(raw: _Raw) -> Case:
    """A case named, not built: its id and category (what a selection and a not-run record need),
    on the word of a first pass that checked it whole."""
    data = raw.data
    return Case(
        id=data.get("id") or _derived_id(data),
        category=data.get("category") or _DEFAULT_CATEGORY,
        messages=(),
        assertions=(),
        source=raw.where,
    )


def _digest(case_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(case_id.encode(), digest_size=8).digest(), "little")


def _repeated(buckets: list[array[int]]) -> set[int]:
    """The digests seen more than once. Sorted a bucket at a time: one sorted list of them all
    would hold a Python int a case, five times the 8 bytes the arrays keep."""
    repeated: set[int] = set()
    for bucket in buckets:
        repeated.update(a for a, b in itertools.pairwise(sorted(bucket)) if a == b)
    return repeated


def _duplicate_problems(paths: tuple[str, ...], default_assert: str, repeated: set[int]) -> list[str]:
    """Second pass, only when the first found a repeated id: say where each copy stands."""
    first_seen: dict[str, str] = {}
    problems: list[str] = []
    for case, raw in _built(paths, default_assert, []):
        if _digest(case.id) not in repeated:
            continue
        first = first_seen.get(case.id)
        if first is None:
            first_seen[case.id] = raw.where
            continue
        if "id" in raw.data:
            problems.append(f"{raw.where}: duplicate id '{case.id}' (first at {first})")
        else:  # the id is a hash the user never wrote: name the lines instead
            file, _, line = first.rpartition(":")
            same = f"line {line}" if raw.where.rpartition(":")[0] == file else first
            problems.append(f"{raw.where}: the same case as {same} (cases without an id are named by their content)")
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

    def cases(self, skimming: Callable[[], bool] = _never) -> Iterator[Case]:
        """The selected cases, read afresh from the files. Once ``skimming()`` says so (the run has
        stopped: what is left is only listed as not run), cases are named, not built (``_skimmed``),
        three times faster: a million left over take seconds, not a minute."""
        taken = 0
        for case, _ in _built(self.paths, self.default_assert, [], skimming):
            if self.limit is not None and taken >= self.limit:
                return
            if self.select is None or self.select(case):
                taken += 1
                yield case


def _named_once(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The suites without a file named again (as it was, or by another path to it), and a problem
    for each repeat: read twice, each of its cases would be a duplicate of itself."""
    seen: dict[object, str] = {}
    problems = []
    for name in names:
        try:
            stat = os.stat(name)
            identity: object = (stat.st_dev, stat.st_ino) if stat.st_ino else os.path.realpath(name)
        except (OSError, ValueError):  # reading it will say what is wrong
            identity = os.path.abspath(name)
        first = seen.get(identity)
        if first is None:
            seen[identity] = name
        else:
            other = "" if first == name else f" (as {first} and as {name})"
            problems.append(f"{name}: the same suite is named twice{other}: name it once")
    return tuple(seen.values()), problems


def plan_suites(
    paths: Iterable[str | Path],
    default_assert: str = "equals",
    select: Callable[[Case], bool] | None = None,
    limit: int | None = None,
    each: Callable[[Case], object] | None = None,
) -> SuitePlan:
    """Validate suites and size the selection; raise ``SuiteError`` listing every problem.

    ``each`` sees every valid case as it is read, selected or not, so a caller can tally what
    it needs without keeping the cases."""
    if default_assert not in IMPLIABLE:
        raise ConfigError(
            f"--default-assert/default_assert: '{default_assert}' cannot stand for a bare 'expected'"
            f" (use {', '.join(IMPLIABLE)})"
        )
    names, problems = _named_once(tuple(map(str, paths)))
    buckets: list[array[int]] = [array("Q") for _ in range(_BUCKETS)]
    categories: dict[str, int] = {}
    total = 0
    for case, _ in _built(names, default_assert, problems):
        digest = _digest(case.id)
        buckets[digest % _BUCKETS].append(digest)
        if each is not None:
            each(case)
        if (select is None or select(case)) and (limit is None or total < limit):
            total += 1
            categories[case.category] = categories.get(case.category, 0) + 1
    repeated = _repeated(buckets)
    if repeated:
        problems.extend(_duplicate_problems(names, default_assert, repeated))
    if not any(buckets) and not problems:
        problems.append(f"{', '.join(names)}:1: no cases found")
    if problems:
        raise SuiteError([printable_line(problem) for problem in problems])
    return SuitePlan(names, default_assert, total, categories, select, limit)


def load_suites(paths: Iterable[str | Path], default_assert: str = "equals") -> list[Case]:
    """Read and validate suites into a list (for tools; runs use ``plan_suites``)."""
    return list(plan_suites(paths, default_assert).cases())
