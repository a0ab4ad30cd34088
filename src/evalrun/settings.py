"""Settings: built-in defaults < config.toml < environment < flags (or the Python API).

Every setting is declared once, as a field of ``Settings`` (``evalrun eval``) or ``TestSettings``
(``evalrun test``), with how to read it and what it must satisfy. Every layer goes through that
one declaration: a value from ``[run]``, from ``EVALRUN_CONCURRENCY``, from ``--concurrency`` or
from ``Runner(concurrency=...)`` is read and checked the same way, and an error names where the
value came from, on one line.

Provider profiles (``[providers.NAME]``) name the *variable* holding an API key, never the key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from .errors import ConfigError
from .providers.profiles import BUILTIN_PROFILES, ProviderProfile
from .providers.registry import KINDS, check_profile, own_profile_keys

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "BUNDLED_SUITE",
    "ConfigError",
    "ProviderProfile",
    "Settings",
    "SettingsLayer",
    "TestSettings",
    "TestSettingsLayer",
    "load_settings",
    "load_test_settings",
]

CONFIG_FILE = "config.toml"
PROGRESS_MODES = ("auto", "rich", "plain", "json", "none")
BUNDLED_SUITE = str(Path(__file__).parent / "data" / "sample.jsonl")

# -- reading a value, from text (file, environment) or as it is (flags, API) --------------------


def _integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError("expected a whole number")


def _number(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value.strip()) if isinstance(value, str) else float("")
    except ValueError:
        raise ValueError("expected a number") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _words(value: object) -> tuple[str, ...]:
    """A list, or comma-separated text (``EVALRUN_MODELS=a,b``)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("expected a list of names")


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError("expected true or false")


def _cache_mode(value: object) -> str:
    """``on``, ``off`` or ``refresh``; a yes/no (``ENABLE_EVALUATION_CACHE=false``) is on or off."""
    if value in ("on", "off", "refresh"):
        return str(value)
    try:
        return "on" if _boolean(value) else "off"
    except ValueError:
        raise ValueError("expected on, off or refresh") from None


def _choice(*options: str) -> Callable[[object], str]:
    def read(value: object) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return str(value)

    return read


def _workers(value: object) -> str:
    """pytest-xdist's ``-n``: a number of workers, or ``auto``."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if text != "auto" and not text.isdigit():
        raise ValueError("expected a number of workers or 'auto'")
    return text


# -- what a value must satisfy -------------------------------------------------------------------


def _at_least(minimum: int) -> Callable[[Any], str | None]:
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _fraction(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be from 0 to 1"


def _setting(
    default: Any,
    read: Callable[[object], Any],
    *,
    check: Callable[[Any], str | None] | None = None,
    legacy_env: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    env: bool = True,
) -> Any:
    """A layered setting: ``read`` takes text or a value; ``legacy_env`` are older variable names
    (the ``EVALRUN_`` one wins over them); ``aliases`` are other keys accepted in the file; ``env``
    False keeps a setting out of the environment (what a nested run would inherit by surprise)."""
    metadata = {"read": read, "check": check, "legacy_env": legacy_env, "aliases": aliases, "env": env}
    return field(default=default, metadata=metadata)


# -- the settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one evaluation run."""

    provider: str = _setting("sim", _text)
    suites: tuple[str, ...] = _setting((), _words, aliases=("suite",))
    models: tuple[str, ...] = _setting((), _words, aliases=("model",))
    concurrency: int = _setting(10, _integer, check=_at_least(1), legacy_env=("MAX_CONCURRENT_REQUESTS",))
    rpm: int | None = _setting(None, _integer, check=_positive)
    tpm: int | None = _setting(None, _integer, check=_positive)
    cache: str = _setting("on", _cache_mode, legacy_env=("ENABLE_EVALUATION_CACHE",))
    cache_dir: str = _setting(".evalrun/cache", _text)
    cache_ttl: float | None = _setting(None, _number, check=_positive)
    timeout: float | None = _setting(None, _number, check=_positive, legacy_env=("EVALUATION_TIMEOUT",))
    request_timeout: float = _setting(60.0, _number, check=_positive)
    retries: int = _setting(4, _integer, check=_at_least(0))
    retry_base_delay: float = _setting(0.5, _number, check=_positive)
    rate_limit_wait: float = _setting(600.0, _number, check=_positive)
    repeat: int = _setting(1, _integer, check=_at_least(1))
    categories: tuple[str, ...] = _setting((), _words, aliases=("category",))
    filter: str | None = _setting(None, _text)
    limit: int | None = _setting(None, _integer, check=_positive)
    min_pass_rate: float = _setting(1.0, _number, check=_fraction)
    max_errors: int = _setting(0, _integer, check=_at_least(0))
    default_assert: str = _setting("equals", _text)
    output: str | None = _setting(None, _text)
    junit: str | None = _setting(None, _text)
    summary_md: str | None = _setting(None, _text)
    events: str | None = _setting(None, _text)
    progress: str = _setting("auto", _choice(*PROGRESS_MODES))
    providers: Mapping[str, ProviderProfile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))

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

    def with_provider_options(self, **options: Any) -> Settings:
        """These settings with the provider's own options changed (the simulated one's latency...)."""
        profile = self.profile()
        changed = replace(profile, options={**profile.options, **options})
        try:
            check_profile(changed)
        except ValueError as exc:
            raise ConfigError(f"provider '{profile.name}': {exc}") from None
        return replace(self, providers={**self.providers, self.provider: changed})

    def public(self) -> dict[str, Any]:
        """The settings as written into results: no secrets live here, only variable names."""
        data = asdict(self)
        data["providers"] = {self.provider: data["providers"].get(self.provider)}
        data["suites"] = list(self.suite_paths())
        data["models"] = list(self.model_names())
        return data


