"""Provider profiles: where and how to reach one provider, as ``[providers.NAME]`` in config.toml.

A profile names the *variable* holding its API key, never the key; the key is read from the
environment only when a run starts. ``api`` says which kind of provider it is (see ``registry``);
``options`` are that kind's own settings (the simulated provider's latency and faults, say).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["BUILTIN_PROFILES", "ProviderProfile"]


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

    def api_key(self, env: Mapping[str, str]) -> str | None:
        """The key from the environment; a missing one is a ``ConfigError`` naming the variable."""
        if not self.api_key_env:
            return None
        key = env.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"{self.api_key_env} is not set: provider '{self.name}' needs an API key "
                f"(export {self.api_key_env}=...)"
            )
        if not key.isascii() or not key.isprintable() or key != key.strip():
            # A key from a CRLF .env file ends in \r: HTTP libraries reject the header and quote it whole.
            raise ConfigError(
                f"{self.api_key_env} holds spaces, control or non-ASCII characters: an API key has none "
                "(the value is not shown)"
            )
        return key


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
