"""Settings: built-in defaults < config.toml < environment < flags (or the Python API).

Every setting is declared once, as a field of ``Settings`` (``evalrun eval``) or ``TestSettings``
(``evalrun test``), with how to read it and what it must satisfy. Every layer goes through that
one declaration: a value from ``[run]``, from ``EVALRUN_CONCURRENCY``, from ``--concurrency`` or
from ``Runner(concurrency=...)`` is read and checked the same way, and an error names where the
value came from, on one line. ``Settings(...)`` made directly checks itself by the same
declarations, so no way in skips them.

Provider profiles (``[providers.NAME]``) name the *variable* holding an API key, never the key.
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

from .assertions import IMPLIABLE
from .errors import ConfigError
from .locations import HISTORY_DIR, is_redis_url, public_url
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
    """A finite number: TOML and ``float()`` take ``inf`` and ``nan``, which no duration or rate means."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        try:
            number = float(value.strip()) if isinstance(value, str) else float("")
        except ValueError:
            raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _shard(value: object) -> str | None:
    text = _text(value)
    if not text:
        return None
    index, slash, count = text.partition("/")
    if not slash or not index.isdigit() or not count.isdigit() or not 1 <= int(index) <= int(count):
        raise ValueError("expected I/N with 1 <= I <= N, such as 2/4")  # the caller says what it got
    return text


def shard_numbers(shard: str | None) -> tuple[int, int] | None:
    """``"2/4"`` as ``(2, 4)``."""
    if not shard:
        return None
    index, _, count = shard.partition("/")
    return int(index), int(count)


def _cache_url(value: object) -> str | None:
    url = _text(value)
    if not url:
        return None
    if not is_redis_url(url):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    try:
        urlsplit(url).port  # noqa: B018 - a port that is not a number is refused here, not at the first call
    except ValueError as exc:
        raise ValueError(f"not a usable URL ({exc}): {public_url(url)}") from None
    return url


