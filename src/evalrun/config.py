"""Settings: built-in defaults < config.toml < environment < command-line flags.

One ``Settings`` object describes a run completely, so the CLI, the Python API and the results
file all speak of the same thing. Provider profiles name the *variable* holding an API key, never
the key; the key is read from the environment only when the client is built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .sim.server import SimConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "ProviderProfile", "Settings", "load_settings"]

CONFIG_FILE = "config.toml"
BUNDLED_SUITE = str(Path(__file__).parent / "data" / "sample.jsonl")


@dataclass(frozen=True)
class ProviderProfile:
    """Where and how to reach one OpenAI-compatible provider."""

    name: str
    base_url: str = ""
    api_key_env: str | None = None
    model: str = ""
    rpm: int | None = None
    tpm: int | None = None
    #: Extra options of the simulated provider (latency_ms, jitter_ms, rate_429, ...).
    sim: Mapping[str, Any] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        return self.name == "sim" or bool(self.sim)


BUILTIN_PROVIDERS: dict[str, ProviderProfile] = {
    "sim": ProviderProfile("sim", model="sim-1", sim={"latency_ms": 20, "jitter_ms": 10}),
    "groq": ProviderProfile("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "openai/gpt-oss-20b", rpm=30),
    "openai": ProviderProfile("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "gpt-4o-mini"),
    "openrouter": ProviderProfile(
        "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openai/gpt-4o-mini"
    ),
    "ollama": ProviderProfile("ollama", "http://127.0.0.1:11434/v1", None, "llama3.2"),
}


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one evaluation run."""

    provider: str = "sim"
    suites: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    concurrency: int = 10
    rpm: int | None = None
    tpm: int | None = None
    cache: str = "on"  # on | off | refresh
    cache_dir: str = ".evalrun/cache"
    cache_ttl: float | None = None
    timeout: float | None = None
    request_timeout: float = 60.0
    retries: int = 4
    retry_base_delay: float = 0.5
    repeat: int = 1
    categories: tuple[str, ...] = ()
    filter: str | None = None
    limit: int | None = None
    min_pass_rate: float = 1.0
    max_errors: int = 0
    default_assert: str = "equals"
    output: str | None = None
    junit: str | None = None
    summary_md: str | None = None
    events: str | None = None
    progress: str = "auto"  # auto | rich | plain | json | none
    providers: Mapping[str, ProviderProfile] = field(default_factory=lambda: dict(BUILTIN_PROVIDERS))

    def profile(self) -> ProviderProfile:
        try:
            return self.providers[self.provider]
        except KeyError:
            known = ", ".join(sorted(self.providers))
            raise ConfigError(f"unknown provider '{self.provider}' (configured: {known})") from None

    def suite_paths(self) -> tuple[str, ...]:
        return self.suites or (BUNDLED_SUITE,)

    def model_names(self) -> tuple[str, ...]:
        return self.models or (self.profile().model,)

    def with_sim(self, **options: Any) -> Settings:
        """These settings with the simulated provider's behaviour changed (latency, faults...)."""
        profile = self.profile()
        if not profile.simulated:
            raise ConfigError(f"provider '{self.provider}' is not simulated")
        unknown = set(options) - _SIM_FIELDS
        if unknown:
            raise ConfigError(f"unknown simulated-provider setting(s): {', '.join(sorted(unknown))}")
        changed = replace(profile, sim={**profile.sim, **options})
        return replace(self, providers={**self.providers, self.provider: changed})

    def public(self) -> dict[str, Any]:
        """The settings as written into results: no secrets live here, only variable names."""
        data = asdict(self)
        data["providers"] = {self.provider: data["providers"].get(self.provider)}
        data["suites"] = list(self.suite_paths())
        data["models"] = list(self.model_names())
        return data


def _integer(text: str) -> int:
    return int(text)


def _number(text: str) -> float:
    return float(text)


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(text)


def _cache_mode(text: str) -> str:
    if text not in {"on", "off", "refresh"}:
        raise ValueError(text)
    return text


def _progress_mode(text: str) -> str:
    if text not in {"auto", "rich", "plain", "json", "none"}:
        raise ValueError(text)
    return text


def _words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


#: Settings that may come from ``EVALRUN_<NAME>`` and ``[run]``, with how to read them from text.
_SCALARS: dict[str, Callable[[str], Any]] = {
    "provider": str,
    "concurrency": _integer,
    "rpm": _integer,
    "tpm": _integer,
    "cache": _cache_mode,
    "cache_dir": str,
    "cache_ttl": _number,
    "timeout": _number,
    "request_timeout": _number,
    "retries": _integer,
    "retry_base_delay": _number,
    "repeat": _integer,
    "filter": str,
    "limit": _integer,
    "min_pass_rate": _number,
    "max_errors": _integer,
    "default_assert": str,
    "output": str,
    "junit": str,
    "summary_md": str,
    "events": str,
    "progress": _progress_mode,
    "suites": _words,
    "models": _words,
    "categories": _words,
}
_ALIASES = {"suite": "suites", "model": "models", "category": "categories"}
_LEGACY_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "MAX_CONCURRENT_REQUESTS": ("concurrency", _integer),
    "ENABLE_EVALUATION_CACHE": ("cache", lambda t: "on" if _boolean(t) else "off"),
    "EVALUATION_TIMEOUT": ("timeout", _number),
}


