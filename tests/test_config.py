from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import arithmetic_cases, write_suite

from evalrun.plan import case_selector
from evalrun.settings import ConfigError, Settings, load_settings
from evalrun.suite import plan_suites


def test_layers_defaults_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[run]\nconcurrency = 3\ntimeout = 100\ncache_dir = "from-file"\n')
    assert load_settings(config, env={}).concurrency == 3
    env = {"EVALRUN_CONCURRENCY": "7", "EVALRUN_CACHE_DIR": "from-env"}
    assert load_settings(config, env=env).concurrency == 7
    settings = load_settings(config, env=env, concurrency=9)
    assert (settings.concurrency, settings.cache_dir, settings.timeout) == (9, "from-env", 100.0)
    assert load_settings(tmp_path / "config.toml", env={}, timeout=None).timeout == 100.0  # None: flag not given


def test_builtin_defaults_without_any_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.provider == "sim" and settings.suite_paths()[0].endswith("sample.jsonl")


def test_legacy_environment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"MAX_CONCURRENT_REQUESTS": "12", "ENABLE_EVALUATION_CACHE": "false", "EVALUATION_TIMEOUT": "30"}
    settings = load_settings(env=env)
    assert (settings.concurrency, settings.cache, settings.timeout) == (12, "off", 30.0)
    assert load_settings(env={**env, "EVALRUN_CONCURRENCY": "2"}).concurrency == 2  # the new name wins


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\nconcurrency = 'x'\n", "[run] concurrency: expected a whole number (got string 'x')"),
        ("[run]\nbogus = 1\n", "unknown setting 'bogus'"),
        ("[run\n", "invalid TOML"),
        ("[providers.mine]\nmodel = 'm'\n", "[providers.mine] base_url: missing; a profile of api 'openai' needs one"),
        ("[providers.mine]\nbase_url = 'http://x'\ncolour = 1\n", "unknown setting(s): colour"),
        ("[run]\nconcurrency = 0\n", "[run] concurrency: must be at least 1 (got integer 0)"),
        ("[run]\nmin_pass_rate = 2\n", "[run] min_pass_rate: must be from 0 to 1 (got integer 2)"),
        ("[run]\ntimeout = inf\n", "[run] timeout: expected a finite number (got float inf)"),
        ("[runn]\nconcurrency = 2\n", "unknown key 'runn' (did you mean 'run'?)"),
    ],
)
def test_config_errors_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_flags_env_and_file_go_through_the_same_checks_and_name_their_source(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[run]\nretries = -1\n")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"config": config}, "must be at least 0 (got integer -1)", "[run] retries:"),
        ({"env": {"EVALRUN_RETRIES": "-1"}}, "must be at least 0 (got string '-1')", "EVALRUN_RETRIES:"),
        ({"retries": -1}, "must be at least 0 (got integer -1)", "--retries:"),
        ({"env": {"MAX_CONCURRENT_REQUESTS": "0"}}, "must be at least 1", "MAX_CONCURRENT_REQUESTS:"),
        ({"concurrency": "many"}, "expected a whole number (got string 'many')", "--concurrency:"),
        ({"timeout": True}, "expected a number (got boolean True)", "--timeout:"),
        ({"progress": "fancy"}, "expected one of auto, rich, plain, json, none (got string 'fancy')", "--progress:"),
        ({"max_response_bytes": 1000}, "must be at least 1024 (got integer 1000)", "--max-response-bytes:"),
    ]
    for layers, problem, source in cases:
        kwargs: dict[str, Any] = {"env": {}}
        kwargs.update(layers)
        with pytest.raises(ConfigError) as info:
            load_settings(**kwargs)
        assert problem in str(info.value) and source in str(info.value), (layers, str(info.value))


def test_a_typo_in_the_file_gets_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[run]\nconcurency = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'concurency' \\(did you mean 'concurrency'\\?\\)"):
        load_settings(config, env={})


def test_every_setting_can_be_given_as_a_flag() -> None:
    """The typed flag layer mirrors the settings: none can drift from the other."""
    from dataclasses import fields

    from evalrun.settings import SettingsLayer, TestSettings, TestSettingsLayer

    assert set(SettingsLayer.__annotations__) == {f.name for f in fields(Settings)} - {"providers"}
    assert set(TestSettingsLayer.__annotations__) == {f.name for f in fields(TestSettings)}


def test_provider_profiles_of_every_kind(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[providers.claude]\napi = "anthropic"\napi_key_env = "K"\nmodel = "c"\nmax_tokens = 64\n'
        '[providers.fast]\napi = "sim"\nlatency_ms = 0\n'
    )
    settings = load_settings(config, env={})
    claude, fast = settings.providers["claude"], settings.providers["fast"]
    assert (claude.api, claude.options) == ("anthropic", {"max_tokens": 64})
    assert (fast.api, fast.options) == ("sim", {"latency_ms": 0})
    config.write_text('[providers.key]\napi = "sim"\nrpm = 600\n[providers.real]\nbase_url = "http://x"\nrpm = 30\n')
    key, real = load_settings(config, env={}).providers["key"], load_settings(config, env={}).providers["real"]
    assert (key.rpm, key.options["rpm"]) == (None, 600)  # the simulated server's budget, not the client's
    assert (real.rpm, real.options) == (30, {})
    config.write_text("[providers.old]\nsimulated = true\nlatency_ms = 5\n")  # before profiles had an api
    assert load_settings(config, env={}).providers["old"].api == "sim"
    for table, message in (
        ('api = "soap"', "api: expected one of openai, anthropic, sim \\(got string\\)"),
        ('api = "sim"\nrate_429 = 2', "rate_429 is a share of calls, from 0 to 1"),
        ('api = "anthropic"\nmax_tokens = 0', "max_tokens must be a positive integer"),
    ):
        config.write_text(f"[providers.x]\n{table}\n")
        with pytest.raises(ConfigError, match=message):
            load_settings(config, env={})


def test_own_provider_profile_and_public_settings_hold_no_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[providers.mine]\nbase_url = "http://127.0.0.1:1/v1"\napi_key_env = "MINE_KEY"\nmodel = "m"\n')
    settings = load_settings(config, env={"MINE_KEY": "sk-123"}, provider="mine")
    assert settings.profile().api_key_env == "MINE_KEY"
    assert "sk-123" not in repr(settings.public())


def test_category_filter_and_limit_select_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = write_suite(
        tmp_path / "s.jsonl", arithmetic_cases(6, "a") + [{**c, "id": f"b-{c['id']}"} for c in arithmetic_cases(4, "b")]
    )

    def pick(**flags: Any) -> list[str]:
        settings = load_settings(env={}, suites=(str(suite),), **flags)
        select = case_selector(settings.categories, settings.filter)
        plan = plan_suites(settings.suite_paths(), select=select, limit=settings.limit)
        ids = [c.id for c in plan.cases()]
        assert plan.total == len(ids) and sum(plan.categories.values()) == len(ids)
        return ids

    assert pick(categories=("b",)) == ["b-c00000", "b-c00001", "b-c00002", "b-c00003"]
    assert pick(filter="0000[12]$") == ["c00001", "c00002", "b-c00001", "b-c00002"]
    assert pick(categories=("a",), limit=2) == ["c00000", "c00001"]
    assert pick(limit=3) == ["c00000", "c00001", "c00002"]
    with pytest.raises(ConfigError, match="invalid regex"):
        pick(filter="(")
