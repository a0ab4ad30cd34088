"""schemas/*.schema.json, the contract for programs, against what evalrun really writes.

Real runs must validate: eval runs against the simulated provider (fresh, cached, timed out) and
``evalrun test`` on tiny projects (run, replayed, timed out, pytest dying), each with its results
file, its ``--events`` file and its ``--progress json`` stdout. The schemas' keys and enums must be
the code's, every event the code knows must have a schema, and broken documents must be rejected.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from helpers import arithmetic_cases, local_config, write_suite
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from evalrun import events as ev
from evalrun import schema as records
from evalrun.eventlog import JsonLinesLog, event_record
from evalrun.metrics import RunMetrics
from evalrun.reports import CaseSpool
from evalrun.schema import (
    FINAL_STATES,
    SCHEMA_VERSION,
    AssertionResult,
    CaseResult,
    CategorySummary,
    LatencySummary,
    ResultsDocument,
    RunInfo,
    RunKind,
    RunState,
    Status,
    Summary,
    TestOutcome,
    Tokens,
)
from evalrun.sim import SimProcess

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FILES = ("results.schema.json", "events.schema.json", "test-results.schema.json")


def _load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


RESULTS, EVENTS, TEST_RESULTS = (_load(name) for name in FILES)
#: The schemas by their ``$id``: how the events schema's ``results.schema.json#/$defs/case`` resolves.
REGISTRY: Registry[Any] = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in (RESULTS, EVENTS, TEST_RESULTS)
)


def _validator(schema: dict[str, Any]) -> Any:
    return Draft202012Validator(schema, registry=REGISTRY)


RESULTS_V, EVENTS_V, TEST_RESULTS_V = _validator(RESULTS), _validator(EVENTS), _validator(TEST_RESULTS)


def _problem(validator: Any, instance: Any) -> str | None:
    error = best_match(validator.iter_errors(instance))
    return None if error is None else f"{error.message} (at {error.json_path}, schema {list(error.schema_path)})"


def assert_valid(validator: Any, instance: Any, what: str) -> None:
    problem = _problem(validator, instance)
    assert problem is None, f"{what}: {problem}"


def assert_event_valid(line: dict[str, Any], what: str) -> None:
    """One log line; when it fails, the reason comes from its own event's schema, not from the oneOf."""
    if EVENTS_V.is_valid(line):
        return
    name = line.get("event")
    own = f"{EVENTS['$id']}#/$defs/{name}" if name in EVENTS["$defs"] else EVENTS["$id"]
    problem = _problem(EVENTS_V.evolve(schema={"$ref": own}), line) or _problem(EVENTS_V, line)
    pytest.fail(f"{what}: {line.get('event')} line invalid: {problem}\n{json.dumps(line)}")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_log(lines: list[dict[str, Any]], what: str) -> list[str]:
    """Every line valid, the run framed by run_started and run_finished; the event names, in order."""
    for line in lines:
        assert_event_valid(line, what)
    names = [line["event"] for line in lines]
    assert names[0] == "run_started" and names[-1] == "run_finished", f"{what}: {names}"
    return names


