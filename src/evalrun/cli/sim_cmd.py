"""``evalrun sim``: run the simulated provider in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import fail


def sim_command(
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8089,
    host: Annotated[str, typer.Option(help="Address; loopback unless you mean otherwise.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Latency of each answer.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Uniform jitter around the latency.")] = 0.0,
    rate_429: Annotated[float, typer.Option("--rate-429", help="Share of calls answered 429.")] = 0.0,
    rate_500: Annotated[float, typer.Option("--rate-500", help="Share of calls answered 500.")] = 0.0,
    rate_timeout: Annotated[float, typer.Option(help="Share of calls never answered.")] = 0.0,
    rate_malformed: Annotated[float, typer.Option(help="Share of calls with a broken body.")] = 0.0,
    retry_after_ms: Annotated[float, typer.Option(help="retry-after sent with a random 429.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault generator.")] = 0,
    rpm: Annotated[float, typer.Option(help="Requests a minute the key may make (0: unlimited).")] = 0.0,
    tpm: Annotated[float, typer.Option(help="Tokens a minute the key may spend (0: unlimited).")] = 0.0,
    max_inflight: Annotated[int, typer.Option(help="Chat requests served at once; more get 429 (0: no cap).")] = 0,
) -> None:
    """Serve the simulated OpenAI-compatible provider (chat completions, /stats, /control)."""
    from ..sim import SimConfig, serve

    config = SimConfig()
    try:
        config.update(
            {
                "latency_ms": latency_ms,
                "jitter_ms": jitter_ms,
                "rate_429": rate_429,
                "rate_500": rate_500,
                "rate_timeout": rate_timeout,
                "rate_malformed": rate_malformed,
                "retry_after_ms": retry_after_ms,
                "seed": seed,
                "rpm": rpm,
                "tpm": tpm,
                "max_inflight": max_inflight,
            }
        )
    except ValueError as exc:
        raise fail([str(exc)]) from None

    def ready(bound: int) -> None:
        typer.echo(
            f"evalrun sim: http://{host}:{bound}/v1 (OpenAI) and /openai/v1 (Groq); "
            f"GET /stats, POST /control; Ctrl-C stops"
        )

    serve(config, host, port, ready)
