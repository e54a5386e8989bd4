"""Benchmark: the simulated cluster with 10,000 pods and 200 watchers.

Starts ``python -m gpuctl_async.sim`` as a separate process (so its memory is its own),
bulk-seeds pods through ``/_sim/seed``, then prints: the seeding time; the time to list all
pods through kubernetes_asyncio (raw JSON, ``_preload_content=False``) in one request and in
pages of 500; the sim's RSS; and how long 200 concurrent watchers take to all receive 100
changes. Not a test: run ``python bench/sim_list.py [--pods N] [--watchers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from kubernetes_asyncio import client, config
from measure import rss_mib, start_sim



async def list_all(core: client.CoreV1Api, limit: int | None = None) -> int:
    count, token = 0, None
    while True:
        kwargs = {"limit": limit, "_continue": token} if limit else {}
        response = await core.list_pod_for_all_namespaces(_preload_content=False, **kwargs)
        body = orjson.loads(await response.read())
        response.release()
        count += len(body["items"])
        token = body["metadata"].get("continue")
        if not token:
            return count


async def watcher(session: aiohttp.ClientSession, url: str, rv: str, wanted: int,
                  ready: asyncio.Event, counter: list[int]) -> None:
    async with session.get(f"{url}/api/v1/namespaces/bench/pods",
                           params={"watch": "true", "resourceVersion": rv,
                                   "timeoutSeconds": "120"}) as response:
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        seen = 0
        async for _ in response.content:
            seen += 1
            if seen == wanted:
                return


async def main(pods: int, watchers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        proc, url = await start_sim("--no-workloads", "--kubeconfig-out", str(kubeconfig))
        try:
            print(f"sim pid {proc.pid} at {url}; RSS at start {rss_mib(proc.pid):.1f} MiB")
            async with aiohttp.ClientSession() as session:
                started = time.perf_counter()
                async with session.post(f"{url}/_sim/seed", json={
                        "resource": "pods", "count": pods, "namespace": "bench"}) as response:
                    assert response.status == 200, await response.text()
                print(f"seeded {pods} pods in {time.perf_counter() - started:.2f} s")
                configuration = client.Configuration()
                await config.load_kube_config(config_file=str(kubeconfig),
                                              client_configuration=configuration)
                async with client.ApiClient(configuration) as api:
                    core = client.CoreV1Api(api)
                    for label, limit in (("one request", None), ("pages of 500", 500)):
                        timings = []
                        for _ in range(3):
                            started = time.perf_counter()
                            count = await list_all(core, limit)
                            timings.append(time.perf_counter() - started)
                        assert count == pods
                        print(f"list {count} pods ({label}, kubernetes_asyncio raw): best "
                              f"{min(timings) * 1000:.0f} ms, worst {max(timings) * 1000:.0f} ms")
                print(f"sim RSS with {pods} pods: {rss_mib(proc.pid):.1f} MiB")
                async with session.get(f"{url}/api/v1/namespaces/bench/pods",
                                       params={"limit": "1"}) as response:
                    rv = (await response.json())["metadata"]["resourceVersion"]
                changes = 100
                ready, counter = asyncio.Event(), [0, watchers]
                connector_session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=watchers + 10))
                async with connector_session:
                    tasks = [asyncio.create_task(watcher(connector_session, url, rv, changes,
                                                         ready, counter))
                             for _ in range(watchers)]
                    await asyncio.wait_for(ready.wait(), 60)
                    started = time.perf_counter()
                    for i in range(changes):
                        async with session.patch(
                                f"{url}/api/v1/namespaces/bench/pods/seed-pod-{i:05d}",
                                data=orjson.dumps({"metadata": {"labels": {"bench": "1"}}}),
                                headers={"Content-Type": "application/merge-patch+json"}) as r:
                            assert r.status == 200
                    await asyncio.wait_for(asyncio.gather(*tasks), 120)
                print(f"{watchers} watchers each received {changes} changes in "
                      f"{time.perf_counter() - started:.2f} s")
                print(f"sim RSS after the watch fan-out: {rss_mib(proc.pid):.1f} MiB")
        finally:
            proc.terminate()
            await proc.communicate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.pods, args.watchers))
