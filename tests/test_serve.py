"""``evalrun serve`` (issue 11): the original system's endpoints, history, live events, cancel,
restart and resume, the security rules — through the ASGI app, and through a real uvicorn process
on an ephemeral loopback port."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import ServeProcess, arithmetic_cases, evalrun, local_config, until_done, write_suite

from evalrun.server import ServerConfig, create_app
from evalrun.sim import SimProcess

SESSION = re.compile(r"^eval_\d{10}_\d{4}$")


def _app(tmp_path: Path, sim: SimProcess, **config: Any) -> TestClient:
    local_config(tmp_path / "config.toml", sim)
    return TestClient(create_app(ServerConfig(root=tmp_path, config=str(tmp_path / "config.toml"), **config)))


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def test_the_original_evaluation_endpoints_keep_their_shapes(tmp_path: Path, sim: SimProcess) -> None:
    cases = [*arithmetic_cases(5), {"id": "wrong", "category": "text", "prompt": "repeat: hi", "expected": "ho"}]
    with _app(tmp_path, sim) as client:
        started = client.post("/api/results/run-evaluations", json={"provider": "local", "cases": cases})
        assert started.status_code == 200
        session = started.json()["session_id"]
        assert SESSION.match(session)
        assert started.json()["progress_endpoint"] == f"/api/results/evaluation-progress/{session}"
        done = until_done(client, started.json()["progress_endpoint"])
        assert done["status"] == "completed" and done["progress_percentage"] == 100.0
        assert {"message", "completed", "total", "eta_seconds", "eta_formatted", "passed", "failed"} <= set(done)
        assert done["completed"] == done["total"] == 6 and done["passed"] == 5
        metricas = done["metricas"]
        assert set(metricas) == {
            "tiempo_total_segundos",
            "prompts_por_segundo",
            "cache_hits",
            "cache_efficiency",
            "requests_concurrentes_promedio",
        }
        assert metricas["cache_efficiency"] == 0.0 and done["summary"]["passed"] == 5
        again = client.post("/api/results/run-evaluations", json={"provider": "local", "cases": cases}).json()
        warm = until_done(client, again["progress_endpoint"])
        assert warm["metricas"]["cache_hits"] == 6 and warm["metricas"]["cache_efficiency"] == 100.0  # a percentage
        results = client.get(f"/api/runs/{started.json()['run_id']}/results").json()
        assert results["schema"] == 1 and len(results["cases"]) == 6 and results["run"]["state"] == "completed"


def test_the_original_test_endpoints_run_pytest(tmp_path: Path, sim: SimProcess) -> None:
    (tmp_path / "test_small.py").write_text("def test_one():\n    pass\n\ndef test_two():\n    assert False\n")
    with _app(tmp_path, sim) as client:
        started = client.post("/api/results/run-tests", json={"pytest_args": ["test_small.py"], "timeout": 60}).json()
        assert re.match(r"^test_\d{10}_\d{4}$", started["session_id"])
        assert started["progress_endpoint"] == f"/api/results/test-progress/{started['session_id']}"
        done = until_done(client, started["progress_endpoint"], timeout=60)
        assert done["status"] == "failed" and done["exit_code"] == 1
        assert done["summary"]["passed"] == 1 and done["summary"]["failed"] == 1
        assert done["exit_reason"] == "1 failed, 1 passed"  # pytest's own words
        row = client.get(f"/api/runs/{started['run_id']}").json()
        assert "test_small.py" in row["settings"]["command"] and row["summary"]["failed"] == 1
        assert row["origin"] == "server" and row["session_id"] == started["session_id"]
        listed = client.get("/api/runs", params={"kind": "test"}).json()["runs"]
        assert [run["id"] for run in listed] == [started["run_id"]] and listed[0]["state"] == "failed"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"concurrency": 0}, ["body", "concurrency"], "must be at least 1"),
        ({"min_pass_rate": 2}, ["body", "min_pass_rate"], "from 0 to 1"),
        ({"surprise": 1}, ["body", "surprise"], "Extra inputs"),
        ({"concurrency": "many"}, ["body", "concurrency"], "integer"),
        ({"suites": ["../outside.jsonl"]}, ["body", "suites", 0], "'..'"),
        ({"suites": ["/etc/passwd"]}, ["body", "suites", 0], "outside the server's folder"),
        ({"cases": [{"prompt": "a", "expected": "b"}, {"prompt": "c", "assert": [{"type": "nope"}]}]},
         ["body", "cases", 1], "nope"),
        ({"provider": "nosuch"}, ["body"], "unknown provider 'nosuch'"),
    ],
)  # fmt: skip
def test_a_bad_body_is_a_422_naming_the_field(
    tmp_path: Path, sim: SimProcess, body: dict[str, Any], field: list[Any], words: str
) -> None:
    with _app(tmp_path, sim) as client:
        refused = client.post("/api/results/run-evaluations", json=body)
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert problem["loc"] == field and words in problem["msg"]


def test_unknown_sessions_and_runs_are_404s_and_big_bodies_413s(tmp_path: Path, sim: SimProcess) -> None:
    with _app(tmp_path, sim, max_body_bytes=10_000) as client:
        assert client.get("/api/results/evaluation-progress/eval_1_1").status_code == 404
        assert client.get("/api/results/test-progress/test_1_1").status_code == 404
        assert client.get("/api/runs/0123456789ab").status_code == 404
        assert client.get("/api/runs/..%2F..%2Fetc").status_code == 404
        cases = [{"prompt": "x" * 200, "expected": "y"}] * 100
        assert client.post("/api/results/run-evaluations", json={"cases": cases}).status_code == 413


def test_a_token_guards_every_endpoint_but_healthz(tmp_path: Path, sim: SimProcess) -> None:
    with _app(tmp_path, sim, token="s3cret") as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/api/runs", "/metrics", "/api/results/evaluation-progress/eval_1_1", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        for path in ("/api/runs", "/docs", "/openapi.json"):
            assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/?token=wrong").status_code == 401
        opened = client.get("/?token=s3cret")  # the dashboard opened once with its token...
        assert opened.status_code == 200 and "evalrun_token" in opened.headers["set-cookie"]
        assert client.get("/api/runs").status_code == 200  # ...a cookie carries it from then on
        assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 200  # a token: any name


def test_cancel_stops_a_run_and_keeps_what_finished(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=100)
    with _app(tmp_path, sim) as client:
        body = {"provider": "local", "cases": arithmetic_cases(200), "concurrency": 2}
        started = client.post("/api/results/run-evaluations", json=body).json()
        _until(lambda: client.get(started["progress_endpoint"]).json()["completed"] >= 4)  # a slow machine's start
        assert client.post(f"/api/runs/{started['run_id']}/cancel").status_code == 200
        done = until_done(client, started["progress_endpoint"])
        assert done["status"] == "interrupted" and done["exit_code"] == 130
        assert 0 < done["summary"]["passed"] < 200 and done["summary"]["not_run"] > 0
        row = client.get(f"/api/runs/{started['run_id']}").json()
        assert row["state"] == "interrupted" and row["origin"] == "server"
        assert row["settings"]["concurrency"] == 2 and row["summary"]["not_run"] == done["summary"]["not_run"]


def test_a_cli_run_is_listed_with_the_servers_own(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(3))
    assert evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--progress", "none").returncode == 0
    with _app(tmp_path, sim) as client:
        [run] = client.get("/api/runs").json()["runs"]
        assert run["origin"] == "cli" and run["state"] == "completed" and run["passed"] == 3
        assert client.get(f"/api/runs/{run['id']}/results").json()["summary"]["passed"] == 3


def test_runs_against_one_provider_share_one_concurrency_limit(tmp_path: Path, sim: SimProcess) -> None:
    sim.control(latency_ms=50)
    with _app(tmp_path, sim) as client:
        body = {"provider": "local", "concurrency": 4}
        first = client.post("/api/results/run-evaluations", json={**body, "cases": arithmetic_cases(40)}).json()
        second = client.post("/api/results/run-evaluations", json={**body, "cases": arithmetic_cases(40, "b")}).json()
        for started in (first, second):
            assert until_done(client, started["progress_endpoint"])["summary"]["passed"] == 40
    assert 2 <= sim.stats()["peak_inflight"] <= 4  # two runs of 4, never more than one run's 4


# -- a real uvicorn process ----------------------------------------------------------------------


class Server(ServeProcess):
    def __init__(self, folder: Path, *args: str) -> None:
        super().__init__(folder, *args)
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def stop(self, how: int = signal.SIGTERM) -> None:
        self.client.close()
        super().stop(how)


@pytest.fixture
def serving(tmp_path: Path, sim: SimProcess) -> Iterator[Server]:
    local_config(tmp_path / "config.toml", sim)
    server = Server(tmp_path)
    yield server
    if server.process.poll() is None:
        server.stop()


def test_events_arrive_live_over_server_sent_events(serving: Server, sim: SimProcess) -> None:
    sim.control(latency_ms=100)
    body = {"provider": "local", "cases": arithmetic_cases(20), "concurrency": 2}
    started = serving.client.post("/api/results/run-evaluations", json=body).json()
    seen: list[tuple[float, str]] = []
    with serving.client.stream("GET", started["events_endpoint"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                seen.append((time.monotonic(), line.removeprefix("event: ")))
    names = [name for _, name in seen]
    # The run's course so far first, to a follower who joins late; then what comes, as it comes.
    assert "run_started" in names and names.index("run_started") < names.index("task_finished")
    assert names[-1] == "summary" and 10 <= names.count("task_finished") <= 20
    assert "progress" in names[1:-1] and "run_finished" in names
    first_answer = next(at for at, name in seen if name == "task_finished")
    assert seen[-1][0] - first_answer > 0.5  # the first answers came while the run still had 0.9 s to go


def test_a_follower_who_joins_late_gets_the_whole_counts_per_category(serving: Server, sim: SimProcess) -> None:
    sim.control(latency_ms=100)
    from evalrun.sim.suites import arithmetic_cases as in_categories

    cases = list(in_categories(20, ("math", "more")))
    body = {"provider": "local", "cases": cases, "concurrency": 2}
    started = serving.client.post("/api/results/run-evaluations", json=body).json()
    _until(lambda: serving.client.get(started["progress_endpoint"]).json()["completed"] >= 6)
    with serving.client.stream("GET", started["events_endpoint"]) as stream:
        lines = stream.iter_lines()
        for line in lines:
            if line == "event: progress":
                first = json.loads(next(lines).removeprefix("data: "))
                break
    categories = first["categories"]
    assert set(categories) == {"math", "more"} and categories["math"]["total"] == 10
    assert sum(c["done"] for c in categories.values()) >= 6  # what finished before it joined is counted


def test_a_run_cut_by_a_killed_server_is_interrupted_after_a_restart_and_resumes_from_the_cache(
    tmp_path: Path, serving: Server, sim: SimProcess
) -> None:
    sim.control(latency_ms=100)
    body = {"provider": "local", "cases": arithmetic_cases(60), "concurrency": 2}
    started = serving.client.post("/api/results/run-evaluations", json=body).json()
    _until(lambda: serving.client.get(started["progress_endpoint"]).json()["completed"] >= 6)
    serving.stop(signal.SIGKILL)
    restarted = Server(tmp_path)
    try:
        row = restarted.client.get(f"/api/runs/{started['run_id']}").json()
        assert row["state"] == "interrupted"
        sim.control(latency_ms=0)
        resumed = restarted.client.post(f"/api/runs/{started['run_id']}/resume").json()
        assert resumed["run_id"] != started["run_id"]
        done = until_done(restarted.client, resumed["progress_endpoint"])
        assert done["summary"]["passed"] == 60 and done["summary"]["cache_hits"] >= 6
        metrics = restarted.client.get("/metrics").text
        assert re.search(r'evalrun_cases_total\{.*status="pass".*\} ', metrics)
    finally:
        restarted.stop()


def test_serving_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    done = evalrun(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0", timeout=30)
    assert done.returncode == 2 and "refusing to serve on 0.0.0.0 without --token" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_openapi_document_lists_the_original_paths(tmp_path: Path, sim: SimProcess) -> None:
    with _app(tmp_path, sim) as client:
        paths = set(client.get("/openapi.json").json()["paths"])
        assert client.get("/docs").status_code == 200
    assert {
        "/api/results/run-evaluations",
        "/api/results/evaluation-progress/{session_id}",
        "/api/results/run-tests",
        "/api/results/test-progress/{session_id}",
    } <= paths
    assert json.dumps(sorted(paths))  # every path is a string


def test_an_api_key_appears_in_no_response_event_or_file(
    tmp_path: Path, sim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-SERVE-SECRET-0123456789"
    sim.control(api_key=key)
    monkeypatch.setenv("SERVE_TEST_KEY", key)  # the server's environment, inherited by its runs' process
    local_config(tmp_path / "config.toml", sim, api_key_env="SERVE_TEST_KEY")
    with TestClient(create_app(ServerConfig(root=tmp_path, config=str(tmp_path / "config.toml")))) as client:
        started = client.post("/api/results/run-evaluations", json={"provider": "local", "cases": arithmetic_cases(4)})
        done = until_done(client, started.json()["progress_endpoint"])
        assert done["summary"]["passed"] == 4  # the key was sent, and it worked
        seen = [
            json.dumps(done),
            client.get(f"/api/runs/{started.json()['run_id']}").text,
            client.get(f"/api/runs/{started.json()['run_id']}/results").text,
            client.get("/api/runs").text,
            client.get("/metrics").text,
        ]
    files = [path.read_text(errors="replace") for path in (tmp_path / ".evalrun").rglob("*") if path.is_file()]
    assert not [text for text in seen + files if key in text]


def test_a_cli_run_writes_its_metrics_for_the_textfile_collector(tmp_path: Path, sim: SimProcess) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    local_config(tmp_path / "config.toml", sim)
    write_suite(tmp_path / "s.jsonl", arithmetic_cases(5))
    done = evalrun(tmp_path, "eval", "local", "--suite", "s.jsonl", "--metrics-file", "out/evalrun.prom")
    assert done.returncode == 0, done.stderr
    families = {f.name: f for f in text_string_to_metric_families((tmp_path / "out/evalrun.prom").read_text())}
    cases = [s for s in families["evalrun_cases"].samples if s.name == "evalrun_cases_total"]
    assert sum(sample.value for sample in cases) == 5 and cases[0].labels["provider"] == "local"
    requests = [s for s in families["evalrun_requests"].samples if s.name == "evalrun_requests_total"]
    assert {s.labels["status"]: s.value for s in requests} == {"200": 5.0}


def test_the_review_s_abuse_cases_are_refused(tmp_path: Path, sim: SimProcess) -> None:
    """pytest options that write files or load code, a Host that is not loopback (DNS rebinding),
    a chunked body over the limit, inline cases refused without a trace on disk."""
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    with _app(tmp_path, sim, max_body_bytes=10_000) as client:
        for args, index in ((["test_ok.py", "--junitxml=/tmp/evil.xml"], 1), (["-p", "evil_plugin"], 0)):
            refused = client.post("/api/results/run-tests", json={"pytest_args": args})
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "pytest_args", index]
        assert client.get("/api/runs", headers={"host": "evil.example:8000"}).status_code == 403
        chunks = (b'{"cases": [' + b'{"prompt": "x", "expected": "y"},' * 400 + b'{"prompt": "x"}]}',)
        assert client.post("/api/results/run-evaluations", content=iter(chunks)).status_code == 413
        bad = {"cases": [{"prompt": "a", "assert": [{"type": "nope"}]}]}
        assert client.post("/api/results/run-evaluations", json=bad).status_code == 422
        assert not list((tmp_path / ".evalrun" / "runs").glob("*/cases.jsonl"))
        started = client.post("/api/results/run-tests", json={"pytest_args": ["test_ok.py", "-k", "ok", "-q"]}).json()
        assert client.get(f"/api/runs/{started['run_id']}").status_code == 200  # at once, before its row exists
        until_done(client, started["progress_endpoint"], timeout=60)


def test_a_test_run_at_a_time_and_case_text_cannot_break_a_page(tmp_path: Path, sim: SimProcess) -> None:
    from evalrun.pages.render import render_report
    from evalrun.schema import SCHEMA_VERSION, CaseResult, Status

    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(2)\n")
    with _app(tmp_path, sim) as client:
        first = client.post("/api/results/run-tests", json={"pytest_args": ["test_slow.py"]})
        second = client.post("/api/results/run-tests", json={"pytest_args": ["test_slow.py"]})
        assert first.status_code == 200 and second.status_code == 409
        until_done(client, first.json()["progress_endpoint"], timeout=60)
    hostile = CaseResult("</script><!--<script>", "<b>cat</b>", "m", 0, Status.PASS, response="a & b").to_dict()
    summary: dict[str, Any] = {"pass_rate": 1.0, "total": 1, "passed": 1, "failed": 0, "errors": 0, "not_run": 0}
    summary |= {"wall_seconds": 1.0, "cases_per_second": 1.0, "cache_hits": 0, "cache_efficiency": 0.0}
    summary |= {"latency_ms": {"p50": 1.0, "p95": 1.0}, "avg_concurrency": 1.0, "peak_concurrency": 1, "retries": 0}
    summary |= {"by_category": {}}
    run = {"id": "r", "provider": "p", "models": ["m"], "suites": [], "started_at": ""}
    page = render_report({"schema": SCHEMA_VERSION, "run": run, "summary": summary, "cases": [hostile]})
    data = re.search(r'id="cases-data">(.*?)</script>', page, re.S)
    assert data is not None and json.loads(data.group(1))[0]["id"] == "</script><!--<script>"
    assert "<!--<script>" not in page and "<b>cat</b>" not in page


def test_a_poll_never_reads_a_final_state_before_the_runs_figures() -> None:
    """The run's last progress dict says ``completed`` while its reports are still being written;
    the original clients stop at ``completed`` and read ``metricas`` from that same answer."""
    from evalrun.server.sessions import Session

    progress: Any = {"status": "completed", "progress_percentage": 100.0, "completed": 3, "total": 3}
    session = Session("eval", "eval_1234567890_1234", "r1", {}, progress, cancel=lambda: None)
    assert session.snapshot()["status"] == "running" and "metricas" not in session.snapshot()
    assert json.loads(session.snapshot_json())["status"] == "running" and session.state == "running"
    session.finished = {"status": "completed", "metricas": {"cache_hits": 0}, "exit_code": 0}
    assert json.loads(session.snapshot_json())["status"] == "completed" and session.snapshot()["metricas"]


def test_comparing_a_run_the_history_does_not_know_is_a_404_naming_no_server_path(
    tmp_path: Path, sim: SimProcess
) -> None:
    with _app(tmp_path, sim) as client:
        for query in ("a=nope&b=x", "a=../../etc&b=x"):
            answer = client.get(f"/compare?{query}")
            assert answer.status_code == 404 and str(tmp_path) not in answer.text
        assert client.get("/compare").status_code == 200  # the form, to choose two runs


def test_a_charts_time_axis_ends_at_the_runs_length_in_digits_it_needs() -> None:
    from evalrun.pages.render import series_svg

    assert ">0.15 s</text>" in series_svg([(0.0, 1.0), (0.15, 3.0)], "calls in flight")  # not "0 s"
    assert ">3.4 s</text>" in series_svg([(0.0, 1.0), (3.4, 3.0)], "calls in flight")
    assert ">1,250 s</text>" in series_svg([(0.0, 1.0), (1250.0, 3.0)], "calls in flight")