def read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _clean_env(*prefixes: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def evalrun(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_clean_env("EVALRUN_", "TEST_TIMEOUT", "ENABLE_TEST", "MAX_CONCURRENT", "ENABLE_EVALUATION", "EVALUATION_"),
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


# -- the schema files themselves -------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_schema_file_is_valid_draft_2020_12_and_documented(name: str) -> None:
    schema = _load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + name)
    assert len(schema["title"]) > 10 and "contract" in schema["description"]
    assert "SCHEMA_VERSION" in schema["description"]


def test_schema_version_and_enums_are_the_codes() -> None:
    assert RESULTS["properties"]["schema"]["const"] == SCHEMA_VERSION
    assert TEST_RESULTS["properties"]["schema"]["const"] == SCHEMA_VERSION
    assert RESULTS["$defs"]["case"]["properties"]["status"]["enum"] == [s.value for s in Status]
    outcomes = [o.value for o in TestOutcome]
    assert EVENTS["$defs"]["test_outcome"]["enum"] == outcomes == TEST_RESULTS["$defs"]["test_outcome"]["enum"]
    final = [s.value for s in RunState if s in FINAL_STATES]
    assert EVENTS["$defs"]["run_state"]["enum"] == final == TEST_RESULTS["properties"]["state"]["enum"]
    assert EVENTS["$defs"]["run_started"]["properties"]["kind"]["enum"] == [k.value for k in RunKind]
    counts = EVENTS["$defs"]["tests_replayed"]["properties"]["counts"]
    assert counts["required"] == outcomes


def _keys(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def _closed(schema: dict[str, Any]) -> set[str]:
    """The keys of an object schema that requires exactly the keys it lists."""
    listed = set(schema["properties"])
    assert set(schema["required"]) == listed
    return listed


def test_document_keys_are_the_records_keys() -> None:
    d = RESULTS["$defs"]
    assert _closed(RESULTS) == _keys(ResultsDocument)
    assert _closed(d["run"]) == _keys(RunInfo)
    assert _closed(d["summary_fields"]) == _keys(Summary) == set(RunMetrics().summary())
    assert d["summary"]["unevaluatedProperties"] is False
    assert _closed(d["summary_fields"]["properties"]["latency_ms"]) == _keys(LatencySummary)
    assert _closed(d["category_summary"]) == _keys(CategorySummary)
    assert _closed(d["tokens"]) == _keys(Tokens)
    assert _closed(d["assertion"]) == _keys(AssertionResult)
    assert _closed(d["case"]) == set(CaseResult("c", "k", "m", 0, Status.NOT_RUN).to_dict())
    assert _closed(TEST_RESULTS) == _keys(records.TestResultsDocument)  # (not imported: pytest would collect it)
    assert _closed(TEST_RESULTS["$defs"]["summary"]) == _keys(records.TestSummary)


def _event_defs() -> dict[str, dict[str, Any]]:
    """The events schema's branches, by the event name each one's ``event`` const says."""
    branches = [EVENTS["$defs"][ref["$ref"].removeprefix("#/$defs/")] for ref in EVENTS["oneOf"]]
    return {branch["properties"]["event"]["const"]: branch for branch in branches}


def test_every_event_the_code_knows_has_a_schema_with_its_fields() -> None:
    defs = _event_defs()
    known = set(ev._NAMES.values()) - {"tick"}
    assert set(defs) == known | {"summary"}  # `summary`: the last line of `eval --progress json`
    assert EVENTS["properties"]["event"]["enum"] == list(defs)
    for kind, name in ev._NAMES.items():
        if kind in (ev.TasksNotRun, ev.Tick):  # written as task_finished records; never written
            continue
        written = {"result"} if kind is ev.TaskFinished else {f.name for f in fields(kind) if f.name != "at"}
        assert _closed(defs[name]) == {"event", "ts", *written}, name
        assert defs[name]["additionalProperties"] is False, name


#: One of every event, as the code builds them: each record must validate (a new event needs one here).
SAMPLE_EVENTS: dict[type, list[Any]] = {
    ev.RunStarted: [
        ev.RunStarted("0123456789ab", RunKind.EVAL, 4, "sim", ("a", "b"), 10, {"math": 4}),
        ev.RunStarted("0123456789ab", RunKind.TEST, pid=4242),
        ev.RunStarted("0123456789ab", RunKind.TEST, 3),  # replayed from the test cache
    ],
    ev.RunFinished: [ev.RunFinished(RunState.TIMEOUT, "run timeout of 1 s reached", 124)],
    ev.StateChanged: [
        ev.StateChanged(RunState.STARTING, "starting: 4 tasks on sim"),
        ev.StateChanged(RunState.BACKING_OFF, "waiting 4 s for the rate limit"),
    ],
    ev.RunWarning: [
        ev.RunWarning("cache .evalrun/cache: database disk image is malformed; the run goes on without it")
    ],
    ev.TaskStarted: [ev.TaskStarted("c1", "math", "a", 0)],
    ev.CacheHit: [ev.CacheHit("c1", "math", "a", 1)],
    ev.RetryScheduled: [
        ev.RetryScheduled("c1", "a", 1, 0.5, "HTTP 429: slow down", 429),
        ev.RetryScheduled("c1", "a", 2, 1.0, "ReadTimeout", None),
        ev.RetryScheduled("c1", "a", 3, 0.1, "HTTP 429: too many concurrent requests", 429, slot_released=False),
    ],
    ev.RetryResumed: [ev.RetryResumed("c1", "a", 2)],
    ev.ConcurrencyChanged: [ev.ConcurrencyChanged(5, "rate limited (429)")],
    ev.PaceChanged: [ev.PaceChanged(600.0, None), ev.PaceChanged(None, 6000.0)],
    ev.TaskFinished: [
        ev.TaskFinished(CaseResult("c1", "math", "a", 0, Status.ERROR, error="HTTP 500: boom", attempts=1)),
        ev.TaskFinished(CaseResult("c1", "math", "a", 0, Status.NOT_RUN)),
    ],
    ev.Tick: [ev.Tick()],
    ev.TasksNotRun: [
        ev.TasksNotRun((ev.NotRun("c2", "math", "a", 0), ev.NotRun('q"uote\\ \x1b é\ud800', "数学", "m/1", 3)))
    ],
    ev.SessionStarted: [ev.SessionStarted()],
    ev.CollectionFinished: [ev.CollectionFinished(2, ("t.py::a", "t.py::b"))],
    ev.CollectError: [ev.CollectError("test_bad.py", "ModuleNotFoundError: No module named 'x'")],
    ev.TestStarted: [ev.TestStarted("t.py::a")],
    ev.TestFinished: [ev.TestFinished("t.py::a", "setup", TestOutcome.ERROR, 0.01, "fixture exploded")],
    ev.SessionFinished: [ev.SessionFinished(1)],
    ev.TestsReplayed: [
        ev.TestsReplayed("2024-05-01T12:00:00+00:00", 3, {o: int(o == TestOutcome.PASSED) * 3 for o in TestOutcome})
    ],
}


def test_every_kind_of_event_record_validates() -> None:
    assert set(SAMPLE_EVENTS) == set(ev._NAMES)
    for samples in SAMPLE_EVENTS.values():
        for event in samples:
            if isinstance(event, (ev.TasksNotRun, ev.Tick)):
                continue  # below; never in the log
            record = json.loads(json.dumps(event_record(event, 1.7e9)))
            assert_event_valid(record, type(event).__name__)


def test_tasks_not_run_are_logged_and_spooled_as_the_records_a_task_finished_would_give() -> None:
    [event] = SAMPLE_EVENTS[ev.TasksNotRun]
    log, spool = io.StringIO(), CaseSpool()
    JsonLinesLog(log)(event)
    spool(event)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    expected = [task.result().to_dict() for task in event.tasks]
    assert [line["result"] for line in lines] == expected == list(spool.records())
    assert [task.json() for task in event.tasks] == [task.result().json for task in event.tasks]
    for line in lines:
        assert_event_valid(line, "TasksNotRun")


# -- real eval runs ------------------------------------------------------------------------------


def _eval(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    common = ("eval", "local", "--suite", "suite.jsonl", "--cache-dir", "cache", "--output", "r.json")
    return evalrun(tmp_path, *common, "--events", "e.jsonl", "--progress", "json", *args)


def _check_eval(tmp_path: Path, done: subprocess.CompletedProcess[str], what: str) -> tuple[dict[str, Any], list[str]]:
    """results.json, the --events file and the --progress json stdout of one eval run, all checked."""
    document = read_json(tmp_path / "r.json")
    assert_valid(RESULTS_V, document, f"{what}: results.json")
    names = check_log(json_lines((tmp_path / "e.jsonl").read_text(encoding="utf-8")), f"{what}: --events")
    assert "summary" not in names
    stdout = json_lines(done.stdout)
    assert [line["event"] for line in stdout[:-1]] == names  # --progress json: the same log...
    assert stdout[-1]["event"] == "summary"  # ...and one summary line
    assert_event_valid(stdout[-1], f"{what}: --progress json summary")
    summary = {k: v for k, v in stdout[-1].items() if k not in ("event", "exit_code")}
    assert summary == document["summary"] and stdout[-1]["exit_code"] == done.returncode
    for line in stdout[:-1]:
        assert_event_valid(line, f"{what}: --progress json")
    finished = [line["result"] for line in json_lines((tmp_path / "e.jsonl").read_text()) if "result" in line]
    assert sorted(finished, key=json.dumps) == sorted(document["cases"], key=json.dumps)
    return document, names


def _statuses(document: dict[str, Any]) -> set[str]:
    return {case["status"] for case in document["cases"]}


def test_eval_runs_pass_fail_error_cached_and_retried_validate(tmp_path: Path, sim: SimProcess) -> None:
    cases = [*arithmetic_cases(3), {"id": "echo", "category": "text", "prompt": "repeat: hi", "expected": "ho"}]
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", cases)
    # Seeded 429s (retries), a cap of 1 in flight (a lowered limit), a budget (a pace from headers).
    sim.control(rate_429=0.3, max_inflight=1, rpm=6000, latency_ms=30)
    models = ("--model", "sim-1", "--model", "sim-2", "--repeat", "2", "--min-pass-rate", "0")
    fresh = _eval(tmp_path, *models, "--concurrency", "4", "--retries", "8")
    assert fresh.returncode == 0, fresh.stderr
    document, names = _check_eval(tmp_path, fresh, "fresh run")
    assert _statuses(document) == {"pass", "fail"} and len(document["cases"]) == 16
    assert {(c["model"], c["repeat"]) for c in document["cases"]} == {
        (m, r) for m in ("sim-1", "sim-2") for r in (0, 1)
    }
    assert {"task_started", "task_finished", "retry_scheduled", "concurrency_changed", "pace_changed"} <= set(names)

    # Again, from the cache, with a new case the provider now refuses: cache hits and errors.
    write_suite(tmp_path / "suite.jsonl", [*cases, {"id": "new", "prompt": "What is 6*7?", "expected": "42"}])
    sim.control(rate_429=0.0, rate_500=1.0)
    again = _eval(tmp_path, *models, "--retries", "0", "--max-errors", "100")
    assert again.returncode == 0, again.stderr
    document, names = _check_eval(tmp_path, again, "cached run")
    assert _statuses(document) == {"pass", "fail", "error"}
    assert sum(c["cached"] for c in document["cases"]) == 16 and names.count("cache_hit") == 16
    assert [c["response"] for c in document["cases"] if c["status"] == "error"] == [None] * 4


def test_timed_out_eval_run_with_not_run_cases_validates(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(4))
    sim.control(latency_ms=3000)
    done = _eval(tmp_path, "--timeout", "0.5")
    assert done.returncode == 124, done.stderr
    document, names = _check_eval(tmp_path, done, "timed-out run")
    assert _statuses(document) == {"not_run"} and document["summary"]["not_run"] == 4
    assert all(c["response"] is None and c["error"] is None for c in document["cases"])
    assert names.count("task_started") == 4 and names.count("task_finished") == 4
    assert json_lines((tmp_path / "e.jsonl").read_text())[-1]["state"] == "timeout"


# -- real test runs ------------------------------------------------------------------------------


def _project(root: Path, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_tiny.py").write_text(textwrap.dedent(source))
    return root


def _test_run(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], list[str]]:
    """One ``evalrun test`` run: its --output document, --events file and --progress json stdout, checked."""
    done = evalrun(root, "test", "--output", "r.json", "--events", "e.jsonl", "--progress", "json", *args)
    document = read_json(root / "r.json")
    assert_valid(TEST_RESULTS_V, document, "test results")
    names = check_log(json_lines((root / "e.jsonl").read_text(encoding="utf-8")), "test run --events")
    assert [line["event"] for line in json_lines(done.stdout)] == names
    for line in json_lines(done.stdout):
        assert_event_valid(line, "test run --progress json")
    return done, document, names


TINY = """
    import pytest

    def test_pass():
        pass

    def test_fail():
        assert 1 == 2

    @pytest.mark.skip(reason="not today")
    def test_skip():
        pass
"""


def test_test_run_and_its_cached_replay_validate(tmp_path: Path) -> None:
    root = _project(tmp_path / "tiny", TINY)
    done, document, names = _test_run(root, "--cache")
    assert done.returncode == 1, done.stderr
    outcomes = {t["id"].split("::")[1]: t["outcome"] for t in document["tests"]}
    assert outcomes == {"test_pass": "passed", "test_fail": "failed", "test_skip": "skipped"}
    assert document["state"] == "failed" and document["replayed"] is False
    assert {"session_started", "collection_finished", "test_started", "test_finished", "session_finished"} <= set(names)

    replay, document, names = _test_run(root, "--cache")
    assert replay.returncode == 1, replay.stderr
    assert document["replayed"] is True and names == ["run_started", "tests_replayed", "run_finished"]


def test_timed_out_test_run_with_tests_in_flight_and_not_run_validates(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "hang",
        """
        import time

        def test_first():
            pass

        def test_hangs():
            time.sleep(600)

        def test_never():
            pass
        """,
    )
    done, document, names = _test_run(root, "--timeout", "4")  # time for a slow machine to reach test_hangs
    assert done.returncode == 124, done.stderr
    assert document["state"] == "timeout"
    assert document["in_flight"] == ["test_tiny.py::test_hangs"] and document["not_run"] == ["test_tiny.py::test_never"]
    assert (document["summary"]["in_flight"], document["summary"]["not_run"]) == (1, 1)
    assert names.count("test_started") == 2 and names.count("test_finished") == 1


def test_test_run_where_pytest_dies_validates_with_its_nulls(tmp_path: Path) -> None:
    root = _project(tmp_path / "die", "import os\n\ndef test_dies():\n    os._exit(3)\n\ndef test_after():\n    pass\n")
    done, document, names = _test_run(root)
    assert done.returncode == 125, done.stderr
    assert document["state"] == "error" and document["pytest_exit_status"] is None
    assert document["stages"]["teardown"] is None and "session_finished" not in names
    assert document["in_flight"] == ["test_tiny.py::test_dies"] and document["not_run"] == ["test_tiny.py::test_after"]


# -- what the schemas reject -----------------------------------------------------------------------


def _results_document() -> dict[str, Any]:
    """A results document built by the code's own records (valid, as the negative checks' base)."""
    check: AssertionResult = {"type": "equals", "pass": True, "score": 1.0, "reason": ""}
    answered = CaseResult(
        "c1", "math", "m", 0, Status.PASS, 1.0, "2", [check], 1.5, {"prompt": 3, "completion": 1}, attempts=1
    )
    run: RunInfo = {
        "id": "0123456789ab",
        "provider": "sim",
        "models": ["m"],
        "suites": ["suite.jsonl"],
        "started_at": "2024-05-01T12:00:00+00:00",
        "settings": {"concurrency": 10},
        "state": "completed",
        "exit_code": 0,
        "exit_reason": "exit 0: pass rate 100.0% of all 1 case meets --min-pass-rate 0.0%, 0 errors (--max-errors 0)",
    }
    cases = [answered.to_dict(), CaseResult("c2", "math", "m", 0, Status.NOT_RUN).to_dict()]
    document = {"schema": SCHEMA_VERSION, "run": run, "summary": RunMetrics().summary(), "cases": cases}
    base: dict[str, Any] = json.loads(json.dumps(document))
    assert_valid(RESULTS_V, base, "the negative checks' base")
    return base


def _set(document: dict[str, Any], path: Iterable[str | int], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with the value at ``path`` replaced (``...`` as value: removed)."""
    changed = copy.deepcopy(document)
    *parents, last = path
    target: Any = changed
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("cases", 0, "status"), "maybe"),
        (("summary", "pass_rate"), ...),
        (("summary", "pass_rate"), "1.0"),
        (("summary", "total"), 1.5),
        (("summary", "surprise"), 1),
        (("summary", "by_category", "math"), {"total": 1, "passed": 1}),
        (("cases", 0, "surprise"), 1),
        (("cases", 0, "response"), None),  # an answered case has its answer
        (("cases", 1, "error"), "not run"),  # a case not run has no error
        (("cases", 0, "tokens", "prompt"), None),
        (("run", "settings"), None),
        (("schema",), 2),
    ],
)
def test_results_schema_rejects_a_broken_document(path: tuple[str | int, ...], value: Any) -> None:
    assert not RESULTS_V.is_valid(_set(_results_document(), path, value))


def test_events_and_test_results_schemas_reject_broken_records() -> None:
    case = _results_document()["cases"][0]
    finished = {"event": "task_finished", "ts": 1.7e9, "result": case}
    assert EVENTS_V.is_valid(finished)
    assert not EVENTS_V.is_valid(_set(finished, ("result", "status"), "maybe"))  # the case record is results'
    assert not EVENTS_V.is_valid(_set(finished, ("event",), "task_done"))
    assert not EVENTS_V.is_valid(_set(finished, ("ts",), ...))
    assert not EVENTS_V.is_valid(
        {"event": "run_finished", "ts": 1.7e9, "state": "running", "message": "", "exit_code": 0}
    )
    summary = {"event": "summary", "exit_code": 0, **RunMetrics().summary()}
    assert EVENTS_V.is_valid(summary)
    assert not EVENTS_V.is_valid(_set(summary, ("exit_code",), ...))
    assert not EVENTS_V.is_valid(_set(summary, ("pass_rate",), ...))
    assert not EVENTS_V.is_valid(_set(summary, ("surprise",), 1))

    test = {"id": "t.py::a", "outcome": "passed", "duration": 0.1, "message": ""}
    counts = dict.fromkeys((o.value for o in TestOutcome), 0)
    document = {
        "schema": SCHEMA_VERSION,
        "kind": "pytest",
        "state": "completed",
        "message": "",
        "exit_code": 0,
        "pytest_exit_status": 0,
        "processes_killed": 0,
        "replayed": False,
        "command": ["python", "-m", "pytest"],
        "started_at": "2024-05-01T12:00:00+00:00",
        "summary": {
            **counts,
            "total": 1,
            "passed": 1,
            "in_flight": 0,
            "not_run": 0,
            "duration_seconds": 1.0,
            "tests_per_second": 1.0,
        },
        "stages": {"startup": 0.2, "collection": 0.1, "run": 0.1, "teardown": None},
        "tests": [test],
        "in_flight": [],
        "not_run": [],
    }
    assert_valid(TEST_RESULTS_V, document, "a test results document")
    assert not TEST_RESULTS_V.is_valid(_set(document, ("tests", 0, "outcome"), "maybe"))
    assert not TEST_RESULTS_V.is_valid(_set(document, ("state",), "running"))
    assert not TEST_RESULTS_V.is_valid(_set(document, ("summary", "in_flight"), ...))
    assert not TEST_RESULTS_V.is_valid(_set(document, ("stages", "setup"), 0.1))