@dataclass(frozen=True)
class TestSettings:
    """Everything that shapes one ``evalrun test`` run."""

    __test__ = False  # not a pytest test class, whatever its name

    pytest_args: tuple[str, ...] = _setting((), _words, env=False)
    timeout: float | None = _setting(None, _number, check=_positive, legacy_env=("TEST_TIMEOUT",))
    grace: float = _setting(5.0, _number, check=_at_least(0))
    python: str = _setting(sys.executable, _text, env=False)
    parallel: str | None = _setting(None, _workers)
    output: str | None = _setting(None, _text, env=False)
    junit: str | None = _setting(None, _text, env=False)
    events: str | None = _setting(None, _text, env=False)
    cache: bool = _setting(False, _boolean, legacy_env=("ENABLE_TEST_CACHE",))
    verbose: bool = _setting(False, _boolean)
    workdir: str = _setting(".", _text, env=False)
    state_dir: str = _setting(".evalrun/test", _text, env=False)
    progress: str = _setting("auto", _choice(*PROGRESS_MODES))


class SettingsLayer(TypedDict, total=False):
    """Settings given as flags or to the Python API (None: not given). Mirrors ``Settings``."""

    provider: str | None
    suites: tuple[str, ...] | None
    models: tuple[str, ...] | None
    concurrency: int | None
    rpm: int | None
    tpm: int | None
    cache: str | None
    cache_dir: str | None
    cache_ttl: float | None
    timeout: float | None
    request_timeout: float | None
    retries: int | None
    retry_base_delay: float | None
    rate_limit_wait: float | None
    repeat: int | None
    categories: tuple[str, ...] | None
    filter: str | None
    limit: int | None
    min_pass_rate: float | None
    max_errors: int | None
    default_assert: str | None
    output: str | None
    junit: str | None
    summary_md: str | None
    events: str | None
    progress: str | None


class TestSettingsLayer(TypedDict, total=False):
    """Test settings given as flags or to the Python API (None: not given). Mirrors ``TestSettings``."""

    pytest_args: tuple[str, ...] | None
    timeout: float | None
    grace: float | None
    python: str | None
    parallel: str | None
    output: str | None
    junit: str | None
    events: str | None
    cache: bool | None
    verbose: bool | None
    workdir: str | None
    state_dir: str | None
    progress: str | None


# -- the layers ------------------------------------------------------------------------------------

_S = TypeVar("_S", Settings, TestSettings)


@dataclass
class _Value:
    value: Any
    given: Any  # as written, for messages
    where: str  # the layer and the name it was given under


def _layered_fields(kind: type[Any]) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(kind) if "read" in f.metadata}


def _read(spec: Field[Any], given: Any, where: str) -> _Value:
    try:
        return _Value(spec.metadata["read"](given), given, where)
    except ValueError as exc:
        raise ConfigError(f"{where}: invalid value {given!r} for '{spec.name}' ({exc})") from None


