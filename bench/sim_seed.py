"""Benchmark: seeding 10,000 Running pods in 1,000 gpuctl training jobs, and idle CPU after.

Starts ``python -m gpuctl_async.sim`` (workloads on the default topology) as a separate
process, seeds through ``POST /_sim/seed/running-jobs``, waits until the Job controller has
caught up (every Job reports its pods active and ready), then prints: the time to seed (as
the sim measured it and as the client saw it), the time until settled, the sim's RSS, and
the CPU seconds the sim used over ``--idle`` seconds of idling with all of it loaded. Not a
test: run ``python bench/sim_seed.py [--jobs N] [--pods-per-job N] [--namespaces N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from measure import cpu_seconds, rss_mib, start_sim




async def settled(session: aiohttp.ClientSession, url: str, jobs: int, per_job: int) -> bool:
    async with session.get(f"{url}/apis/batch/v1/jobs") as response:
        items = (await response.json())["items"]
    return len(items) == jobs and all(
        (j.get("status") or {}).get("active") == per_job and
        (j.get("status") or {}).get("ready") == per_job for j in items)


async def main(jobs: int, per_job: int, namespaces: int, idle: float) -> None:
    proc, url = await start_sim()
    try:
        print(f"sim pid {proc.pid} at {url}; RSS at start {rss_mib(proc.pid):.1f} MiB")
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            async with session.post(f"{url}/_sim/seed/running-jobs", json={
                    "jobs": jobs, "podsPerJob": per_job, "namespaces": namespaces}) as response:
                assert response.status == 200, await response.text()
                result = await response.json()
            seeded = time.perf_counter() - started
            print(f"seeded {result['pods']} Running pods in {result['jobs']} jobs across "
                  f"{namespaces} namespaces: {result['seconds']:.2f} s in the sim, "
                  f"{seeded:.2f} s for the client")
            while not await settled(session, url, jobs, per_job):
                await asyncio.sleep(0.2)
            print(f"Job statuses settled {time.perf_counter() - started:.2f} s after the "
                  f"request; sim RSS {rss_mib(proc.pid):.1f} MiB")
        await asyncio.sleep(1)  # let the last status writes drain
        before, started = cpu_seconds(proc.pid), time.perf_counter()
        await asyncio.sleep(idle)
        used, elapsed = cpu_seconds(proc.pid) - before, time.perf_counter() - started
        print(f"sim CPU at idle with {result['pods']} pods: {used:.3f} CPU-s over "
              f"{elapsed:.1f} s ({100 * used / elapsed:.2f}% of a core)")
    finally:
        proc.terminate()
        await proc.communicate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pods-per-job", type=int, default=10)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to measure idle CPU")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.pods_per_job, args.namespaces, args.idle))
