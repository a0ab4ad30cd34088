"""Configuration and keys refused before the first request (issue 9): one line, exit 2, no
traceback, and never a key, whole or in part.

Real config files in ``tmp_path`` and real ``evalrun`` processes, as the defects were seen; the
profiles point at the test's simulated provider, so a check that let a run through would show as
requests served.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import arithmetic_cases, evalrun, local_config, write_suite

from evalrun import Runner
from evalrun.providers import ProviderProfile
from evalrun.settings import ConfigError, Settings, load_settings
from evalrun.sim import SimProcess

SECRET = "sk-SECRET-123456"
GROQ_LIKE = "gsk_SECRETq8Zt3Xw9Lm2Vb7Nc4Rd6"  # a valid variable name, yet plainly a key
ROOT = Path(__file__).resolve().parents[2]


def _eval(
    tmp_path: Path, provider: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``evalrun eval`` of a small suite, asked to write every report it can (``args`` come last: they win)."""
    write_suite(tmp_path / "suite.jsonl", arithmetic_cases(3))
    reports = ("--output", "results.json", "--junit", "junit.xml", "--events", "events.jsonl")
    common = ("--suite", "suite.jsonl", "--cache-dir", "cache", "--progress", "plain", *reports)
    return evalrun(tmp_path, "eval", provider, *common, *args, env=env)


def _refused(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2 with exactly one line on stderr holding every needle, nothing on stdout."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    assert all(needle in lines[0] for needle in needles), (needles, lines[0])
    assert done.stdout == ""
    return lines[0]


def _nowhere(tmp_path: Path, done: subprocess.CompletedProcess[str], secret: str, *written_by_test: str) -> None:
    """The secret, and any 6 characters of it, in no output and no file the command wrote."""
    pieces = {secret[i : i + 6] for i in range(len(secret) - 5)}
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in written_by_test]
    for text in (done.stdout, done.stderr, *(p.read_text(errors="replace") for p in files)):
        assert not any(piece in text for piece in pieces), text


# -- 1. keys checked before the first request ------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "fault"),
    [
        (SECRET + "\r", "holds a line break"),
        (SECRET + "\n", "holds a line break"),
        ("sk-SECRET\r\n-123456", "holds a line break"),
        ("sk-SECRET-12\x1b3456", "holds a control character"),
        ("sk-SECRET-12\x7f3456", "holds a control character"),
        ("sk-SECRET-12\x853456", "holds a control character"),  # C1: NEL
        ("sk-SECRET-1é23456", "holds a non-ASCII character"),
        (" " + SECRET, "holds a space"),
        (SECRET + " ", "holds a space"),
        (SECRET + "\t", "holds a control character"),
    ],
)
def test_a_malformed_key_is_refused_before_any_request_and_never_shown(
    tmp_path: Path, sim: SimProcess, key: str, fault: str
) -> None:
    local_config(tmp_path / "config.toml", sim, api_key_env="FAKE_KEY")
    done = _eval(tmp_path, "local", env={"FAKE_KEY": key})
    line = _refused(done, f"FAKE_KEY {fault}", "printable ASCII without spaces")
    assert line.startswith("evalrun: FAKE_KEY holds ")
    _nowhere(tmp_path, done, key.strip(), "config.toml", "suite.jsonl")
    assert sim.stats()["requests"] == 0


def test_the_providers_list_says_a_key_is_malformed_without_showing_it(tmp_path: Path, sim: SimProcess) -> None:
    local_config(tmp_path / "config.toml", sim, api_key_env="FAKE_KEY")
    done = evalrun(tmp_path, "providers", env={"FAKE_KEY": SECRET + "\r"})
    assert done.returncode == 0, done.stderr
    assert "FAKE_KEY set, but holds a line break" in done.stdout
    _nowhere(tmp_path, done, SECRET, "config.toml")
    fine = evalrun(tmp_path, "providers", env={"FAKE_KEY": SECRET})
    assert "FAKE_KEY set " in fine.stdout and SECRET not in fine.stdout


