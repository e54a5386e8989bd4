"""Setting ``auth``: kubernetes by default, none under --simulate unless asked; none against a
cluster says so once."""

from __future__ import annotations

import logging

import pytest

from gpuctl_async.settings import SettingsError, load_settings
from tests.conftest import sim_settings


@pytest.mark.parametrize(("overrides", "environ", "expected"), [
    ({}, {}, "kubernetes"),
    ({"simulate": True}, {}, "none"),
    ({"simulate": True, "auth": "kubernetes"}, {}, "kubernetes"),
    ({"simulate": True}, {"GPUCTL_AUTH": "kubernetes"}, "kubernetes"),
    ({}, {"GPUCTL_AUTH": "none"}, "none"),
])
def test_default_mode(overrides, environ, expected, tmp_path):
    settings = load_settings(config_file=None, environ={"GPUCTL_CONFIG": str(_empty(tmp_path)),
                                                        **environ}, overrides=overrides)
    assert settings.auth == expected


def test_unknown_mode_and_bad_ttls_are_named(tmp_path):
    config = {"GPUCTL_CONFIG": str(_empty(tmp_path))}
    with pytest.raises(SettingsError, match="'auth'"):
        load_settings(environ={**config, "GPUCTL_AUTH": "ldap"})
    with pytest.raises(SettingsError, match="authz_ttl"):
        load_settings(environ={**config, "GPUCTL_AUTHZ_TTL": "-1"})


async def test_auth_none_against_a_cluster_warns_once(sim, aiohttp_client, tmp_path, caplog):
    from gpuctl_async.app import create_app

    caplog.set_level(logging.WARNING)
    await aiohttp_client(create_app(sim_settings(sim, tmp_path, auth="none")))
    warnings = [r for r in caplog.records if "service's own Kubernetes rights" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def _empty(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")
    return path
