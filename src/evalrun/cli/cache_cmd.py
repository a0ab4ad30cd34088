"""``evalrun cache stats|clear|prune|explain``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import fail, user_errors

if TYPE_CHECKING:
    from ..cache import ResponseCache

app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)

ConfigOption = Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")]
CacheDirOption = Annotated[str | None, typer.Option(help="Cache directory.")]


@contextmanager
def _open_cache(config: str | None, cache_dir: str | None) -> Iterator[tuple[ResponseCache, str]]:
    from ..cache import ResponseCache
    from ..config import load_settings

    with user_errors():
        settings = load_settings(config, cache_dir=cache_dir)
    cache = ResponseCache(settings.cache_dir)
    try:
        yield cache, settings.cache_dir
    finally:
        cache.close()


@app.command("stats")
def stats(config: ConfigOption = None, cache_dir: CacheDirOption = None) -> None:
    """Entries and size of the cache."""
    with _open_cache(config, cache_dir) as (cache, directory):
        info = cache.stats()
    typer.echo(f"{directory}: {info['entries']:,} entries, {info['bytes'] / 1e6:.1f} MB")


@app.command("clear")
def clear(config: ConfigOption = None, cache_dir: CacheDirOption = None) -> None:
    """Remove every entry."""
    with _open_cache(config, cache_dir) as (cache, directory):
        typer.echo(f"removed {cache.clear():,} entries from {directory}")


@app.command("prune")
def prune(config: ConfigOption = None, cache_dir: CacheDirOption = None) -> None:
    """Remove expired entries and trim the cache to its size limit."""
    with _open_cache(config, cache_dir) as (cache, directory):
        typer.echo(f"pruned {cache.prune():,} entries from {directory}")


@app.command("explain")
def explain(
    case_id: Annotated[str, typer.Argument(help="The case id.")],
    provider: Annotated[str | None, typer.Option(help="Provider profile.")] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", "-s", help="Suite file (repeatable).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model.")] = None,
    repeat: Annotated[int | None, typer.Option(help="The run's --repeat.")] = None,
    config: ConfigOption = None,
    cache_dir: CacheDirOption = None,
) -> None:
    """Say whether a case would hit the cache now, and if not, what changed since it was cached."""
    from ..cache import ResponseCache
    from ..config import load_settings
    from ..runner import cache_record_for
    from ..suite import load_suites

    with user_errors():
        settings = load_settings(
            config,
            provider=provider,
            suites=tuple(suite or ()),
            models=(model,) if model else (),
            cache_dir=cache_dir,
            repeat=repeat,
        )
        cases = {case.id: case for case in load_suites(settings.suite_paths(), settings.default_assert)}
    if case_id not in cases:
        raise fail([f"no case '{case_id}' in {', '.join(settings.suite_paths())}"])
    records = cache_record_for(settings, cases[case_id])
    cache = ResponseCache(settings.cache_dir)
    for record in records:
        for line in cache.explain(case_id, record):
            typer.echo(line)
    cache.close()
