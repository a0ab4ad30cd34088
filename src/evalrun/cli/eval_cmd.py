"""``evalrun eval PROVIDER``: run suites against a provider and report."""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from ..exitcodes import ExitCode
from ..locations import HISTORY_DIR
from ._common import fail, user_errors

_RUN = "Run"
_SELECT = "Select cases"
_REPORT = "Reports"


def eval_command(
    provider: Annotated[str | None, typer.Argument(help="Provider profile (config.toml): sim, groq, openai…")] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option(
            "--suite", "-s", help="Suite file (repeatable); default: the bundled sample.", rich_help_panel=_RUN
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Model (repeatable); default: the profile's.", rich_help_panel=_RUN),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Most calls in flight at once.", rich_help_panel=_RUN)
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Client-side requests per minute.", rich_help_panel=_RUN)] = None,
    tpm: Annotated[int | None, typer.Option(help="Client-side tokens per minute.", rich_help_panel=_RUN)] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the cache.", rich_help_panel=_RUN)
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Write the cache but do not read it.", rich_help_panel=_RUN)
    ] = False,
    cache_dir: Annotated[str | None, typer.Option(help="Cache directory.", rich_help_panel=_RUN)] = None,
    cache_url: Annotated[
        str | None, typer.Option(help="A Redis cache shared by runners: redis://host:6379/0.", rich_help_panel=_RUN)
    ] = None,
    cache_fallback: Annotated[
        str | None,
        typer.Option(help="Redis unreachable at the start: none (exit 2) | local (the disk).", rich_help_panel=_RUN),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds for the whole run (exit 124).", rich_help_panel=_RUN)
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds an attempt may take in all (connect, send, the whole answer).", rich_help_panel=_RUN
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(help="Retries per call after a failure (0: none); 429s are timed.", rich_help_panel=_RUN),
    ] = None,
    rate_limit_wait: Annotated[
        float | None,
        typer.Option(help="Seconds a call keeps retrying 429s (default 600).", rich_help_panel=_RUN),
    ] = None,
    repeat: Annotated[int | None, typer.Option(help="Run each case K times.", rich_help_panel=_RUN)] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Only this category (repeatable).", rich_help_panel=_SELECT)
    ] = None,
    filter: Annotated[
        str | None, typer.Option("--filter", help="Only case ids matching this regex.", rich_help_panel=_SELECT)
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N cases.", rich_help_panel=_SELECT)] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="I/N: the I-th of N shares of the cases, stable by id (then evalrun merge).", rich_help_panel=_SELECT
        ),
    ] = None,
    min_pass_rate: Annotated[
        float | None, typer.Option(help="Exit 1 below this pass rate (default 1.0).", rich_help_panel=_REPORT)
    ] = None,
    max_errors: Annotated[
        int | None, typer.Option(help="Exit 3 above this many errors (default 0).", rich_help_panel=_REPORT)
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write results JSON here.", rich_help_panel=_REPORT)
    ] = None,
    junit: Annotated[str | None, typer.Option(help="Write JUnit XML here.", rich_help_panel=_REPORT)] = None,
    summary_md: Annotated[
        str | None, typer.Option(help="Write a Markdown summary here.", rich_help_panel=_REPORT)
    ] = None,
    events: Annotated[
        str | None, typer.Option(help="Write every event as JSON lines here.", rich_help_panel=_REPORT)
    ] = None,
    metrics_file: Annotated[
        str | None,
        typer.Option(help="Write Prometheus metrics here at the end (textfile collector).", rich_help_panel=_REPORT),
    ] = None,
    html: Annotated[
        str | None,
        typer.Option(
            help="Write the run as one self-contained HTML page here (evalrun report).", rich_help_panel=_REPORT
        ),
    ] = None,
    history_dir: Annotated[
        str | None,
        typer.Option(
            help=f"Record the run here (evalrun runs); '' records none. [default: {HISTORY_DIR}]",
            rich_help_panel=_REPORT,
        ),
    ] = None,
    progress: Annotated[
        str | None, typer.Option(help="auto | rich | plain | json | none", rich_help_panel=_REPORT)
    ] = None,
    config: Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")] = None,
) -> None:
    """Run evaluation suites against a provider. Exit 0 pass, 1 below threshold, 2 bad input,
    3 too many provider errors, 124 timeout, 130 interrupted, 143 terminated."""
    from ..display import make_display
    from ..display.eval_tables import print_outcome
    from ..interrupts import Stopped, stops_on_signals
    from ..runner import Runner
    from ..schema import RunKind
    from ..settings import load_settings

    if no_cache and refresh:
        raise fail(["--no-cache and --refresh contradict each other: --no-cache neither reads nor writes"])
    with user_errors():
        settings = load_settings(
            config,
            provider=provider,
            suites=tuple(suite or ()),
            models=tuple(model or ()),
            concurrency=concurrency,
            rpm=rpm,
            tpm=tpm,
            cache="off" if no_cache else "refresh" if refresh else None,
            cache_dir=cache_dir,
            cache_url=cache_url,
            cache_fallback=cache_fallback,
            timeout=timeout,
            request_timeout=request_timeout,
            retries=retries,
            rate_limit_wait=rate_limit_wait,
            repeat=repeat,
            categories=tuple(category or ()),
            filter=filter,
            limit=limit,
            shard=shard,
            min_pass_rate=min_pass_rate,
            max_errors=max_errors,
            output=output,
            junit=junit,
            summary_md=summary_md,
            events=events,
            metrics_file=metrics_file,
            html=html,
            history_dir=history_dir,
            progress=progress,
        )
        runner = Runner(settings)
    try:
        with stops_on_signals(settings.timeout), user_errors():
            runner.prepare()
    except Stopped as stop:  # Ctrl-C, SIGTERM or the timeout while the suites were checked
        raise fail([stop.reason], stop.code) from None
    display = make_display(settings.progress, RunKind.EVAL)
    # The process ends with the run: the collector need not walk start-up's objects again and
    # again (the run's own garbage is still collected). 10-90 ms of CPU a run.
    gc.freeze()
    try:
        result = runner.subscribe(display).run_sync(handle_signals=True)
    except KeyboardInterrupt:  # before the run could watch for it (while starting up)
        raise fail(["interrupted before the run started"], ExitCode.INTERRUPTED) from None
    except OSError as exc:  # an unwritable results path or cache directory
        raise fail([f"{exc.filename or 'file'}: {exc.strerror or exc}"]) from None
    finally:
        display.close()
    print_outcome(result, settings)
    raise typer.Exit(int(result.exit_code))
