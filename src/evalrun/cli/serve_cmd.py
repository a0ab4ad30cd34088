"""``evalrun serve``: the HTTP API (the work is in ``server/``), on uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ..locations import HISTORY_DIR
from ._common import fail


def _loopback(host: str) -> bool:
    from ..providers.base import is_loopback

    return is_loopback(f"http://[{host}]/" if ":" in host else f"http://{host}/")


def serve_command(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one, printed).", min=0, max=65535)] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar="EVALRUN_SERVE_TOKEN", help="Every endpoint but /healthz asks for 'Bearer TOKEN'."),
    ] = None,
    config: Annotated[str | None, typer.Option(help="Config file of the runs (default: ./config.toml).")] = None,
    history_dir: Annotated[str, typer.Option(help="Run history, under the working directory.")] = HISTORY_DIR,
) -> None:
    """Serve the HTTP API: start runs, poll them by session id, follow their events, list past runs."""
    import socket
    from pathlib import Path

    if not _loopback(host) and not token:
        raise fail(
            [f"refusing to serve on {host} without --token (or EVALRUN_SERVE_TOKEN): bind 127.0.0.1, or set one"]
        )
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as exc:
        raise fail([f"evalrun serve needs its extra: pip install 'evalrun[serve]' ({exc.name} is missing)"]) from None
    try:
        listening = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise fail([f"cannot listen on {host}:{port}: {exc.strerror or exc}"]) from None
    # Accepted connections inherit it. Without it, on a socket handed to uvicorn, a response's head
    # and body leave as two segments, the second held until the client's delayed ACK: 44 ms a poll.
    listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound = listening.getsockname()[1]
    app = create_app(ServerConfig(root=Path(os.getcwd()), token=token or None, config=config, history_dir=history_dir))
    typer.echo(f"evalrun serve: http://{host}:{bound} (API docs at /docs, metrics at /metrics); Ctrl-C stops")
    # Open event streams (a dashboard tab) would hold Ctrl-C up until they close: 5 s, then the
    # runs are stopped (each ends interrupted, its results written) and the server exits.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    server.run(sockets=[listening])
