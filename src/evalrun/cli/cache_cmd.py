"""``evalrun cache stats|clear|prune|explain``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from ._common import fail, user_errors

if TYPE_CHECKING:
    from ..settings import Settings

app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)

ConfigOption = Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")]
CacheDirOption = Annotated[str | None, typer.Option(help="Cache directory.")]
CacheUrlOption = Annotated[str | None, typer.Option(help="A Redis cache instead: redis://host:6379/0.")]


def _settings(config: str | None, cache_dir: str | None, cache_url: str | None) -> Settings:
    from ..settings import load_settings

    with user_errors():
        return load_settings(config, cache_dir=cache_dir, cache_url=cache_url)


def _where(settings: Settings) -> str:
    from ..cache_admin import cache_location

    location = cache_location(settings)
    if settings.cache_url:
        from ..locations import public_url

        return public_url(location)
    return location


@contextmanager
def _usable_cache() -> Iterator[None]:
    """A cache that cannot be used is one line and exit 2, saying whether ``clear`` repairs it."""
    from ..cache import CacheUnavailable

    try:
        yield
    except CacheUnavailable as fault:
        if fault.damaged:
            advice = f"is damaged ({fault.reason}); run 'evalrun cache clear' to rebuild it"
        else:
            advice = f"cannot be used ({fault.reason})"
        raise fail([f"cache at {fault.where} {advice}"]) from None


@app.command("stats")
def stats(config: ConfigOption = None, cache_dir: CacheDirOption = None, cache_url: CacheUrlOption = None) -> None:
    """Entries and size of the cache, after checking that it is intact."""
    from ..cache_admin import store_stats

    settings = _settings(config, cache_dir, cache_url)
    with _usable_cache():
        info = anyio.run(store_stats, settings)
    typer.echo(f"{info.where}: {info.entries:,} entries, {info.bytes / 1e6:.1f} MB")


@app.command("clear")
def clear(config: ConfigOption = None, cache_dir: CacheDirOption = None, cache_url: CacheUrlOption = None) -> None:
    """Remove every entry; a damaged cache is rebuilt empty."""
    from ..cache_admin import clear_store

    settings = _settings(config, cache_dir, cache_url)
    with _usable_cache():
        cleared = anyio.run(clear_store, settings)
    if cleared.repaired is None:
        typer.echo(f"removed {cleared.entries:,} entries from {_where(settings)}")
    else:
        typer.echo(f"rebuilt {_where(settings)}, empty: it could not be used ({cleared.repaired.reason})")


@app.command("prune")
def prune(config: ConfigOption = None, cache_dir: CacheDirOption = None, cache_url: CacheUrlOption = None) -> None:
    """Remove expired entries and trim the cache to its size limit."""
    from ..cache_admin import prune_store

    settings = _settings(config, cache_dir, cache_url)
    with _usable_cache():
        pruned = anyio.run(prune_store, settings)
    typer.echo(f"pruned {pruned:,} entries from {_where(settings)}")


@app.command("explain")
def explain(
    case_id: Annotated[str, typer.Argument(help="The case id.")],
    provider: Annotated[str | None, typer.Option(help="Provider profile.")] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", "-s", help="Suite file (repeatable).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model.")] = None,
    repeat: Annotated[int | None, typer.Option(help="The run's --repeat.")] = None,
    config: ConfigOption = None,
    cache_dir: CacheDirOption = None,
    cache_url: CacheUrlOption = None,
) -> None:
    """Say whether a case would hit the cache now, and if not, what changed since it was cached."""
    from ..cache_admin import explain_case
    from ..settings import load_settings

    with user_errors(), _usable_cache():
        settings = load_settings(
            config,
            provider=provider,
            suites=tuple(suite or ()),
            models=(model,) if model else (),
            cache_dir=cache_dir,
            cache_url=cache_url,
            repeat=repeat,
        )
        lines = anyio.run(explain_case, settings, case_id)
    for line in lines:
        typer.echo(line)
