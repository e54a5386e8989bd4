"""An app with authentication on, against a simulated cluster with RBAC on.

The service runs as the ``gpuctl-async`` ServiceAccount bound to the ClusterRole of
``config/k8s/rbac.yaml`` alone, as deployed; the demo identities are those of
``serve --simulate --auth kubernetes``: ``admin`` (system:masters), ``alice`` with ``edit`` in
``team-a``, ``bob`` with ``edit`` in ``team-b``.
"""

from __future__ import annotations

import secrets

import pytest

from gpuctl_async.app import create_app
from gpuctl_async.settings import Settings
from gpuctl_async.simulate import DemoIdentities, install_demo_identities


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def rbac_sim():
    from gpuctl_async.sim.testing import SimCluster
    from gpuctl_async.sim.timing import Timing
    from gpuctl_async.sim.topology import default_nodes

    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast(),
                          token=secrets.token_urlsafe(16)) as cluster:
        yield cluster


@pytest.fixture
async def demo(rbac_sim) -> DemoIdentities:
    return install_demo_identities(rbac_sim)


def auth_settings(sim, demo: DemoIdentities, tmp_path, **changes) -> Settings:
    kubeconfig = sim.write_kubeconfig(tmp_path / "service.kubeconfig", token=demo.service)
    return Settings(**{"kubeconfig": str(kubeconfig), "access_log": False, "auth": "kubernetes",
                       "freeze_heap": False, **changes})


async def start(aiohttp_client, settings: Settings):
    from gpuctl_async.appkeys import CACHE

    client = await aiohttp_client(create_app(settings))
    assert await client.app[CACHE].wait_synced(timeout=10), "caches did not sync"
    return client


@pytest.fixture
async def auth_api(rbac_sim, demo, aiohttp_client, tmp_path):
    """The app with auth on; ``rbac_sim`` first so the app stops before the cluster."""
    return await start(aiohttp_client, auth_settings(rbac_sim, demo, tmp_path))
