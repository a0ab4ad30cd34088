"""Where a run keeps answers, as text: a folder, or a Redis URL; where it records runs. Import-free but for the standard
library, so that settings, the cache's factory and the messages that name a store share one rule
without one of them loading another's dependencies."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["HISTORY_DIR", "REDIS_SCHEMES", "is_redis_url", "public_url"]

HISTORY_DIR = ".evalrun/runs"  # the run history's folder, under the working directory, unless told
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(location: str) -> bool:
    """Whether ``location`` names a Redis store rather than a folder."""
    return location.startswith(REDIS_SCHEMES)


def public_url(url: str) -> str:
    """A URL as messages and results may show it: its password, in the address or in the query
    (``?password=``), replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user = credentials.split(":", 1)[0] if ":" in credentials else ""
        netloc = f"{user}:***@{host}" if ":" in credentials else f"***@{host}"
    query = "&".join(
        f"{name}=***" if name.lower() == "password" else pair
        for pair in parts.query.split("&")
        if pair
        for name in [pair.split("=", 1)[0]]
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
