"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from evalrun.settings import Settings, load_settings
from evalrun.sim import SimProcess
from evalrun.sim.suites import arithmetic_cases as _arithmetic_cases
from evalrun.sim.suites import write_suite as _write_suite


def write_suite(path: Path, cases: list[dict[str, Any]]) -> Path:
    return _write_suite(path, cases)


def arithmetic_cases(n: int, category: str = "math") -> list[dict[str, Any]]:
    return list(_arithmetic_cases(n, (category,)))


def local_config(path: Path, sim: SimProcess, **provider: Any) -> Path:
    """A config.toml whose profile ``local`` points at the test's simulated provider."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in provider.items())
    path.write_text(f'[providers.local]\nbase_url = "{sim.base_url}"\nmodel = "sim-1"\n{extra}')
    return path


def local_settings(tmp_path: Path, sim: SimProcess, cases: list[dict[str, Any]], **overrides: Any) -> Settings:
    """Settings of a run of ``cases`` on the test's simulated provider, its cache in ``tmp_path``."""
    suite = write_suite(tmp_path / "suite.jsonl", cases)
    return load_settings(
        local_config(tmp_path / "config.toml", sim),
        env={},
        provider="local",
        suites=(str(suite),),
        cache_dir=str(tmp_path / "cache"),
        history_dir=str(tmp_path / "runs"),
        **overrides,
    )


def evalrun(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it, in ``cwd``, without the caller's ``EVALRUN_*`` settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
    return subprocess.run(
        [sys.executable, "-m", "evalrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class ServeProcess:
    """``evalrun serve --port 0`` in ``folder``, a real uvicorn process; ``url`` once it listens."""

    def __init__(self, folder: Path, *args: str, start_timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVALRUN_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "evalrun", "serve", "--port", "0", *args],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self._port(start_timeout)}"

    def _port(self, timeout: float) -> str:
        """The port of the address the server prints first; a server that prints none within
        ``timeout`` is stopped and its stderr shown (never a test that waits on a pipe forever)."""
        assert self.process.stdout is not None
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        found = re.search(r"http://127\.0\.0\.1:(\d+)", first[0]) if first else None
        if found is None:
            self.process.kill()
            _, errors = self.process.communicate(timeout=10)
            raise AssertionError(f"no address from evalrun serve in {timeout:g} s: {first} {errors}")
        return found.group(1)

    def stop(self, how: int = signal.SIGTERM) -> None:
        self.process.send_signal(how)
        self.process.wait(timeout=30)


def until_done(client: Any, path: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the progress endpoint ``path`` (a TestClient or an httpx.Client) until the run has an
    exit code; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress: dict[str, Any] = client.get(path).json()
        if "exit_code" in progress:
            return progress
        time.sleep(0.05)
    raise AssertionError(f"{path} did not finish in {timeout} s")
