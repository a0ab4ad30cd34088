"""``evalrun cache stats|clear|prune|explain``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from ._common import user_errors

if TYPE_CHECKING:
    from ..settings import Settings

app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)

ConfigOption = Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")]
CacheDirOption = Annotated[str | None, typer.Option(help="Cache directory.")]


def _settings(config: str | None, cache_dir: str | None) -> Settings:
    from ..settings import load_settings

    with user_errors():
        return load_settings(config, cache_dir=cache_dir)


@app.command("stats")
def stats(config: ConfigOption = None, cache_dir: CacheDirOption = None) -> None:
    """Entries and size of the cache."""
    from ..cache_admin import store_stats

    info = anyio.run(store_stats, _settings(config, cache_dir))
    typer.echo(f"{info.where}: {info.entries:,} entries, {info.bytes / 1e6:.1f} MB")


@app.command("clear")
def clear(config: ConfigOption = None, cache_dir: CacheDirOption = None) -> None:
    """Remove every entry."""
    from ..cache_admin import clear_store

    settings = _settings(config, cache_dir)
    typer.echo(f"removed {anyio.run(clear_store, settings):,} entries from {settings.cache_dir}")


@app.command("prune")
def prune(config: ConfigOption = None, cache_dir: CacheDirOption = None) -> None:
    """Remove expired entries and trim the cache to its size limit."""
    from ..cache_admin import prune_store

    settings = _settings(config, cache_dir)
    typer.echo(f"pruned {anyio.run(prune_store, settings):,} entries from {settings.cache_dir}")


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
    from ..cache_admin import explain_case
    from ..settings import load_settings

    with user_errors():
        settings = load_settings(
            config,
            provider=provider,
            suites=tuple(suite or ()),
            models=(model,) if model else (),
            cache_dir=cache_dir,
            repeat=repeat,
        )
        lines = anyio.run(explain_case, settings, case_id)
    for line in lines:
        typer.echo(line)
