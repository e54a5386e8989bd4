"""Settings layers: defaults < config file < GPUCTL_* environment < flags."""

from __future__ import annotations

import pytest

from gpuctl_async.settings import Settings, SettingsError, load_settings


def test_defaults_without_file_or_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config/gpuctl.yaml here
    assert load_settings(environ={}) == Settings()


def test_each_layer_overrides_the_one_below(tmp_path):
    config = tmp_path / "gpuctl.yaml"
    config.write_text("port: 9000\nhost: 0.0.0.0\nlog_level: debug\naccess_log: false\n")
    from_file = load_settings(config_file=config, environ={})
    assert (from_file.port, from_file.host, from_file.log_level, from_file.access_log) == (
        9000, "0.0.0.0", "DEBUG", False)

    env = {"GPUCTL_PORT": "9100", "GPUCTL_ACCESS_LOG": "yes"}
    from_env = load_settings(config_file=config, environ=env)
    assert (from_env.port, from_env.host, from_env.access_log) == (9100, "0.0.0.0", True)

    from_flags = load_settings(config_file=config, environ=env, overrides={"port": 9200, "host": None})
    assert (from_flags.port, from_flags.host) == (9200, "0.0.0.0")


def test_config_file_from_environment(tmp_path):
    config = tmp_path / "other.yaml"
    config.write_text("max_body_bytes: 2048\n")
    assert load_settings(environ={"GPUCTL_CONFIG": str(config)}).max_body_bytes == 2048


def test_shipped_config_file_is_all_defaults():
    assert load_settings(config_file="config/gpuctl.yaml", environ={}) == Settings()


@pytest.mark.parametrize(
    ("content", "environ", "message"),
    [
        ("prot: 1\n", {}, "unknown settings: prot"),
        ("port: [1]\n", {}, "setting 'port' has an invalid value"),
        ("", {"GPUCTL_PORT": "eighty"}, "setting 'port' has an invalid value 'eighty'"),
        ("", {"GPUCTL_ACCESS_LOG": "maybe"}, "setting 'access_log'"),
        ("", {"GPUCTL_LOG_LEVEL": "loud"}, "setting 'log_level'"),
        ("", {"GPUCTL_PORT": "70000"}, "between 0 and 65535"),
        ("listen_backlog: 0\n", {}, "'listen_backlog' must be between 1 and 65535, not 0"),
        ("", {"GPUCTL_GC_YOUNG_INTERVAL": "-1"}, "'gc_young_interval' must be between 0 and"),
        ("- a\n", {}, "must hold a mapping"),
        ("a: [\n", {}, "is not valid YAML"),
        # The server may stay silent until timeoutSeconds ends a watch: the read timeout
        # must outlast it, or idle watches die on their own timing (issue 13).
        ("watch_timeout: 120\n", {}, "must be more than 'watch_timeout'"),
        ("", {"GPUCTL_WATCH_TIMEOUT": "0"}, "'watch_timeout' must be at least 1"),
    ],
)
def test_bad_values_name_the_setting(tmp_path, content, environ, message):
    config = tmp_path / "gpuctl.yaml"
    config.write_text(content)
    with pytest.raises(SettingsError, match=message.replace("[", r"\[")):
        load_settings(config_file=config, environ=environ)


def test_missing_explicit_config_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(config_file=tmp_path / "nope.yaml", environ={})


def test_every_setting_is_documented_in_the_config_file_and_readme():
    from pathlib import Path

    from gpuctl_async.settings import FIELDS

    root = Path(__file__).resolve().parent.parent
    config = (root / "config" / "gpuctl.yaml").read_text()
    readme = (root / "README.md").read_text()
    for name in FIELDS:
        assert f"# {name}:" in config, f"config/gpuctl.yaml does not list {name}"
        assert f"`GPUCTL_{name.upper()}`" in readme, f"README does not list GPUCTL_{name.upper()}"
