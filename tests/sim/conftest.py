"""Fixtures for the simulated cluster's tests: a SimCluster and real kubernetes_asyncio clients."""

from __future__ import annotations

import pytest

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.watch import WatchTiming

from .helpers import make_clients


@pytest.fixture
async def sim():
    async with SimCluster(history_window=50, watch_timing=WatchTiming.quick(0.2),
                          max_grace_seconds=0.2) as cluster:
        yield cluster


@pytest.fixture
async def k8s(sim, tmp_path):
    clients = await make_clients(sim, tmp_path)
    yield clients
    await clients.api.close()