def _words(value: object) -> tuple[str, ...]:
    """A list, or comma-separated text (``EVALRUN_MODELS=a,b``)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("expected a list of names")


def _model_names(value: object) -> tuple[str, ...]:
    """Names of models: none empty, none twice (a model named twice runs every case twice under
    one name, and results, diff and merge tell a case by its id, model and repeat)."""
    names = _words(value)
    if any(not name.strip() for name in names):
        raise ValueError("a model name is empty")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{', '.join(map(repr, twice))} named more than once")
    return names


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


def _limit_or_none(value: object) -> float | None:
    """Seconds, where 0 means no limit at all (``evalrun test --timeout 0``); ``None`` stays none."""
    seconds = None if value is None else _number(value)
    return None if seconds == 0 else seconds


def _no_limit_or_positive(value: Any) -> str | None:
    return None if value is None or value > 0 else "must be greater than 0 (0: no limit)"


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
    models: tuple[str, ...] = _setting((), _model_names, aliases=("model",))
    concurrency: int = _setting(10, _integer, check=_at_least(1), legacy_env=("MAX_CONCURRENT_REQUESTS",))
    rpm: int | None = _setting(None, _integer, check=_positive)
    tpm: int | None = _setting(None, _integer, check=_positive)
    cache: str = _setting("on", _cache_mode, legacy_env=("ENABLE_EVALUATION_CACHE",))
    cache_dir: str = _setting(".evalrun/cache", _text)
    #: A Redis store shared by every runner that names it (``redis://host:6379/0``), instead of the disk.
    cache_url: str | None = _setting(None, _cache_url)
    #: When the Redis store cannot be reached at the start: ``none`` (exit 2) or ``local`` (the disk, with a warning).
    cache_fallback: str = _setting("none", _choice("none", "local"))
    cache_ttl: float | None = _setting(None, _number, check=_positive)
    timeout: float | None = _setting(None, _number, check=_positive, legacy_env=("EVALUATION_TIMEOUT",))
    request_timeout: float = _setting(60.0, _number, check=_positive)
    #: The largest response body accepted: far above any chat answer, low enough that a runaway
    #: body cannot fill memory, results or the cache.
    max_response_bytes: int = _setting(4 * 1024 * 1024, _integer, check=_at_least(1024))
    retries: int = _setting(4, _integer, check=_at_least(0))
    retry_base_delay: float = _setting(0.5, _number, check=_positive)
    rate_limit_wait: float = _setting(600.0, _number, check=_positive)
    repeat: int = _setting(1, _integer, check=_at_least(1))
    categories: tuple[str, ...] = _setting((), _words, aliases=("category",))
    filter: str | None = _setting(None, _text)
    limit: int | None = _setting(None, _integer, check=_positive)
    #: ``I/N``: the I-th of N shares of the cases, by a hash of each id (CI jobs, then ``evalrun merge``).
    shard: str | None = _setting(None, _shard)
    min_pass_rate: float = _setting(1.0, _number, check=_fraction)
    max_errors: int = _setting(0, _integer, check=_at_least(0))
    default_assert: str = _setting("equals", _choice(*IMPLIABLE))
    output: str | None = _setting(None, _text)
    junit: str | None = _setting(None, _text)
    summary_md: str | None = _setting(None, _text)
    events: str | None = _setting(None, _text)
    progress: str = _setting("auto", _choice(*PROGRESS_MODES))
    #: Where every run is recorded (``evalrun runs``, the server's ``/api/runs``); "" records none.
    history_dir: str = _setting(HISTORY_DIR, _text)
    #: Prometheus' text format of the run's metrics, written at its end (node-exporter's textfile collector).
    metrics_file: str | None = _setting(None, _text)
    #: The run as one self-contained HTML page (``evalrun report``'s), written at its end.
    html: str | None = _setting(None, _text)
    providers: Mapping[str, ProviderProfile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))

    def __post_init__(self) -> None:
        _check_fields(self)

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
        try:
            changed = replace(profile, options={**profile.options, **options})
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
        data["cache_url"] = public_url(self.cache_url) if self.cache_url else None
        return data


@dataclass(frozen=True)
class TestSettings:
    """Everything that shapes one ``evalrun test`` run."""

    __test__ = False  # not a pytest test class, whatever its name

    pytest_args: tuple[str, ...] = _setting((), _words, env=False)
    #: Five minutes, as the system evalrun replaces ran its tests; 0 for none.
    timeout: float | None = _setting(300.0, _limit_or_none, check=_no_limit_or_positive, legacy_env=("TEST_TIMEOUT",))
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
    #: Where every run is recorded, under ``workdir`` (``evalrun runs``); "" records none.
    history_dir: str = _setting(HISTORY_DIR, _text)
    progress: str = _setting("auto", _choice(*PROGRESS_MODES))

    def __post_init__(self) -> None:
        _check_fields(self)


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
    cache_url: str | None
    cache_fallback: str | None
    cache_ttl: float | None
    timeout: float | None
    request_timeout: float | None
    max_response_bytes: int | None
    retries: int | None
    retry_base_delay: float | None
    rate_limit_wait: float | None
    repeat: int | None
    categories: tuple[str, ...] | None
    filter: str | None
    limit: int | None
    shard: str | None
    min_pass_rate: float | None
    max_errors: int | None
    default_assert: str | None
    output: str | None
    junit: str | None
    summary_md: str | None
    events: str | None
    progress: str | None
    history_dir: str | None
    metrics_file: str | None
    html: str | None


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
    history_dir: str | None
    progress: str | None


# -- the layers ------------------------------------------------------------------------------------


def _layered_fields(kind: type[Any]) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(kind) if "read" in f.metadata}


_TOML_TYPES: tuple[tuple[type[Any] | tuple[type[Any], ...], str], ...] = (
    (bool, "boolean"),  # before int, which it is too
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    ((list, tuple), "array"),
    (Mapping, "table"),
    ((datetime.date, datetime.time), "date/time"),
)


def _toml_type(value: object) -> str:
    """A value's type in config.toml's words: what the user wrote, whatever layer it came from."""
    return next((word for kinds, word in _TOML_TYPES if isinstance(value, kinds)), type(value).__name__)


def _shown(value: object) -> str:
    """A wrong value as a message quotes it: its type, and a short scalar as written. No setting
    of ``Settings`` holds a secret; a profile's values are never quoted (see ``_profile_field``)."""
    if not isinstance(value, (bool, int, float, str)):
        return _toml_type(value)
    text = repr(value)
    return f"{_toml_type(value)} {text if len(text) <= 40 else text[:36] + '...'}"


def _accept(spec: Field[Any], given: object, where: str) -> Any:
    """One value read and checked by its declaration, wherever it came from: the one path."""
    try:
        value = spec.metadata["read"](given)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (got {_shown(given)})") from None
    check = spec.metadata["check"]
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(f"{where}: {problem} (got {_shown(given)})")
    return value


def _check_fields(settings: Settings | TestSettings) -> None:
    """Settings made directly (``Settings(cache=...)``, ``dataclasses.replace``) are read and
    checked as the layers' values are; a value already read reads the same again."""
    for name, spec in _layered_fields(type(settings)).items():
        given = getattr(settings, name)
        if given is not None or spec.default is not None:
            where = f"{type(settings).__name__}({name}=...)"
            object.__setattr__(settings, name, _accept(spec, given, where))


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _file_layer(kind: type[Any], table: dict[str, Any], where: str) -> dict[str, Any]:
    specs = _layered_fields(kind)
    names = {alias: name for name, spec in specs.items() for alias in (name, *spec.metadata["aliases"])}
    values = {}
    for key, given in table.items():
        if key not in names:
            raise ConfigError(f"{where} unknown setting '{key}'{_did_you_mean(key, names)}")
        values[names[key]] = _accept(specs[names[key]], given, f"{where} {key}")
    return values