def test_the_library_refuses_a_malformed_key_in_prepare(tmp_path: Path, sim: SimProcess) -> None:
    config = local_config(tmp_path / "config.toml", sim, api_key_env="FAKE_KEY")
    suite = write_suite(tmp_path / "suite.jsonl", arithmetic_cases(2))
    env = {"FAKE_KEY": SECRET + "\n"}
    settings = load_settings(config, env=env, provider="local", suites=(str(suite),))
    with pytest.raises(ConfigError) as info:
        Runner(settings, env=env).prepare()
    assert str(info.value).startswith("FAKE_KEY holds a line break") and "SECRET" not in str(info.value)
    assert Runner(settings, env={"FAKE_KEY": SECRET}).prepare().total == 2


# -- 2. api_key_env names a variable --------------------------------------------------------------


@pytest.mark.parametrize("name", [SECRET, GROQ_LIKE, "MY KEY", "MY-KEY", "1KEY", "KEY\n", "gsk_abc123..."])
def test_api_key_env_must_be_a_variable_name_and_is_never_echoed(tmp_path: Path, sim: SimProcess, name: str) -> None:
    local_config(tmp_path / "config.toml", sim, api_key_env=name)
    for done in (_eval(tmp_path, "local"), evalrun(tmp_path, "providers")):
        line = _refused(done, "[providers.local] api_key_env: must be the name of an environment variable")
        assert "not shown" in line
        _nowhere(tmp_path, done, name.strip(), "config.toml", "suite.jsonl")
    assert sim.stats()["requests"] == 0


def test_ordinary_variable_names_and_an_empty_one_are_accepted(tmp_path: Path) -> None:
    for name in ("GROQ_API_KEY", "_key", "AZURE_OPENAI_API_KEY_EASTUS2", "my_service_api_key_v2"):
        assert ProviderProfile("p", base_url="http://h", api_key_env=name).api_key_env == name
    assert ProviderProfile("p", base_url="http://h", api_key_env="").api_key({}) is None  # no key needed
    with pytest.raises(ValueError, match="api_key_env: must be the name") as info:
        ProviderProfile("p", base_url="http://h", api_key_env=GROQ_LIKE)  # the Python API: the same rule
    assert "SECRET" not in str(info.value)


# -- 3. config.toml of the wrong types or values ----------------------------------------------------

