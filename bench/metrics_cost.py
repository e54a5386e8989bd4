"""Benchmark: what metrics cost a job list request inside the app, steadier than rates.

Two apps, ``metrics: true`` and ``metrics: false``, watch one simulated cluster (500 jobs of
10 Running pods, in-process) and answer ``GET /api/v1/jobs?pageSize=50&page=N`` through
their whole middleware chain and handler (``app._handle``: no sockets, no HTTP parsing), in
alternating rounds; the figure is the difference of the medians. The network-level figure
(``bench/jobs_read.py --metrics-cost``) swings by ±15 % on a shared machine; this one by
about a microsecond.

Not a test: ``python bench/metrics_cost.py [--rounds 20 --requests 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestServer, make_mocked_request

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.settings import Settings
from gpuctl_async.sim.testing import SimCluster

TARGET = 0.05  # of a list request's service CPU (bench/jobs_read.py measures ~140 us)
LIST_REQUEST_CPU_US = 140.0


async def main(args: argparse.Namespace) -> None:
    async with SimCluster(workloads=True) as sim:
        sim.seed_running_jobs(jobs=500, pods_per_job=10, namespaces=10)
        kubeconfig = sim.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        servers, apps, requests = [], {}, {}
        try:
            for mode in ("on", "off"):
                app = create_app(Settings(kubeconfig=str(kubeconfig), auth="none",
                                          access_log=False, rate_limit_per_second=0,
                                          metrics=mode == "on"))
                server = TestServer(app)
                await server.start_server()
                servers.append(server)
                assert await app[CACHE].wait_synced(60), "caches did not sync"
                apps[mode] = app
                # Requests built beforehand: building one costs ten times what is measured.
                requests[mode] = []
                for i in range(args.requests):
                    request = make_mocked_request(
                        "GET", f"/api/v1/jobs?pageSize=50&page={1 + i % 90}", app=app)
                    match = await app.router.resolve(request)
                    match.add_app(app)
                    request._match_info = match
                    requests[mode].append(request)
            per_request: dict[str, list[float]] = {"on": [], "off": []}
            for round_ in range(args.rounds):
                for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                    app = apps[mode]
                    started = time.perf_counter()
                    for request in requests[mode]:
                        response = await app._handle(request)
                        assert response.status == 200, response.status
                    per_request[mode].append(1e6 * (time.perf_counter() - started)
                                             / args.requests)
        finally:
            for server in servers:
                await server.close()
    on, off = (statistics.median(per_request[m]) for m in ("on", "off"))
    cost = on - off
    print(f"list request through the app's middlewares and handler: {on:.1f} us with "
          f"metrics, {off:.1f} us without (medians of {args.rounds} rounds of "
          f"{args.requests})")
    print(f"metrics cost {cost:+.1f} us a request = {100 * cost / off:+.1f}% of the handler "
          f"chain, {100 * cost / LIST_REQUEST_CPU_US:+.1f}% of a list request's ~"
          f"{LIST_REQUEST_CPU_US:.0f} us of service CPU (target <= {100 * TARGET:.0f}%: "
          f"{'met' if cost <= TARGET * LIST_REQUEST_CPU_US else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(main(parser.parse_args()))
