"""An idle service on a cluster with kube-apiserver's watch timing stays quiet and ready.

The simulated cluster runs the real server's clock (``WatchTiming()``: periodic bookmarks a
minute apart, one 2 s before the watch's end, compaction every 5 minutes; an idle watch's
first bookmark here after 7 minutes, the longest seen on real servers) shortened 50 times,
and the service runs its default watch settings shortened alike (the read timeout with a
little more slack, for a loaded test machine); 12 s stand for 10 minutes. On the timing that
broke it on a real cluster (no server-side end below the read timeout) every idle watch died
and ``/ready`` flapped."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.watch import WatchTiming
from tests.conftest import sim_settings
from tests.helpers import eventually

SCALE = 1 / 50
SOAK_SECONDS = 12.0  # 10 minutes at SCALE


@pytest.fixture
async def real_timing_sim():
    timing = dataclasses.replace(WatchTiming(), first_bookmark_delay=420.0).scaled(SCALE)
    async with SimCluster(watch_timing=timing) as cluster:
        yield cluster


async def test_idle_service_logs_no_watch_warning_and_never_turns_unready(
        real_timing_sim, aiohttp_client, tmp_path, caplog):
    sim = real_timing_sim
    # The defaults (90 s timeoutSeconds, 120 s read timeout, 60 s grace), shortened; the
    # timeout is whole seconds on the wire.
    settings = sim_settings(sim, tmp_path, watch_timeout=2, watch_inactivity_timeout=3.5,
                            watch_outage_grace=60 * SCALE, ready_probe_interval=0.5)
    with caplog.at_level(logging.DEBUG, logger="gpuctl_async.k8s.informer"):
        api = await aiohttp_client(create_app(settings))
        assert await api.app[CACHE].wait_synced(timeout=10)
        lists = sim.counters()["requests"]["list"]
        sim.reset_counters()
        loop = asyncio.get_running_loop()
        end = loop.time() + SOAK_SECONDS
        while loop.time() < end:
            resp = await api.get("/ready")
            assert resp.status == 200, await resp.text()
            await asyncio.sleep(0.1)  # a readiness probe's period, shortened
    requests = sim.counters()["requests"]
    warnings = [r for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("gpuctl_async.k8s")]
    assert not warnings, [r.getMessage() for r in warnings]
    assert not [r for r in caplog.records if "interrupted" in r.getMessage()]
    # Watches did end and resume (many times each) without a relist: the pre-timeout
    # bookmark keeps their resourceVersion ahead of the timed compaction.
    assert "list" not in requests, (lists, requests)
    assert all(n >= 4 for n in requests["watch"].values()), requests["watch"]
    assert sim.store.log("pods").horizon > 0  # compaction did run meanwhile


async def test_short_reconnects_keep_a_synced_service_ready(sim, aiohttp_client, tmp_path):
    api = await aiohttp_client(create_app(sim_settings(sim, tmp_path, watch_timeout=5,
                                                       watch_inactivity_timeout=0.5)))
    cache = api.app[CACHE]
    assert await cache.wait_synced(timeout=10)
    for _ in range(5):
        sim.close_watches()
        assert (await api.get("/ready")).status == 200
    # A stalled stream (no byte, no end) is found by the read timeout and replaced; the
    # service stays ready meanwhile and sees what changed.
    sim.silence_watches(1.0)
    sim.store.create("namespaces", {"metadata": {"name": "after-stall"}})
    await eventually(lambda: cache.namespaces.get("", "after-stall"), bool, timeout=5)
    assert (await api.get("/ready")).status == 200


async def test_long_watch_outage_of_a_synced_cache_turns_unready(sim, aiohttp_client,
                                                                 tmp_path):
    api = await aiohttp_client(create_app(sim_settings(
        sim, tmp_path, watch_outage_grace=0.5, watch_backoff_max=0.2)))
    assert await api.app[CACHE].wait_synced(timeout=10)
    sim.refuse("watch", "nodes")
    sim.close_watches()
    resp = await eventually(lambda: api.get("/ready"), lambda r: r.status == 503, timeout=5)
    error = (await resp.json())["error"]
    assert error.startswith("watch of nodes has been down for ")
    assert 'cannot watch resource "nodes"' in error
    assert (await api.get("/api/v1/nodes")).status == 200  # synced: stale data still served
    sim.refuse(None)
    await eventually(lambda: api.get("/ready"), lambda r: r.status == 200, timeout=5)