_LOCAL = '[providers.local]\nbase_url = "BASE"\nmodel = "sim-1"\n'


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[providers.local]\nbase_url = 123\nmodel = "m"\n',
            "[providers.local] base_url: expected a string (got integer)",
        ),
        (_LOCAL + 'rpm = "fast"\n', "[providers.local] rpm: expected a whole number (got string)"),
        (_LOCAL + "rpm = 2.5\n", "[providers.local] rpm: expected a whole number (got float)"),
        (_LOCAL + "rpm = -5\n", "[providers.local] rpm: must be a whole number of at least 1 a minute (got -5)"),
        (_LOCAL + "tpm = 0\n", "[providers.local] tpm: must be a whole number of at least 1 a minute (got 0)"),
        (_LOCAL + 'api_key_env = ["A"]\n', "[providers.local] api_key_env: expected a string (got array)"),
        (
            '[providers.local]\nbase_url = "BASE"\nmodel = 5\n',
            "[providers.local] model: expected a string (got integer)",
        ),
        (_LOCAL + "api = 5\n", "[providers.local] api: expected one of openai, anthropic, sim (got integer)"),
        ("run = 5\n", "run: must be a table, [run] (got integer)"),
        ("providers = 5\n", "providers: must be one table per provider, [providers.NAME] (got integer)"),
        ("[providers]\nlocal = 5\n", "[providers] local: must be a table, [providers.local] (got integer)"),
        ("concurrency = 3\n", "unknown key 'concurrency'; settings go in [run], profiles in [providers.NAME]"),
        (_LOCAL + "[run]\nconcurrency = 2.7\n", "[run] concurrency: expected a whole number (got float 2.7)"),
        (_LOCAL + '[run]\nconcurrency = "lots"\n', "[run] concurrency: expected a whole number (got string 'lots')"),
        (_LOCAL + "[run]\nconcurrency = [1]\n", "[run] concurrency: expected a whole number (got array)"),
        (_LOCAL + "[run]\ntimeout = nan\n", "[run] timeout: expected a finite number (got float nan)"),
        (_LOCAL + "[run]\nrequest_timeout = 1979-05-27\n", "[run] request_timeout: expected a number (got date/time)"),
        (_LOCAL + "[run]\nmodels = [1, 2]\n", "[run] models: expected a list of names (got array)"),
        (
            _LOCAL + "[run]\nmax_response_bytes = 10\n",
            "[run] max_response_bytes: must be at least 1024 (got integer 10)",
        ),
        (_LOCAL + '[run]\nprogress = "bogus"\n', "[run] progress: expected one of auto, rich, plain, json, none"),
    ],
)
def test_a_wrong_type_or_value_in_the_file_is_one_line_naming_table_and_key(
    tmp_path: Path, sim: SimProcess, text: str, needle: str
) -> None:
    (tmp_path / "my.toml").write_text(text.replace("BASE", sim.base_url))
    done = _eval(tmp_path, "local", "--config", "my.toml")
    assert _refused(done, needle).startswith("evalrun: my.toml: ")
    assert sim.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("not a url", "holds spaces or control characters"),
        ("127.0.0.1:1234", "has no http:// or https:// in front"),
        ("localhost:1234/v1", "has no http:// or https:// in front"),
        ("ftp://example.com/v1", "has no http:// or https:// in front"),
        ("http:///v1", "has no host"),
        ("http://127.0.0.1:99999/v1", "is not a URL"),
        (f"https://user:{SECRET}@example.com/v1", "holds a user or password"),
    ],
)
def test_a_base_url_that_cannot_reach_a_server_is_a_config_error_not_a_failed_run(
    tmp_path: Path, sim: SimProcess, url: str, fault: str
) -> None:
    (tmp_path / "config.toml").write_text(f'[providers.local]\nbase_url = "{url}"\nmodel = "m"\n')
    done = _eval(tmp_path, "local")
    _refused(done, f"config.toml: [providers.local] base_url: {fault}", "https://api.groq.com/openai/v1")
    assert url not in done.stderr  # a URL may carry credentials: never quoted
    _nowhere(tmp_path, done, SECRET, "config.toml", "suite.jsonl")


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ('latency_ms = "slow"', "[providers.sim] latency_ms must be a number, got 'slow'"),
        ("jitter_ms = true", "[providers.sim] jitter_ms must be a number"),
        ("latency_ms = -1", "[providers.sim] latency_ms must be 0 or more"),
        ("rate_429 = 2", "[providers.sim] rate_429 is a share of calls, from 0 to 1"),
        ("seed = 2.5", "[providers.sim] seed must be a whole number"),
        ("max_inflight = [1]", "[providers.sim] max_inflight must be a whole number"),
        ("api_key = 5", "[providers.sim] api_key must be a string, got int"),
        ("colour = 1", "[providers.sim] unknown setting(s): colour"),
    ],
)
def test_the_simulated_providers_own_keys_are_checked_when_the_file_is_read(
    tmp_path: Path, option: str, needle: str
) -> None:
    (tmp_path / "config.toml").write_text(f"[providers.sim]\n{option}\n")
    _refused(_eval(tmp_path, "sim"), needle)


def test_the_sim_never_shows_its_api_key_option(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[providers.sim]\napi_key = ["sk-SECRET-123456"]\n')
    done = _eval(tmp_path, "sim")
    _refused(done, "api_key must be a string, got list")
    _nowhere(tmp_path, done, SECRET, "config.toml", "suite.jsonl")


def test_a_name_holding_a_line_break_still_makes_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[run]\n"con\\ncurrency" = 3\n')
    _refused(_eval(tmp_path, "sim"), "[run] unknown setting 'con\\ncurrency'")


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"[run]\nconcurrency = 2 # \xff\xfe\n")
    _refused(_eval(tmp_path, "sim"), "config.toml: not UTF-8 text")


