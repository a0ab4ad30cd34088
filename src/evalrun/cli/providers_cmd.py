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
    from rich.text import Text

    from ..settings import load_settings

    with user_errors():
        settings = load_settings(config)
    table = Table("provider", "api", "base url", "model", "api key")
    for name, profile in sorted(settings.providers.items()):
        key = "not needed (simulated)" if profile.api == "sim" else profile.key_status(os.environ)
        url = profile.base_url or "loopback, started by evalrun"
        # Text, not markup: a model called "m[/x]" is a name, not a closing tag (rich would raise).
        table.add_row(*(Text(cell) for cell in (name, profile.api, url, profile.model, key)))
    Console(width=None if sys.stdout.isatty() else 140).print(table)
