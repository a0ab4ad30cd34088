"""The dashboard's pages for what users reported: a test run's page, its pass rate and speed in
the history, HTML 404s, the runs offered to compare with, and the start forms without JavaScript."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import arithmetic_cases, local_config, until_done

from evalrun.server import ServerConfig, create_app
from evalrun.sim import SimProcess

#: Two passed, one skipped, one xfailed, one xpassed (not strict), one failed.
MIXED = """import pytest

def test_one():
    pass

def test_two():
    pass

@pytest.mark.skip(reason="not on this machine")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfailed():
    assert False

@pytest.mark.xfail(reason="fixed since")
def test_xpassed():
    pass

def test_broken():
    assert 1 + 1 == 3, "arithmetic is off"
"""


@pytest.fixture(scope="module")
def test_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str, dict[str, Any]]]:
    """One test run of ``MIXED`` started through the API, finished: the client, its id, its results."""
    root = tmp_path_factory.mktemp("testrun")
    (root / "test_mixed.py").write_text(MIXED)
    with TestClient(create_app(ServerConfig(root=root))) as client:
        started = client.post("/api/results/run-tests", json={"pytest_args": ["test_mixed.py"], "timeout": 60})
        assert started.status_code == 200
        until_done(client, started.json()["progress_endpoint"])
        run_id = started.json()["run_id"]
        results = client.get(f"/api/runs/{run_id}/results").json()
        assert results["summary"]["passed"] == 2 and results["summary"]["failed"] == 1
        yield client, run_id, results


def test_a_test_runs_page_shows_its_results(test_run: tuple[TestClient, str, dict[str, Any]]) -> None:
    client, run_id, results = test_run
    answer = client.get(f"/runs/{run_id}")
    assert answer.status_code == 200
    page = answer.text
    assert "This run left no results" not in page
    assert " ·  · " not in page  # no empty provider and models in the line under the title
    assert 'class="state failed"' in page  # how it ended
    assert results["message"] and results["message"] in page  # its exit reason
    counts = dict(re.findall(r'data-outcome="(\w+)">(\d+)<', page))
    assert counts == {"passed": "2", "failed": "1", "skipped": "1", "xfailed": "1", "xpassed": "1", "error": "0"}
    assert f"{results['summary']['duration_seconds']:.2f} s" in page
    stages = dict(re.findall(r'data-stage="(\w+)">([\d.]+) s<', page))
    assert set(stages) == {name for name, seconds in results["stages"].items() if seconds is not None} != set()
    assert "test_mixed.py::test_broken" in page and "arithmetic is off" in page  # the failure, with its message
    assert "not on this machine" in page  # a skip's reason


def test_a_test_runs_pass_rate_leaves_skips_and_xfails_out(test_run: tuple[TestClient, str, dict[str, Any]]) -> None:
    client, run_id, _ = test_run
    [row] = client.get("/api/runs", params={"kind": "test"}).json()["runs"]
    # passed and xpassed (3) over those plus the failed (4); the skip and the xfail are no verdict
    assert row["id"] == run_id and row["pass_rate"] == 0.75
    assert row["passed"] == 3 and row["failed"] == 1
    dashboard = client.get("/").text
    history_row = re.search(rf'<a href="/runs/{run_id}">.*?</tr>', dashboard, re.S)
    assert history_row is not None and "75.0%" in history_row.group(0)
    assert "75.0%" in client.get(f"/runs/{run_id}").text


def test_a_test_runs_speed_is_tests_over_its_duration(test_run: tuple[TestClient, str, dict[str, Any]]) -> None:
    client, _, results = test_run
    summary = results["summary"]
    assert summary["duration_seconds"] > 0
    assert summary["tests_per_second"] == round(len(results["tests"]) / summary["duration_seconds"], 2)
    [row] = client.get("/api/runs", params={"kind": "test"}).json()["runs"]
    assert row["cases_per_second"] == summary["tests_per_second"]


def test_a_page_that_finds_nothing_is_an_html_404(tmp_path: Path) -> None:
    with TestClient(create_app(ServerConfig(root=tmp_path))) as client:
        for path, named in (
            ("/runs/nope", "nope"),
            ("/runs/0123456789ab", "0123456789ab"),
            ("/compare?a=nope&b=x", "nope"),
        ):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html"), path
            assert "<h1>Not found</h1>" in answer.text and f"&#39;{named}&#39;" in answer.text
            assert '<a href="/">' in answer.text and str(tmp_path) not in answer.text
        api = client.get("/api/runs/nope")  # the API's 404s stay JSON
        assert api.status_code == 404 and api.headers["content-type"] == "application/json"


def test_a_run_is_compared_only_with_runs_started_before_it(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    with TestClient(create_app(ServerConfig(root=tmp_path, config=str(tmp_path / "config.toml")))) as client:
        ids = []
        for _ in range(3):
            started = client.post(
                "/api/results/run-evaluations", json={"provider": "local", "cases": arithmetic_cases(2)}
            )
            assert started.status_code == 200
            until_done(client, started.json()["progress_endpoint"])
            ids.append(started.json()["run_id"])
            time.sleep(0.01)  # started_at apart
        first, middle, last = ids
        offered = re.findall(r'<option value="([0-9a-f]{12})">', client.get(f"/runs/{middle}").text)
        assert offered == [first]
        offered = re.findall(r'<option value="([0-9a-f]{12})">', client.get(f"/runs/{last}").text)
        assert offered == [middle, first]
        assert 'name="a"' not in client.get(f"/runs/{first}").text  # none earlier: no form


def test_the_start_forms_work_without_javascript(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim)
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    with TestClient(create_app(ServerConfig(root=tmp_path, config=str(tmp_path / "config.toml")))) as client:
        dashboard = client.get("/").text
        assert 'method="post" action="/start/eval"' in dashboard and 'method="post" action="/start/tests"' in dashboard
        form = {"pytest_args": "test_ok.py -q", "timeout": "60"}
        started = client.post("/start/tests", data=form, follow_redirects=False)
        assert started.status_code == 303 and re.fullmatch(r"/runs/[0-9a-f]{12}", started.headers["location"])
        row = client.get("/api/runs/" + started.headers["location"].rsplit("/", 1)[1]).json()
        assert row["kind"] == "test" and row["origin"] == "server"  # known at once, recorded or not yet
        until_done(client, f"/api/results/test-progress/{row['session_id']}")
        [listed] = client.get("/api/runs", params={"kind": "test"}).json()["runs"]
        assert started.headers["location"] == f"/runs/{listed['id']}"
        refused = client.post("/start/eval", data={"provider": "local", "concurrency": "0"})
        assert refused.status_code == 422 and "concurrency: " in refused.text and "must be at least 1" in refused.text
        elsewhere = client.post(
            "/start/tests", data=form, headers={"origin": "http://evil.example"}, follow_redirects=False
        )
        assert elsewhere.status_code == 403
        assert len(client.get("/api/runs", params={"kind": "test"}).json()["runs"]) == 1  # it started nothing
