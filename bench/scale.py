"""Benchmark: the service at Kubernetes' scalability envelope, every figure beside its target.

Starts the simulated cluster (``python -m gpuctl_async.sim``) and seeds it through
``/_sim/seed/envelope`` (chunked: 5,000 nodes, 5,000 gpuctl training jobs of 10 Running pods,
100,000 Running pods of other workloads), probing the sim's responsiveness meanwhile; then
starts the service as a separate process and measures:

1. memory and start-up: time to ``/ready``, RSS; p99 of the job list (random pages of 50),
   job detail (random jobs), the pool list, a pool's detail and the node list (random pages
   of 50), each at ``--connections`` for ``--seconds``;
2. churn: ``--churn-rate`` pod status changes per second (``/_sim/churn``) for
   ``--churn-seconds``, with ``--sockets`` job-feed WebSockets open (dashboards, one
   namespace each, round-robin) and the job list under load: every 0.5 s a probe write gives
   one gpuctl pod a unique waiting reason; the cache lag is write → the job list shows it
   (``?namespace=&status=`` polled every 5 ms), the feed lag write → every socket watching
   that namespace has the frame; the list p99 under churn is compared with the quiet one;
3. the sim: longest time seeding held its loop (its own count, and the slowest ``/version``
   answered meanwhile), its RSS, and the lag of ``--watchers`` raw pod watches on it during
   the churn (each change is stamped with its write time).

The quiet load comes from ``wrk`` when it is installed (``apt-get install -y wrk``; see
``wrkload.py``), else from this process (``--load aiohttp``, which on 2 cores limits the
figures: the note says so).

Not a test. Run ``python bench/scale.py`` (the envelope; about 3-4 minutes on 2 cores) or
``python bench/scale.py --small`` (a tenth of it: 500 nodes, 5,000 gpuctl pods, 10,000
others; churn 20 s with 50 sockets). The machine's load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from measure import (add_envelope_arguments, cpu_seconds, free_port, load, percentile,
                     rss_mib, runqueue_seconds, seed_envelope, start_sim, stop_all, wait_ready)
from wrkload import INSTALL_HINT, run_wrk, wrk_available

GIB = 1024.0


@dataclass
class Figures:
    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, target: float | None = None, *,
            most: bool = True, fmt: str = "{:,.1f}") -> None:
        shown = fmt.format(value) + f" {unit}"
        if target is None:
            self.rows.append((name, shown, "-", None))
            print(f"  {name}: {shown}", flush=True)
            return
        met = value <= target if most else value >= target
        self.rows.append((name, shown, ("≤ " if most else "≥ ") + fmt.format(target)
                          + f" {unit}", met))
        print(f"  {name}: {shown} (target {self.rows[-1][2]}: {'met' if met else 'MISSED'})",
              flush=True)

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        print(f"\n{'figure'.ljust(width)}  {'measured':>16}  {'target':>16}  met")
        for name, value, target, met in self.rows:
            verdict = "-" if met is None else ("yes" if met else "NO")
            print(f"{name.ljust(width)}  {value:>16}  {target:>16}  {verdict}")


async def raw_watch(sim_url: str, lags: list[float], opened: asyncio.Event) -> None:
    """A plain pod watch on the sim: the lag of each churn change it delivers."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim_url}/api/v1/pods", params={"limit": "1"}) as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        async with session.get(f"{sim_url}/api/v1/pods", params={
                "watch": "true", "resourceVersion": version},
                timeout=aiohttp.ClientTimeout(total=None)) as response:
            opened.set()
            async for line in response.content:
                if b"sim.gpuctl/Churn" not in line:
                    continue
                received = time.time()
                for condition in orjson.loads(line)["object"]["status"]["conditions"]:
                    if condition["type"] == "sim.gpuctl/Churn":
                        lags.append(received - float(condition["message"]))


