"""Writing report files: atomically (a reader never sees half a file), and XML attributes quoted."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "quoteattr"]


def quoteattr(text: str) -> str:
    """An XML attribute value, quoted (``xml.sax.saxutils`` would pull in ``urllib.request``)."""
    return '"' + html.escape(text, quote=True).replace("\n", "&#10;") + '"'


#: What a report does with text UTF-8 cannot hold (a lone surrogate in a model's answer): writes
#: its escape, which JSON reads back as the same character and a person can read.
UNWRITABLE = "backslashreplace"


def atomic_write(path: str | Path, write: Callable[[IO[str]], object]) -> None:
    """Write a text file through a temporary sibling, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", errors=UNWRITABLE) as handle:
        write(handle)
    os.replace(temporary, target)
