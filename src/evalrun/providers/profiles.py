"""Provider profiles: where and how to reach one provider, as ``[providers.NAME]`` in config.toml.

A profile names the *variable* holding its API key, never the key; the key is read from the
environment only when a run starts. ``api`` says which kind of provider it is (see ``registry``);
``options`` are that kind's own settings (the simulated provider's latency and faults, say).

A profile checks its own values when it is made, whoever makes it (the settings loader or the
Python API), and raises ``ValueError`` as the registry's checks do: the caller knows where the
profile came from and says so. No message quotes a variable name that is not one, a key or a URL:
any of them may be a secret pasted in the wrong place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

__all__ = ["BUILTIN_PROFILES", "ProviderProfile"]

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What an HTTP header can carry whole: printable ASCII, and no space (which no key holds, and
# which a copied key picks up at its ends).
_KEY = re.compile(r"[\x21-\x7e]+")
_LINE_BREAK = re.compile(r"[\r\n]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KEY_LIKE_LENGTH = 20


@dataclass(frozen=True)
class ProviderProfile:
    name: str
    api: str = "openai"
    base_url: str = ""
    api_key_env: str | None = None
    model: str = ""
    rpm: int | None = None
    tpm: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for problem in (
            _base_url_problem(self.base_url),
            _variable_problem(self.api_key_env),
            _budget_problem("rpm", self.rpm),
            _budget_problem("tpm", self.tpm),
        ):
            if problem:
                raise ValueError(problem)

    def api_key(self, env: Mapping[str, str]) -> str | None:
        """The key from the environment; a missing or malformed one is a ``ConfigError`` naming
        the variable, never quoting the value."""
        if not self.api_key_env:
            return None
        key = env.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"{self.api_key_env} is not set: provider '{self.name}' needs an API key "
                f"(export {self.api_key_env}=...)"
            )
        fault = _key_fault(key)
        if fault:
            raise ConfigError(
                f"{self.api_key_env} holds {fault}; API keys are printable ASCII without spaces "
                "(the value is not shown)"
            )
        return key

    def key_status(self, env: Mapping[str, str]) -> str:
        """Whether the key is set and usable, as ``evalrun providers`` shows it (never the value)."""
        if not self.api_key_env:
            return "not needed"
        key = env.get(self.api_key_env)
        if not key:
            return f"{self.api_key_env} NOT set"
        fault = _key_fault(key)
        return f"{self.api_key_env} set, but holds {fault}" if fault else f"{self.api_key_env} set"


def _key_fault(key: str) -> str | None:
    """What makes a key unsendable, said without any of it: httpx quotes a header it refuses
    whole, and encoding a non-ASCII one fails deep in a request."""
    if _KEY.fullmatch(key):
        return None
    if _LINE_BREAK.search(key):
        return "a line break (\\r or \\n: a file's line ending?)"
    if _CONTROL.search(key):
        return "a control character"
    return "a non-ASCII character" if not key.isascii() else "a space"


def _variable_problem(name: str | None) -> str | None:
    """The most common mistake is the key itself, pasted where its variable's name belongs: a
    name it cannot be, or one no one would choose (a Groq or Hugging Face key is a valid name)."""
    if not name or (_VARIABLE.fullmatch(name) and not _looks_like_a_key(name)):
        return None  # empty: no key, as for a local server
    return (
        "api_key_env: must be the name of an environment variable (letters, digits and _, such as "
        "GROQ_API_KEY), not the key itself (the value is not shown)"
    )


def _looks_like_a_key(name: str) -> bool:
    """Long, with lower and upper case letters and digits: how keys look, and names do not."""
    mixed_case = not name.isupper() and not name.islower()
    return len(name) >= _KEY_LIKE_LENGTH and mixed_case and any(c.isdigit() for c in name)


def _base_url_problem(url: str) -> str | None:
    """An empty URL is left to the kind (some know their own); any other must reach a server.
    It is not quoted: a URL can carry credentials, and a key pasted here would be shown."""
    fault = _url_fault(url) if url else None
    return f"base_url: {fault} (expected a URL such as https://api.groq.com/openai/v1)" if fault else None


def _url_fault(url: str) -> str | None:
    if _CONTROL.search(url) or " " in url:
        return "holds spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number up to 65535
    except ValueError:
        return "is not a URL (a bad port or bracket?)"
    if parts.scheme not in ("http", "https"):
        return "has no http:// or https:// in front"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "holds a user or password (give the key through api_key_env)"
    return None


def _budget_problem(key: str, value: object) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    shown = value if isinstance(value, int) else type(value).__name__  # a number is no secret
    return f"{key}: must be a whole number of at least 1 a minute (got {shown})"


BUILTIN_PROFILES: dict[str, ProviderProfile] = {
    "sim": ProviderProfile("sim", api="sim", model="sim-1", options={"latency_ms": 20, "jitter_ms": 10}),
    "groq": ProviderProfile(
        "groq",
        base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        model="openai/gpt-oss-20b",
        rpm=30,
    ),
    "openai": ProviderProfile(
        "openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY", model="gpt-4o-mini"
    ),
    "openrouter": ProviderProfile(
        "openrouter",
        base_url="https://openrouter.ai/api/v1",
        api_key_env="OPENROUTER_API_KEY",
        model="openai/gpt-4o-mini",
    ),
    "ollama": ProviderProfile("ollama", base_url="http://127.0.0.1:11434/v1", model="llama3.2"),
    "anthropic": ProviderProfile(
        "anthropic",
        api="anthropic",
        base_url="https://api.anthropic.com/v1",
        api_key_env="ANTHROPIC_API_KEY",
        model="claude-haiku-4-5",
    ),
}
