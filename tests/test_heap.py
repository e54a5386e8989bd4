"""The heap freeze after the first sync (``gpuctl_async/heap.py``, setting ``freeze_heap``)."""

import asyncio
import gc

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from tests.conftest import sim_settings
from tests.helpers import eventually


async def test_synced_caches_are_frozen_out_of_the_collector_and_thawed_at_shutdown(
        sim, aiohttp_client, tmp_path):
    assert gc.get_freeze_count() == 0
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, freeze_heap=True)))
    assert await client.app[CACHE].wait_synced(timeout=10)
    await eventually(gc.get_freeze_count, lambda frozen: frozen > 0)
    await client.close()
    assert gc.get_freeze_count() == 0  # a process hosting the app gets its heap back


async def test_without_the_setting_nothing_is_frozen(sim, aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path)))
    assert await client.app[CACHE].wait_synced(timeout=10)
    assert (await client.get("/api/v1/jobs")).status == 200
    assert gc.get_freeze_count() == 0


async def test_the_collector_is_paused_while_the_caches_fill_and_runs_again_after(
        sim, aiohttp_client, tmp_path):
    assert gc.isenabled()
    sim.refuse("list", "nodes")  # the node cache cannot fill until this is lifted
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, freeze_heap=True)))
    cache = client.app[CACHE]
    await eventually(lambda: cache.nodes.last_error, lambda error: error is not None)
    # Each growth of the heap by a quarter would start a full pass over all of it.
    assert not gc.isenabled() and not cache.nodes.synced
    sim.refuse(None)
    assert await cache.wait_synced(timeout=10)
    await eventually(gc.get_freeze_count, lambda frozen: frozen > 0)
    assert gc.isenabled()
    await client.close()
    assert gc.isenabled() and gc.get_freeze_count() == 0


async def test_a_shutdown_before_the_first_sync_lets_the_collector_run_again(
        sim, aiohttp_client, tmp_path):
    sim.refuse("list", "nodes")
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, freeze_heap=True)))
    await eventually(lambda: client.app[CACHE].nodes.last_error, lambda e: e is not None)
    assert not gc.isenabled()
    await client.close()
    assert gc.isenabled() and gc.get_freeze_count() == 0


async def test_young_passes_are_spaced_while_the_app_runs_and_restored_after(
        sim, aiohttp_client, tmp_path):
    before = gc.get_threshold()
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path,
                                                          gc_young_threshold=12345)))
    assert gc.get_threshold() == (12345, *before[1:])
    await client.close()
    assert gc.get_threshold() == before


async def test_young_passes_are_paced_while_the_app_runs(sim, aiohttp_client, tmp_path):
    """Besides CPython's own (none here: a threshold no test allocates up to)."""
    client = await aiohttp_client(create_app(sim_settings(
        sim, tmp_path, gc_young_threshold=10**9, gc_young_interval=0.05)))
    passes = gc.get_stats()[0]["collections"]
    await eventually(lambda: gc.get_stats()[0]["collections"], lambda n: n >= passes + 3,
                     timeout=5)
    await client.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "young collections"]


async def test_a_zero_threshold_leaves_the_collector_alone(sim, aiohttp_client, tmp_path):
    before = gc.get_threshold()
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, gc_young_threshold=0)))
    assert gc.get_threshold() == before
    await client.close()