def _env_layer(kind: type[Any], env: Mapping[str, str], prefix: str) -> dict[str, Any]:
    values = {}
    for name, spec in _layered_fields(kind).items():
        names = (f"{prefix}{name.upper()}", *spec.metadata["legacy_env"]) if spec.metadata["env"] else ()
        variable = next((n for n in names if env.get(n)), None)  # the EVALRUN_ name first; only it is read
        if variable is not None:
            values[name] = _accept(spec, env[variable], variable)
    return values


def _flag_layer(kind: type[Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    specs = _layered_fields(kind)
    unknown = set(flags) - set(specs)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    given = {name: value for name, value in flags.items() if value is not None and value != ()}
    return {name: _accept(specs[name], value, "--" + name.replace("_", "-")) for name, value in given.items()}


# -- provider profiles from the file ---------------------------------------------------------------

_PROFILE_FIELDS: dict[str, Callable[[object], Any]] = {
    "api": _choice(*KINDS),
    "base_url": _text,
    "api_key_env": _text,
    "model": _text,
    "rpm": _integer,
    "tpm": _integer,
}


def _table(where: str, value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be {what} (got {_toml_type(value)})")
    return value


def _profile_field(where: str, key: str, given: object) -> Any:
    try:
        return _PROFILE_FIELDS[key](given)
    except ValueError as exc:
        # The type only: a profile is where keys get pasted by mistake (api_key_env = "gsk_...").
        raise ConfigError(f"{where} {key}: {exc} (got {_toml_type(given)})") from None


def _profile(path: Path, name: str, given: object) -> ProviderProfile:
    where = f"{path}: [providers.{name}]"
    table = _table(f"{path}: [providers] {name}", given, f"a table, [providers.{name}]")
    if table.get("simulated") is True:  # how profiles of the simulated provider were marked before `api`
        table = {"api": "sim", **{k: v for k, v in table.items() if k != "simulated"}}
    base = BUILTIN_PROFILES.get(name, ProviderProfile(name))
    own = own_profile_keys(str(table.get("api", base.api)))  # e.g. the simulated key's rpm
    known = {key: _profile_field(where, key, table[key]) for key in _PROFILE_FIELDS if key in table and key not in own}
    options = {k: v for k, v in table.items() if k not in _PROFILE_FIELDS or k in own}
    if known.get("api", base.api) == base.api:
        options = {**base.options, **options}
    try:
        profile = replace(base, **known, options=options)
        check_profile(profile)
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}") from None
    return profile


_TABLES = ("run", "providers")


def _from_file(path: Path) -> tuple[dict[str, Any], dict[str, ProviderProfile]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for key in document:
        if key not in _TABLES:  # a misspelt [run] would otherwise be ignored without a word
            hint = _did_you_mean(key, _TABLES)
            raise ConfigError(f"{path}: unknown key '{key}'{hint}; settings go in [run], profiles in [providers.NAME]")
    run = _table(f"{path}: run", document.get("run", {}), "a table, [run]")
    tables = _table(f"{path}: providers", document.get("providers", {}), "one table per provider, [providers.NAME]")
    providers = {name: _profile(path, name, table) for name, table in tables.items()}
    return _file_layer(Settings, run, f"{path}: [run]"), providers


def load_settings(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **flags: Unpack[SettingsLayer],
) -> Settings:
    """Resolve eval settings from every layer; flags left as None (or ``()``) do not count."""
    env = os.environ if env is None else env
    path = Path(config) if config else Path(env.get("EVALRUN_CONFIG") or CONFIG_FILE)
    file_values: dict[str, Any] = {}
    providers = dict(BUILTIN_PROFILES)
    if config or path.is_file():
        file_values, file_providers = _from_file(path)
        providers.update(file_providers)
    values = {**file_values, **_env_layer(Settings, env, "EVALRUN_"), **_flag_layer(Settings, flags)}
    settings = Settings(**values, providers=providers)
    settings.profile()  # an unknown provider is an error now, not at the first request
    return settings


def load_test_settings(env: Mapping[str, str] | None = None, **flags: Unpack[TestSettingsLayer]) -> TestSettings:
    """Resolve test settings: defaults < ``EVALRUN_TEST_*`` (and ``TEST_TIMEOUT``,
    ``ENABLE_TEST_CACHE``) < flags. config.toml is not read: it may be another program's."""
    env = os.environ if env is None else env
    return TestSettings(**{**_env_layer(TestSettings, env, "EVALRUN_TEST_"), **_flag_layer(TestSettings, flags)})
