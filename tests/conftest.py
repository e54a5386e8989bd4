"""Fixtures shared by every test, and the guard against leaked asyncio tasks."""

from __future__ import annotations

import asyncio

import pytest

from gpuctl_async.app import create_app
from gpuctl_async.settings import Settings

# How long a test's leftover tasks get to finish on their own before the guard fails it:
# tasks cancelled during teardown need a few loop iterations to complete.
TASK_GRACE_SECONDS = 2.0


@pytest.fixture(autouse=True)
async def no_pending_tasks():
    """Fail any test that leaves asyncio tasks running after its fixtures are torn down."""
    before = set(asyncio.all_tasks())
    yield
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    deadline = loop.time() + TASK_GRACE_SECONDS
    while True:
        leaked = [t for t in asyncio.all_tasks() if t is not me and t not in before and not t.done()]
        if not leaked or loop.time() >= deadline:
            break
        await asyncio.sleep(0.01)
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test left {len(leaked)} asyncio task(s) pending: {leaked!r}")


@pytest.fixture
def unreachable_settings(unused_tcp_port: int) -> Settings:
    """Settings whose Kubernetes API URL has nobody listening."""
    return Settings(kube_api_url=f"http://127.0.0.1:{unused_tcp_port}", access_log=False,
                    auth="none")


@pytest.fixture
async def offline_client(aiohttp_client, unreachable_settings):
    """The app, with a Kubernetes API that never answers (for routes that need none)."""
    return await aiohttp_client(create_app(unreachable_settings))


@pytest.fixture
async def sim():
    """A simulated cluster on an ephemeral port, in this test's event loop."""
    from gpuctl_async.sim.testing import SimCluster

    async with SimCluster() as cluster:
        yield cluster


def sim_settings(sim, tmp_path, **changes) -> Settings:
    """Settings that reach ``sim`` through a kubeconfig file, as a real cluster would be;
    authentication off unless ``changes`` say otherwise (tests/auth turn it on).

    The heap is not frozen: each app's first full collection would walk every earlier test's
    leftovers (aiohttp's middleware cache keeps up to 1,024 handlers, with their apps, alive),
    and that made the suite twice as slow; ``tests/test_heap.py`` covers the freeze."""
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    return Settings(**{"kubeconfig": str(kubeconfig), "access_log": False, "auth": "none",
                       "freeze_heap": False, **changes})


@pytest.fixture
async def api(sim, aiohttp_client, tmp_path):
    """The app, connected to ``sim``, with every cache synced.

    ``sim`` comes before ``aiohttp_client`` so that teardown (in reverse) stops the app before
    the cluster it watches; the other way round the cluster waits for the app's watches."""
    from gpuctl_async.appkeys import CACHE

    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path)))
    assert await client.app[CACHE].wait_synced(timeout=10), "caches did not sync"
    return client


@pytest.fixture
async def live_sim():
    """A simulated cluster that behaves like one (controllers, scheduler, kubelets, quota) on
    the default GPU topology, at test pace."""
    from gpuctl_async.sim.testing import SimCluster
    from gpuctl_async.sim.timing import Timing
    from gpuctl_async.sim.topology import default_nodes

    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as cluster:
        yield cluster


@pytest.fixture
async def live_api(live_sim, aiohttp_client, tmp_path):
    """The app connected to ``live_sim``, with every cache synced."""
    from gpuctl_async.appkeys import CACHE

    client = await aiohttp_client(create_app(sim_settings(live_sim, tmp_path)))
    assert await client.app[CACHE].wait_synced(timeout=10), "caches did not sync"
    return client