class FeedSocket:
    """One dashboard: a job-feed WebSocket filtered to one namespace; notes when each probe
    reason arrives."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.seen: dict[bytes, float] = {}
        self.frames = 0
        self.closed_early = False

    async def run(self, session: aiohttp.ClientSession, url: str, opened: asyncio.Event,
                  probes: list[bytes]) -> None:
        async with session.ws_connect(f"{url}/api/v1/jobs-feed/ws",
                                      params={"namespace": self.namespace},
                                      protocols=("gpuctl.v1",), max_msg_size=0) as ws:
            await ws.receive()  # the snapshot
            opened.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                self.frames += 1
                data = message.data.encode() if isinstance(message.data, str) else message.data
                for probe in probes[-4:]:  # only the recent ones can be pending
                    if probe in data and probe not in self.seen:
                        self.seen[probe] = time.perf_counter()
            self.closed_early = True


async def churn_phase(session, url: str, sim_url: str, args, pods: list[tuple[str, str]],
                      pages: int, figures: Figures, quiet_list_p99: float,
                      service_pid: int) -> dict:
    sockets = [FeedSocket(f"bench-{i % args.namespaces}") for i in range(args.sockets)]
    probes: list[bytes] = []
    opened = [asyncio.Event() for _ in sockets]
    socket_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    tasks = [asyncio.create_task(s.run(socket_session, url, e, probes))
             for s, e in zip(sockets, opened)]
    watch_lags: list[list[float]] = [[] for _ in range(args.watchers)]
    watch_opened = [asyncio.Event() for _ in watch_lags]
    watch_tasks = [asyncio.create_task(raw_watch(sim_url, lags, e))
                   for lags, e in zip(watch_lags, watch_opened)]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened + watch_opened)), 120)
        async with session.post(f"{sim_url}/_sim/churn", json={
                "changesPerSecond": args.churn_rate, "seconds": args.churn_seconds}) as response:
            assert response.status == 202, await response.text()
        cache_lags: list[float] = []
        write_latencies: list[float] = []  # the sim's answer to the probe's write
        feed_lags: list[float] = []
        missed_feed = 0

        async def probe_loop() -> None:
            nonlocal missed_feed
            deadline = time.perf_counter() + args.churn_seconds
            serial = 0
            while time.perf_counter() < deadline - 1:
                serial += 1
                namespace, name = random.choice(pods)
                reason = f"BenchProbe{serial:05d}"
                probes.append(reason.encode())
                written = time.perf_counter()
                async with session.patch(
                        f"{sim_url}/api/v1/namespaces/{namespace}/pods/{name}/status",
                        data=orjson.dumps({"status": {"containerStatuses": [{
                            "name": "main", "ready": False, "restartCount": 0,
                            "state": {"waiting": {"reason": reason}}}]}}),
                        headers={"Content-Type": "application/merge-patch+json"}) as response:
                    assert response.status == 200, await response.text()
                write_latencies.append(time.perf_counter() - written)
                while time.perf_counter() - written < 5:
                    async with session.get(f"{url}/api/v1/jobs", params={
                            "namespace": namespace, "status": reason,
                            "pageSize": 1}) as response:
                        if (await response.json()).get("total"):
                            cache_lags.append(time.perf_counter() - written)
                            break
                    await asyncio.sleep(0.005)
                watching = [s for s in sockets if s.namespace == namespace]
                give_up = time.perf_counter() + 5
                while time.perf_counter() < give_up and not all(
                        reason.encode() in s.seen for s in watching):
                    await asyncio.sleep(0.01)
                if watching:
                    if all(reason.encode() in s.seen for s in watching):
                        feed_lags.append(max(s.seen[reason.encode()] for s in watching)
                                         - written)
                    else:
                        missed_feed += 1
                await asyncio.sleep(max(0.0, 0.5 - (time.perf_counter() - written)))

        seconds = max(1.0, args.churn_seconds - 2)
        if args.load == "wrk":
            list_load = run_wrk(url, [f"/api/v1/jobs?pageSize=50&page={p}"
                                      for p in range(1, pages + 1)],
                                connections=args.connections, seconds=seconds)
        else:
            list_load = load(session, lambda: f"{url}/api/v1/jobs?pageSize=50&page="
                             f"{random.randint(1, pages)}", args.connections, seconds)
        cpu_before, waited_before = cpu_seconds(service_pid), runqueue_seconds(service_pid)
        listed, _ = await asyncio.gather(list_load, probe_loop())
        churn_cpu = cpu_seconds(service_pid) - cpu_before
        churn_waited = runqueue_seconds(service_pid) - waited_before
        async with session.delete(f"{sim_url}/_sim/churn") as response:
            report = await response.json()
    finally:
        for task in tasks + watch_tasks:
            task.cancel()
        await asyncio.gather(*tasks, *watch_tasks, return_exceptions=True)
        await socket_session.close()
    done = report["changes"] / max(report.get("seconds") or args.churn_seconds, 1e-9)
    figures.add(f"churn: pod changes/s written by the sim ({report.get('seconds', 0):.0f} s)",
                done,
                "/s", args.churn_rate, most=False, fmt="{:,.0f}")
    figures.add("churn: sim ticks behind schedule", report["behindTicks"], "", None,
                fmt="{:,.0f}")
    figures.add("churn: cache lag p99 (write → job list)", 1000 * percentile(cache_lags, 0.99),
                "ms", 100)
    figures.add("churn: cache lag p50", 1000 * percentile(cache_lags, 0.5), "ms")
    # The lag counts from the write's request: a sim slow to answer it is in there too.
    figures.add("churn: the sim's answer to a probe write, p99", 1000 * percentile(
        write_latencies, 0.99), "ms")
    figures.add("churn: the sim's answer to a probe write, max", 1000 * max(
        write_latencies, default=float("nan")), "ms")
    figures.add(f"churn: feed lag p99 (write → all of {args.sockets} sockets' frame)",
                1000 * percentile(feed_lags, 0.99), "ms", None)
    figures.add("churn: probes a watching socket never got", missed_feed, "", 0, fmt="{:,.0f}")
    figures.add("churn: feed sockets closed by the server", sum(s.closed_early for s in sockets),
                "", 0, fmt="{:,.0f}")
    if args.load == "wrk":
        rate, list_p99, errors = listed.rate, listed.p99_ms, listed.errors
    else:
        rate, latencies, errors = listed
        list_p99 = 1000 * percentile(latencies, 0.99)
    figures.add("churn: job list p99 under churn", list_p99, "ms", 2 * quiet_list_p99)
    figures.add("churn: job list rate under churn", rate, "req/s", fmt="{:,.0f}")
    figures.add("churn: service CPU, share of one core", 100 * churn_cpu / seconds, "%",
                fmt="{:,.0f}")
    # Runnable but not running: the list load, the sim and this process share the cores.
    # With CPU and this near 100 % together, the service's loop is never idle, and the
    # lags above are queueing, not one slow step.
    figures.add("churn: service loop waiting for a CPU, share of the time",
                100 * churn_waited / seconds, "%", fmt="{:,.0f}")
    if errors:
        figures.add("churn: job list non-200 answers", errors, "", 0, fmt="{:,.0f}")
    for index, lags in enumerate(watch_lags):
        figures.add(f"sim: raw pod watch {index + 1} lag p99 ({len(lags)} changes)",
                    1000 * percentile(lags, 0.99), "ms", 100)
    return report


async def main(args: argparse.Namespace) -> None:
    if args.load is None:
        args.load = "wrk" if wrk_available() else "aiohttp"
        if args.load == "aiohttp":
            print(f"note: {INSTALL_HINT}; the quiet load comes from this process instead, "
                  "which limits the figures on a small machine")
    elif args.load == "wrk" and not wrk_available():
        raise SystemExit(INSTALL_HINT)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"list load from: {args.load}; the churn probes, feed sockets and raw watches from "
          "this process")
    print(f"machine: {os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    kubeconfig = workdir / "kubeconfig"
    processes: list[asyncio.subprocess.Process] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GPUCTL_RATE_LIMIT_PER_SECOND": "0"}
    figures = Figures()
    try:
        sim, sim_url = await start_sim("--kubeconfig-out", str(kubeconfig))
        processes.append(sim)
        connector = aiohttp.TCPConnector(limit=max(args.connections, 8) + 8)
        async with aiohttp.ClientSession(connector=connector) as session:
            progress = await seed_envelope(session, sim_url, args, interval=0.01,
                                           probe_version=True)
            print(f"seeded {progress['nodes']} nodes, {progress['pods']} gpuctl pods in "
                  f"{progress['jobs']} jobs, {progress['otherPods']} other pods in "
                  f"{progress['seconds']:.1f} s")
            total_pods = progress["pods"] + progress["otherPods"]
            figures.add("sim: seeding time", progress["seconds"], "s")
            figures.add("sim: longest hold of its loop while seeding",
                        progress["longestSliceMs"], "ms", 100)
            # Wall-clock, so also whatever time other processes took the core meanwhile.
            figures.add("sim: longest hold while seeding, CPU time of the slice",
                        progress["longestSliceCpuMs"], "ms", 100)
            figures.add("sim: slowest /version answer while seeding", progress["slowestProbeMs"],
                        "ms", None)
            figures.add(f"sim: RSS with {total_pods:,} pods", rss_mib(sim.pid), "MiB", 4 * GIB,
                        fmt="{:,.0f}")

            port = free_port()
            started = time.perf_counter()
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gpuctl_async", "serve", "--kubeconfig", str(kubeconfig),
                "--port", str(port), "--no-access-log", "--log-level", "WARNING",
                "--auth", "none", env=env)
            processes.append(service)
            url = f"http://127.0.0.1:{port}"
            await wait_ready(session, url, timeout=180)
            figures.add("service: ready after start", time.perf_counter() - started, "s", 20)
            # CPU time is what a loaded machine does not inflate: compare runs by it.
            figures.add("service: CPU time until ready", cpu_seconds(service.pid), "s")
            figures.add("service: waiting for a CPU until ready (runqueue)",
                        runqueue_seconds(service.pid), "s")
            figures.add("service: RSS when ready", rss_mib(service.pid), "MiB", GIB,
                        fmt="{:,.0f}")

            async with session.get(f"{url}/api/v1/jobs", params={"pageSize": 1}) as response:
                total = (await response.json())["total"]
            pages = max(1, total // 50)
            pods: list[tuple[str, str]] = []
            for page in random.sample(range(1, pages + 1), min(pages, 20)):
                async with session.get(f"{url}/api/v1/jobs",
                                       params={"pageSize": 50, "page": page}) as response:
                    pods.extend((i["namespace"], i["jobId"])
                                for i in (await response.json())["items"])
            async with session.get(f"{url}/api/v1/pools") as response:
                pools = [p["name"] for p in await response.json()]
            async with session.get(f"{url}/api/v1/nodes", params={"pageSize": 1}) as response:
                node_pages = max(1, (await response.json())["total"] // 50)

            routes = {  # name: (paths, p99 target in ms)
                f"job list (pageSize=50 of {total:,})":
                    ([f"/api/v1/jobs?pageSize=50&page={p}" for p in range(1, pages + 1)], 10),
                "job detail (random jobs)":
                    ([f"/api/v1/jobs/{name}?namespace={ns}" for ns, name in pods], 10),
                f"pool list ({len(pools)} pools)": (["/api/v1/pools"], 20),
                "pool detail": ([f"/api/v1/pools/{p}" for p in pools], 20),
                "node list (pageSize=50)":
                    ([f"/api/v1/nodes?pageSize=50&page={p}" for p in range(1, node_pages + 1)],
                     20),
            }
            quiet_list_p99 = 0.0
            for name, (paths, target) in routes.items():
                cpu_before = cpu_seconds(service.pid)
                if args.load == "wrk":
                    result = await run_wrk(url, paths, connections=args.connections,
                                           seconds=args.seconds)
                    rate, p99, errors = result.rate, result.p99_ms, result.errors
                else:
                    rate, latencies, errors = await load(
                        session, lambda paths=paths: url + random.choice(paths),
                        args.connections, args.seconds)
                    p99 = 1000 * percentile(latencies, 0.99)
                quiet_list_p99 = quiet_list_p99 or p99
                figures.add(f"quiet: {name} p99 at {args.connections} conn.", p99, "ms", target)
                figures.add(f"quiet: {name} rate", rate, "req/s", fmt="{:,.0f}")
                figures.add(f"quiet: {name} service CPU per request",
                            1e6 * (cpu_seconds(service.pid) - cpu_before)
                            / max(1.0, rate * args.seconds), "µs", fmt="{:,.0f}")
                if errors:
                    figures.add(f"quiet: {name} non-200 answers", errors, "", 0, fmt="{:,.0f}")
            figures.add("service: RSS after the quiet load", rss_mib(service.pid), "MiB", GIB,
                        fmt="{:,.0f}")
            if args.churn_seconds > 0:
                await churn_phase(session, url, sim_url, args, pods, pages, figures,
                                  quiet_list_p99, service.pid)
                figures.add("service: RSS after churn", rss_mib(service.pid), "MiB", GIB,
                            fmt="{:,.0f}")
    finally:
        await stop_all(processes)
        shutil.rmtree(workdir, ignore_errors=True)
    figures.print()
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="a tenth of the envelope, churn 20 s with 50 sockets")
    add_envelope_arguments(parser)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per quiet route")
    parser.add_argument("--load", choices=("wrk", "aiohttp"), default=None,
                        help="who makes the quiet load (default: wrk when installed)")
    parser.add_argument("--churn-rate", type=int, default=200)
    parser.add_argument("--churn-seconds", type=float, default=60.0)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--watchers", type=int, default=3)
    parsed = parser.parse_args()
    if parsed.small:
        for key, value in {"nodes": 500, "jobs": 500, "other_pods": 10_000,
                           "churn_seconds": 20.0, "sockets": 50}.items():
            if getattr(parsed, key) == parser.get_default(key):
                setattr(parsed, key, value)
    asyncio.run(main(parsed))