def _coerce(name: str, value: Any, where: str) -> Any:
    convert = _SCALARS[name]
    if isinstance(value, str):
        try:
            return convert(value)
        except ValueError:
            raise ConfigError(f"{where}: invalid value {value!r} for '{name}'") from None
    if convert is _words and isinstance(value, list):
        return tuple(str(v) for v in value)
    if convert in (_integer, _number) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if convert is _integer else float(value)
    if isinstance(value, bool) and name == "cache":
        return "on" if value else "off"
    raise ConfigError(f"{where}: invalid value {value!r} for '{name}'")


def _from_file(path: Path) -> tuple[dict[str, Any], dict[str, ProviderProfile]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in document.get("run", {}).items():
        name = _ALIASES.get(key, key)
        if name not in _SCALARS:
            raise ConfigError(f"{path}: [run] unknown setting '{key}'")
        values[name] = _coerce(name, value, f"{path}: [run] {key}")
    providers = {name: _profile(path, name, table) for name, table in document.get("providers", {}).items()}
    return values, providers


_PROFILE_FIELDS = {f.name for f in fields(ProviderProfile)} - {"name", "sim"}
_SIM_FIELDS = {f.name for f in fields(SimConfig)}


def _profile(path: Path, name: str, table: Any) -> ProviderProfile:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [providers.{name}] must be a table")
    known = {k: v for k, v in table.items() if k in _PROFILE_FIELDS}
    extra = {k: v for k, v in table.items() if k not in _PROFILE_FIELDS}
    base = BUILTIN_PROVIDERS.get(name, ProviderProfile(name))
    if extra and name != "sim" and not table.get("simulated"):
        raise ConfigError(f"{path}: [providers.{name}] unknown setting(s): {', '.join(sorted(extra))}")
    extra.pop("simulated", None)
    sim = {**base.sim, **extra} if (base.simulated or table.get("simulated")) else {}
    unknown_sim = set(sim) - _SIM_FIELDS
    if unknown_sim:
        raise ConfigError(
            f"{path}: [providers.{name}] unknown simulated-provider setting(s): "
            f"{', '.join(sorted(unknown_sim))} (known: {', '.join(sorted(_SIM_FIELDS))})"
        )
    profile = replace(base, **known, sim=sim)
    if not profile.simulated and not profile.base_url:
        raise ConfigError(f"{path}: [providers.{name}] needs a base_url")
    return profile


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for legacy, (name, convert) in _LEGACY_ENV.items():
        if env.get(legacy):
            try:
                values[name] = convert(env[legacy])
            except ValueError:
                raise ConfigError(f"{legacy}: invalid value {env[legacy]!r}") from None
    for name in _SCALARS:
        variable = f"EVALRUN_{name.upper()}"
        if env.get(variable):
            values[name] = _coerce(name, env[variable], variable)
    return values


def _check(settings: Settings) -> Settings:
    problems = []
    if settings.concurrency < 1:
        problems.append("concurrency must be at least 1")
    if settings.repeat < 1:
        problems.append("repeat must be at least 1")
    if settings.retries < 0:
        problems.append("retries must be 0 or more")
    if not 0 <= settings.min_pass_rate <= 1:
        problems.append("min-pass-rate must be from 0 to 1")
    if settings.max_errors < 0:
        problems.append("max-errors must be 0 or more")
    for name in ("timeout", "request_timeout", "rpm", "tpm", "limit", "cache_ttl"):
        value = getattr(settings, name)
        if value is not None and value <= 0:
            problems.append(f"{name.replace('_', '-')} must be greater than 0")
    if problems:
        raise ConfigError("; ".join(problems))
    settings.profile()
    return settings


def load_settings(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings from every layer; ``overrides`` (flags) left as ``None`` do not count."""
    env = os.environ if env is None else env
    path = Path(config) if config else Path(env.get("EVALRUN_CONFIG") or CONFIG_FILE)
    file_values: dict[str, Any] = {}
    providers = dict(BUILTIN_PROVIDERS)
    if config or path.is_file():
        file_values, file_providers = _from_file(path)
        providers.update(file_providers)
    flags = {k: v for k, v in overrides.items() if v is not None and v != ()}
    unknown = set(flags) - {f.name for f in fields(Settings)}
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    merged = {**file_values, **_from_env(env), **flags, "providers": providers}
    return _check(Settings(**merged))