def _file_layer(kind: type[Any], table: Any, where: str) -> dict[str, _Value]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    specs = _layered_fields(kind)
    names = {alias: name for name, spec in specs.items() for alias in (name, *spec.metadata["aliases"])}
    values = {}
    for key, given in table.items():
        if key not in names:
            import difflib

            close = difflib.get_close_matches(key, list(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where} unknown setting '{key}'{hint}")
        values[names[key]] = _read(specs[names[key]], given, f"{where} {key}")
    return values


def _env_layer(kind: type[Any], env: Mapping[str, str], prefix: str) -> dict[str, _Value]:
    values = {}
    for name, spec in _layered_fields(kind).items():
        names = (f"{prefix}{name.upper()}", *spec.metadata["legacy_env"]) if spec.metadata["env"] else ()
        variable = next((n for n in names if env.get(n)), None)  # the EVALRUN_ name first; only it is read
        if variable is not None:
            values[name] = _read(spec, env[variable], variable)
    return values


def _flag_layer(kind: type[Any], flags: Mapping[str, Any]) -> dict[str, _Value]:
    specs = _layered_fields(kind)
    unknown = set(flags) - set(specs)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    given = {name: value for name, value in flags.items() if value is not None and value != ()}
    return {name: _read(specs[name], value, "--" + name.replace("_", "-")) for name, value in given.items()}


def _resolve(kind: type[_S], layers: list[dict[str, _Value]], **fixed: Any) -> _S:
    """Merge the layers (later wins), check every value against its declaration, build ``kind``."""
    merged = {name: value for layer in layers for name, value in layer.items()}
    specs = _layered_fields(kind)
    problems = []
    for name, chosen in merged.items():
        check = specs[name].metadata["check"]
        problem = check(chosen.value) if check is not None else None
        if problem:
            problems.append(f"{name.replace('_', '-')} {problem} ({chosen.where}: {chosen.given!r})")
    if problems:
        raise ConfigError("; ".join(problems))
    return kind(**{name: chosen.value for name, chosen in merged.items()}, **fixed)


# -- provider profiles from the file ---------------------------------------------------------------

_PROFILE_READERS: dict[str, Callable[[object], Any]] = {
    "api": _choice(*KINDS),
    "base_url": _text,
    "api_key_env": _text,
    "model": _text,
    "rpm": _integer,
    "tpm": _integer,
}


def _profile(where: str, name: str, table: Any) -> ProviderProfile:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    if table.get("simulated") is True:  # how profiles of the simulated provider were marked before `api`
        table = {"api": "sim", **{k: v for k, v in table.items() if k != "simulated"}}
    base = BUILTIN_PROFILES.get(name, ProviderProfile(name))
    own = own_profile_keys(str(table.get("api", base.api)))  # e.g. the simulated key's rpm
    known: dict[str, Any] = {}
    for key, reader in _PROFILE_READERS.items():
        if key in table and key not in own:
            try:
                known[key] = reader(table[key])
            except ValueError as exc:
                raise ConfigError(f"{where} invalid value {table[key]!r} for '{key}' ({exc})") from None
    options = {k: v for k, v in table.items() if k not in _PROFILE_READERS or k in own}
    if known.get("api", base.api) == base.api:
        options = {**base.options, **options}
    profile = replace(base, **known, options=options)
    try:
        check_profile(profile)
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}") from None
    return profile


def _from_file(path: Path) -> tuple[dict[str, _Value], dict[str, ProviderProfile]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    values = _file_layer(Settings, document.get("run", {}), f"{path}: [run]")
    tables = document.get("providers", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: [providers] must hold one table per provider")
    providers = {name: _profile(f"{path}: [providers.{name}]", name, table) for name, table in tables.items()}
    return values, providers


def load_settings(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **flags: Unpack[SettingsLayer],
) -> Settings:
    """Resolve eval settings from every layer; flags left as None (or ``()``) do not count."""
    env = os.environ if env is None else env
    path = Path(config) if config else Path(env.get("EVALRUN_CONFIG") or CONFIG_FILE)
    file_values: dict[str, _Value] = {}
    providers = dict(BUILTIN_PROFILES)
    if config or path.is_file():
        file_values, file_providers = _from_file(path)
        providers.update(file_providers)
    layers = [file_values, _env_layer(Settings, env, "EVALRUN_"), _flag_layer(Settings, flags)]
    settings = _resolve(Settings, layers, providers=providers)
    settings.profile()  # an unknown provider is an error now, not at the first request
    return settings


def load_test_settings(env: Mapping[str, str] | None = None, **flags: Unpack[TestSettingsLayer]) -> TestSettings:
    """Resolve test settings: defaults < ``EVALRUN_TEST_*`` (and ``TEST_TIMEOUT``,
    ``ENABLE_TEST_CACHE``) < flags. config.toml is not read: it may be another program's."""
    env = os.environ if env is None else env
    return _resolve(TestSettings, [_env_layer(TestSettings, env, "EVALRUN_TEST_"), _flag_layer(TestSettings, flags)])
