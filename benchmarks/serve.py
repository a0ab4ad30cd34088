"""``evalrun serve`` under watch (issue 11): a 10,000-case run on the simulated provider while 20
clients poll its progress 10 times a second, against the same run from the command line.

    python benchmarks/serve.py [--cases 10000] [--clients 20] [--runs 3]

The simulated provider and the server are child processes; the pollers are this process's
threads, each with its own keep-alive connection on a bare socket. Reported: the progress endpoint's latency as
the pollers saw it (p50, p99, max over every poll of every run), and the run's cases/s served
against from the CLI, medians of ``--runs``, each pair run back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from evalrun.sim import SimProcess
from evalrun.sim.suites import arithmetic_cases, write_suite

LATENCY_MS, CONCURRENCY = 50, 50


def _evalrun() -> list[str]:
    script = Path(sys.executable).with_name("evalrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "evalrun"]


def _cli_run(folder: Path) -> float:
    results = folder / "cli-results.json"
    subprocess.run(
        [*_evalrun(), "eval", "bench", "--suite", "suite.jsonl", "--progress", "none", "--output", str(results)],
        cwd=folder,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    summary = json.loads(results.read_text())["summary"]
    assert summary["passed"] == summary["total"], summary
    return float(summary["cases_per_second"])


class _Server:
    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [*_evalrun(), "serve", "--port", "0"], cwd=folder, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:(\d+)", self.process.stdout.readline())
        assert found, "the server did not say where it listens"
        self.url = f"http://127.0.0.1:{found.group(1)}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class _RawClient:
    """A keep-alive GET over a bare socket. The pollers share this process's interpreter with one
    another: httpx's own CPU per request (a millisecond) made their queue for it part of the
    latency measured, which is the server's to answer for, not theirs."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self._socket: socket.socket | None = None

    def get(self, path: str) -> bytes:
        if self._socket is None:
            self._socket = socket.create_connection(self._address)
        host = f"{self._address[0]}:{self._address[1]}"  # a loopback Host: the server answers no other name
        self._socket.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += self._socket.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:40]
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += self._socket.recv(65536)
        return body

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


def _poll(
    client: _RawClient,
    path: str,
    every: float,
    start: threading.Barrier,
    stop: threading.Event,
    latencies: list[float],
) -> None:
    start.wait()  # every client made first: making one holds this process's GIL for tens of ms
    next_at = time.monotonic()
    while not stop.is_set():
        started = time.perf_counter()
        client.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        next_at += every
        time.sleep(max(0.0, next_at - time.monotonic()))
    client.close()


def _served_run(server: _Server, clients: int) -> tuple[float, list[float]]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        started = client.post("/api/results/run-evaluations", json={"provider": "bench", "suites": ["suite.jsonl"]})
        started.raise_for_status()
        path = started.json()["progress_endpoint"]
        stop, start, latencies = threading.Event(), threading.Barrier(clients), list[float]()
        pollers = [
            threading.Thread(
                target=_poll, args=(httpx.Client(base_url=server.url, timeout=10), path, 0.1, start, stop, latencies)
            )
            for _ in range(clients)
        ]
        for poller in pollers:
            poller.start()
        while "exit_code" not in (progress := client.get(path).json()):
            time.sleep(0.2)
        stop.set()
        for poller in pollers:
            poller.join()
    summary = progress["summary"]
    assert summary["passed"] == summary["total"], summary
    return float(summary["cases_per_second"]), latencies


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalrun-serve-") as name, SimProcess(latency_ms=LATENCY_MS) as sim:
        folder = Path(name)
        write_suite(folder / "suite.jsonl", arithmetic_cases(args.cases, ("a", "b", "c", "d"), "s{:06d}"))
        (folder / "config.toml").write_text(
            f'[run]\nconcurrency = {CONCURRENCY}\ncache = "off"\nmin_pass_rate = 0\n\n'
            f'[providers.bench]\nbase_url = "{sim.base_url}"\nmodel = "sim-1"\n'
        )
        server = _Server(folder)
        cli_rates, served_rates, latencies = [], [], []
        try:
            for run in range(args.runs):
                cli_rates.append(_cli_run(folder))
                rate, polled = _served_run(server, args.clients)
                served_rates.append(rate)
                latencies += polled
                line = {"run": run + 1, "cli_cases_per_s": cli_rates[-1], "served_cases_per_s": rate}
                line |= {"polls": len(polled), "p99_ms": round(_percentile(polled, 0.99), 1)}
                print(json.dumps(line), flush=True)
        finally:
            server.stop()
    cli, served = statistics.median(cli_rates), statistics.median(served_rates)
    report: dict[str, Any] = {
        "cases": args.cases,
        "clients": args.clients,
        "poll_every_s": 0.1,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "polls": len(latencies),
        "progress_p50_ms": round(_percentile(latencies, 0.5), 2),
        "progress_p99_ms": round(_percentile(latencies, 0.99), 2),
        "progress_max_ms": round(max(latencies), 2),
        "cli_cases_per_s": cli,
        "served_cases_per_s": served,
        "served_over_cli": round(served / cli, 3),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))
    ok = report["progress_p99_ms"] < 50 and report["served_over_cli"] >= 0.9
    print(f"targets (p99 < 50 ms, throughput >= 0.90 x CLI): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
