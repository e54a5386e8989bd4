"""Benchmark: explaining waiting jobs on a busy pool, from the caches.

In one process: a simulated cluster seeded with 10,000 Running pods in training-pool (the
default topology), ``--waiting`` gpuctl pods that can never be placed there, and the service
connected to it. Prints, beside targets:

- how long one pass re-explaining every waiting pod of the pool takes (what the job list does
  at most every ``REEXPLAIN_SECONDS`` while the pool changes), when the waiting pods share one
  shape (the replicas of one job) and when every one differs;
- one queue position (what a job detail asks);
- ``GET /api/v1/jobs`` p99 with those rows in the list.

Not a test: ``python bench/job_reasons.py [--waiting 200]``; about 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from measure import percentile

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE, EXPLAINER
from gpuctl_async.settings import Settings
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

PASS_TARGET_MS = 20.0
POSITION_TARGET_MS = 2.0
LIST_P99_TARGET_MS = 50.0


def waiting_pod(index: int, distinct: bool) -> dict:
    cpu = f"{200 + index}" if distinct else "200"  # more than any node has: never placed
    return {"metadata": {"name": f"wait-{index}", "labels": {
        "runwhere.ai/job-type": "training", "runwhere.ai/job-name": f"wait-{index}",
        "runwhere.ai/pool": "training-pool"}},
        "spec": {"nodeSelector": {"runwhere.ai/pool": "training-pool"},
                 "containers": [{"name": "main", "image": "trainer:v1", "resources": {
                     "limits": {"nvidia.com/gpu": "8", "cpu": cpu}}}]}}


def timed_ms(call, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        sim.seed_running_jobs(jobs=1000, pods_per_job=10, namespaces=10)
        half = args.waiting // 2
        for index in range(args.waiting):
            sim.store.create("pods", waiting_pod(index, distinct=index >= half),
                             namespace="default")
        with tempfile.TemporaryDirectory() as folder:
            kubeconfig = sim.write_kubeconfig(Path(folder) / "kubeconfig")
            app = create_app(Settings(kubeconfig=str(kubeconfig), access_log=False,
                                      auth="none"))
            client = TestClient(TestServer(app))
            await client.start_server()
            try:
                await run(app, client, args, half)
            finally:
                await client.close()


async def run(app, client: TestClient, args: argparse.Namespace, half: int) -> None:
    cache, explainer = app[CACHE], app[EXPLAINER]
    assert await cache.wait_synced(60), "caches did not sync"
    deadline = time.monotonic() + 30
    while len(explainer.queue.waiting_in("training-pool")) < args.waiting:
        assert time.monotonic() < deadline, "the waiting pods did not reach the cache"
        await asyncio.sleep(0.1)  # a benchmark, not a test: polling the cache is fine here
    waiting = explainer.queue.waiting_in("training-pool")
    same = [p for p in waiting if int(p["metadata"]["name"].split("-")[1]) < half]
    distinct = [p for p in waiting if int(p["metadata"]["name"].split("-")[1]) >= half]
    print(f"{len(cache.pods)} pods cached, {len(waiting)} waiting in training-pool; e.g. "
          f"{explainer.pod(waiting[0]).reason}: {explainer.pod(waiting[0]).message}")
    for label, pods in (("one shape", same), ("all distinct", distinct)):
        times = timed_ms(lambda pods=pods: explainer.waiting_pods(pods), 20)
        print(f"re-explaining {len(pods)} waiting pods ({label}): median "
              f"{percentile(times, 0.5):.1f} ms, max {max(times):.1f} ms "
              f"(target per pass: {PASS_TARGET_MS:.0f} ms)")
    position = timed_ms(lambda: explainer.queue.position(waiting[-1]), 100)
    print(f"queue position among {len(waiting)}: median {percentile(position, 0.5):.2f} ms "
          f"(target {POSITION_TARGET_MS:.0f} ms)")
    latencies = []
    for page in range(1, 201):
        started = time.perf_counter()
        resp = await client.get("/api/v1/jobs", params={"pageSize": 50, "page": page})
        await resp.read()
        latencies.append((time.perf_counter() - started) * 1000)
    print(f"GET /api/v1/jobs?pageSize=50, one client, 200 pages: p50 "
          f"{percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms "
          f"(target p99 {LIST_P99_TARGET_MS:.0f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