def test_the_providers_list_takes_names_as_text_not_markup(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[providers."[/x]"]\nbase_url = "http://h/v1"\nmodel = "m[/bold]"\n')
    done = evalrun(tmp_path, "providers")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "[/x]" in done.stdout and "m[/bold]" in done.stdout


def test_the_sample_config_toml_of_the_repository_loads() -> None:
    settings = load_settings(ROOT / "config.toml", env={})
    assert {"sim", "groq", "openai", "openrouter", "ollama", "anthropic"} <= set(settings.providers)


# -- 4. one validation path -------------------------------------------------------------------------

_PROGRESS = "expected one of auto, rich, plain, json, none (got string 'bogus')"


def test_progress_is_refused_the_same_from_flag_env_file_and_api(tmp_path: Path) -> None:
    flag = _refused(_eval(tmp_path, "sim", "--progress", "bogus"), f"--progress: {_PROGRESS}")
    env = _refused(_eval(tmp_path, "sim", env={"EVALRUN_PROGRESS": "bogus"}), f"EVALRUN_PROGRESS: {_PROGRESS}")
    (tmp_path / "config.toml").write_text('[run]\nprogress = "bogus"\n')
    file = _refused(evalrun(tmp_path, "eval", "sim"), f"config.toml: [run] progress: {_PROGRESS}")
    with pytest.raises(ConfigError, match=r"^Settings\(progress=\.\.\.\): expected one of auto"):
        Settings(progress="bogus")
    assert len({line.rsplit(": ", 1)[-1] for line in (flag, env, file)}) == 1  # the same words


def test_no_cache_with_refresh_is_one_line(tmp_path: Path) -> None:
    _refused(_eval(tmp_path, "sim", "--no-cache", "--refresh"), "--no-cache and --refresh")
    assert not (tmp_path / "cache").exists()


def test_the_python_api_is_checked_like_every_other_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here
    with pytest.raises(ConfigError, match=r"^--cache: expected on, off or refresh \(got string 'bogus'\)$"):
        Runner(cache="bogus", env={})
    for made in (
        lambda: Settings(cache="bogus"),
        lambda: Runner(Settings(concurrency=0)),
        lambda: replace(Settings(), retries=-1),
        lambda: Settings(min_pass_rate=float("nan")),
        lambda: Settings(max_response_bytes=100),
        lambda: Settings(models=("a", 1)),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigError, match=r"^Settings\(\w+=\.\.\.\): "):
            made()
    settings = Settings(cache=False, concurrency=2.0, suites=["a.jsonl"])  # type: ignore[arg-type]
    assert (settings.cache, settings.concurrency, settings.suites) == ("off", 2, ("a.jsonl",))  # read as a layer's


def test_a_bad_value_is_refused_even_where_a_later_layer_overrides_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[run]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=r"\[run\] concurrency: must be at least 1"):
        load_settings(config, env={}, concurrency=4)


# -- 5. max_response_bytes ----------------------------------------------------------------------------


def test_max_response_bytes_from_every_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).max_response_bytes == 4 * 1024 * 1024
    config = tmp_path / "config.toml"
    config.write_text("[run]\nmax_response_bytes = 65536\n")
    assert load_settings(config, env={}).max_response_bytes == 65536
    env = {"EVALRUN_MAX_RESPONSE_BYTES": "1024"}
    assert load_settings(config, env=env).max_response_bytes == 1024
    assert load_settings(config, env=env, max_response_bytes=2048).max_response_bytes == 2048
    assert Runner(max_response_bytes=5000, env={}).settings.max_response_bytes == 5000
    assert json.loads(json.dumps(load_settings(config, env={}).public()))["max_response_bytes"] == 65536
    for bad, message in (
        ({"EVALRUN_MAX_RESPONSE_BYTES": "1023"}, "EVALRUN_MAX_RESPONSE_BYTES: must be at least 1024"),
        ({"EVALRUN_MAX_RESPONSE_BYTES": "4MB"}, "EVALRUN_MAX_RESPONSE_BYTES: expected a whole number"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_settings(config, env=bad)
    done = _eval(tmp_path, "sim", env={"EVALRUN_MAX_RESPONSE_BYTES": "0"})
    _refused(done, "EVALRUN_MAX_RESPONSE_BYTES: must be at least 1024 (got string '0')")
