"""``evalrun providers``: the configured profiles and whether their keys are set."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ._common import user_errors


def providers_command(
    config: Annotated[str | None, typer.Option(help="Config file (default: ./config.toml).")] = None,
) -> None:
    """List provider profiles, their base URL and default model, and whether the API key is set."""
    from rich.console import Console
    from rich.table import Table

    from ..settings import load_settings

    with user_errors():
        settings = load_settings(config)
    table = Table("provider", "api", "base url", "model", "api key")
    for name, profile in sorted(settings.providers.items()):
        if profile.api == "sim":
            key = "not needed (simulated)"
        elif not profile.api_key_env:
            key = "not needed"
        else:
            key = f"{profile.api_key_env} {'set' if os.environ.get(profile.api_key_env) else 'NOT set'}"
        table.add_row(name, profile.api, profile.base_url or "loopback, started by evalrun", profile.model, key)
    Console(width=None if sys.stdout.isatty() else 140).print(table)
