"""Benchmark: what metrics cost a job list request inside the app, steadier than rates.

Three apps, ``metrics: true``, ``metrics: false`` and a second ``metrics: false`` (the A/A
control: what two identical apps differ by, i.e. the noise floor), watch one simulated
cluster (500 jobs of 10 Running pods, in-process) and answer
``GET /api/v1/jobs?pageSize=50&page=N`` through their whole middleware chain and handler
(``app._handle``: no sockets, no HTTP parsing), in rounds whose order rotates; the figure is
the median of the per-round differences (on − off, and control − off), with the spread
(25th–75th percentile) beside it. The network-level figure is ``bench/jobs_read.py
--metrics-cost --load wrk``.

Not a test: ``python bench/metrics_cost.py [--rounds 40 --requests 500]`` (~30 s).
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


MODES = ("on", "off", "control")  # control: metrics off again, the A/A pair of "off"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


async def main(args: argparse.Namespace) -> None:
    async with SimCluster(workloads=True) as sim:
        sim.seed_running_jobs(jobs=500, pods_per_job=10, namespaces=10)
        kubeconfig = sim.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        servers, apps, requests = [], {}, {}
        try:
            for mode in MODES:
                app = create_app(Settings(kubeconfig=str(kubeconfig), auth="none",
                                          access_log=False, rate_limit_per_second=0,
                                          metrics=mode == "on"))
                server = TestServer(app)
                await server.start_server()
                servers.append(server)
                assert await app[CACHE].wait_synced(60), "caches did not sync"
                apps[mode] = app
                # Requests built beforehand: building one costs ten times what is measured.
                requests[mode] = [make_mocked_request(
                    "GET", f"/api/v1/jobs?pageSize=50&page={1 + i % 90}", app=app)
                    for i in range(args.requests)]
            per_request: dict[str, list[float]] = {mode: [] for mode in MODES}
            for round_ in range(args.rounds):
                shift = round_ % len(MODES)  # each app goes first, second, third in turn
                for mode in MODES[shift:] + MODES[:shift]:
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
    off = statistics.median(per_request["off"])
    cost = [a - b for a, b in zip(per_request["on"], per_request["off"])]
    noise = [a - b for a, b in zip(per_request["control"], per_request["off"])]
    (c1, c2, c3), (n1, n2, n3) = quartiles(cost), quartiles(noise)
    print(f"list request through the app's middlewares and handler: "
          f"{statistics.median(per_request['on']):.1f} us with metrics, {off:.1f} us without "
          f"(medians of {args.rounds} rounds of {args.requests})")
    print(f"metrics cost {c2:+.1f} us a request (spread {c1:+.1f} .. {c3:+.1f}); A/A control "
          f"{n2:+.1f} us (spread {n1:+.1f} .. {n3:+.1f}): the noise floor")
    print(f"= {100 * c2 / off:+.1f}% of the handler chain, {100 * c2 / LIST_REQUEST_CPU_US:+.1f}% "
          f"of a list request's ~{LIST_REQUEST_CPU_US:.0f} us of service CPU "
          f"(target <= {100 * TARGET:.0f}%: "
          f"{'met' if c2 <= TARGET * LIST_REQUEST_CPU_US else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(main(parser.parse_args()))
