"""The envelope seeder (chunked, the loop stays responsive) and the churn generator."""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import orjson
import pytest

from gpuctl_async.sim import gpuctl_objects as labels
from gpuctl_async.sim.churn import CONDITION
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

from .helpers import wait_for


@pytest.fixture
async def cluster():
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        yield sim
    # The seeder and the churn freeze the heap (a sim process lives with its objects);
    # in this shared test process that would outlive the test (tests/test_heap.py sees it).
    gc.unfreeze()


async def test_envelope_seeding_runs_in_slices_while_the_api_answers(cluster):
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{cluster.url}/_sim/seed/envelope", json={
                "nodes": 30, "jobs": 20, "podsPerJob": 3, "otherPods": 1500,
                "namespaces": 4, "sliceMs": 1}) as resp:
            assert resp.status == 202
        # The API answers while seeding goes on: the seeding is not one blocking loop.
        seen_partial = False
        while True:
            async with session.get(f"{cluster.url}/version") as resp:
                assert resp.status == 200
            async with session.get(f"{cluster.url}/_sim/seed/envelope") as resp:
                progress = await resp.json()
            if progress["done"]:
                break
            seen_partial = True
        assert seen_partial
        async with session.post(f"{cluster.url}/_sim/seed/envelope", json={"bogus": 1}) as resp:
            assert resp.status == 400
            assert "bogus" in await resp.text()
    assert "error" not in progress
    assert (progress["nodes"], progress["jobs"], progress["pods"], progress["otherPods"]) == \
        (30, 20, 60, 1500)
    assert progress["longestSliceMs"] > 0
    # CPU time of a slice can only be the wall-clock time or less.
    assert 0 < progress["longestSliceCpuMs"] <= progress["longestSliceMs"] + 1
    nodes = cluster.store.list("nodes")
    assert len([n for n in nodes if n["metadata"]["name"].startswith("node-")]) == 30
    assert {n["metadata"]["labels"].get(labels.POOL) for n in nodes} >= {
        "training-pool", "inference-pool", None}
    others = [p for p in cluster.store.list("pods") if p["metadata"]["namespace"].startswith(
        "other-")]
    assert len(others) == 1500
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] for p in others)
    gpuctl = cluster.store.list("pods", label_selector=labels.JOB_TYPE)
    assert len(gpuctl) == 60 and all(p["status"]["phase"] == "Running" for p in gpuctl)


async def watch_churn(url: str, seen: list[float], listed: asyncio.Event) -> None:
    """Collect the churn stamps a pod watch delivers (from a list made before the churn)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/pods", params={"limit": "1"}) as resp:
            version = (await resp.json())["metadata"]["resourceVersion"]
        listed.set()
        async with session.get(f"{url}/api/v1/pods", params={
                "watch": "true", "resourceVersion": version}) as resp:
            async for line in resp.content:
                event = orjson.loads(line)
                conditions = event["object"].get("status", {}).get("conditions") or []
                if any(c["type"] == CONDITION for c in conditions):
                    seen.append(float(next(c["message"] for c in conditions
                                           if c["type"] == CONDITION)))


async def test_churn_changes_creates_and_deletes_and_every_watcher_sees_each_change(cluster):
    cluster.seed_running_jobs(jobs=4, pods_per_job=5, namespaces=2)
    watchers: list[list[float]] = [[], [], []]
    listed = [asyncio.Event() for _ in watchers]
    tasks = [asyncio.create_task(watch_churn(cluster.url, seen, event))
             for seen, event in zip(watchers, listed)]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in listed)), 5)
    gc.unfreeze()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{cluster.url}/_sim/churn", json={
                "changesPerSecond": 100, "createsPerSecond": 40, "deletesPerSecond": 20,
                "seconds": 0}) as resp:
            assert resp.status == 202
        await wait_for(lambda: cluster.workloads.churn.report["changes"] >= 40, timeout=10)
        assert gc.get_freeze_count() > 0  # what the churn left alive is frozen as it goes
        await wait_for(lambda: cluster.workloads.churn.report["deletes"] >= 3, timeout=10)
        async with session.delete(f"{cluster.url}/_sim/churn") as resp:
            report = await resp.json()
        async with session.post(f"{cluster.url}/_sim/churn",
                                json={"changesPerSecond": -1}) as resp:
            assert resp.status == 400
    assert report["running"] is False
    churned = cluster.store.list("pods", "churn")
    assert len(churned) == report["creates"] - report["deletes"]
    await wait_for(lambda: all(len(seen) >= report["changes"] for seen in watchers), timeout=10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(len(seen) == report["changes"] for seen in watchers)
