"""Running the simulated provider: in the foreground (``evalrun sim``) or as a child process.

``evalrun eval sim``, ``bench`` and the tests start it as a child process so that it never
competes with the engine for the interpreter lock; the child exits when its parent's pipe closes,
so it cannot outlive a crashed parent.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from types import TracebackType
from typing import Any

import httpx

from .server import SimConfig, SimServer

__all__ = ["SimProcess", "serve"]


async def _serve(config: SimConfig, host: str, port: int, ready: Callable[[int], None], watch_stdin: bool) -> None:
    server = SimServer(config)
    await server.start(host, port)
    ready(server.port)
    if not watch_stdin:
        await server.serve_forever()
        return
    loop = asyncio.get_running_loop()
    # The parent keeps our stdin open; when it goes away (exit, crash, kill), so do we.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


def serve(
    config: SimConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[int], None] | None = None,
    watch_stdin: bool = False,
) -> None:
    """Serve until interrupted (or, with ``watch_stdin``, until stdin closes)."""
    try:
        asyncio.run(_serve(config, host, port, ready or (lambda _: None), watch_stdin))
    except KeyboardInterrupt:
        pass


def _child_main() -> None:
    config = SimConfig(**json.loads(sys.argv[1]))

    def ready(port: int) -> None:
        print(json.dumps({"port": port}), flush=True)

    serve(config, ready=ready, watch_stdin=True)


class SimProcess:
    """The simulated provider in a child process, as a context manager giving its ``base_url``."""

    def __init__(self, config: SimConfig | None = None, **settings: Any) -> None:
        self.config = config or SimConfig(**settings)
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SimProcess:
        code = "from evalrun.sim.process import _child_main; _child_main()"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(asdict(self.config))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the simulated provider failed to start")
        self.port = int(json.loads(line)["port"])
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def stats(self) -> dict[str, Any]:
        """What the server has seen (``GET /stats``)."""
        result: dict[str, Any] = httpx.get(f"{self.root_url}/stats", timeout=5, trust_env=False).json()
        return result

    def reset_stats(self) -> None:
        httpx.post(f"{self.root_url}/stats/reset", timeout=5, trust_env=False)

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change the server's behaviour live (latency, fault rates, seed)."""
        response = httpx.post(f"{self.root_url}/control", json=changes, timeout=5, trust_env=False)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
