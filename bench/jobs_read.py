"""Benchmark: job list and detail served from the caches, against 10,000 pods in 1,000 jobs.

Starts the simulated cluster (``python -m gpuctl_async.sim``) and seeds it through
``/_sim/seed/running-jobs``, then starts the service as a separate process on a kubeconfig
pointing at it, waits for ``/ready`` and prints:

- time to ready and the service's RSS;
- requests/s and p50/p99 latency of ``GET /api/v1/jobs?pageSize=50&page=N`` (random pages)
  and of job detail (random jobs), with ``--connections`` concurrent connections for
  ``--seconds`` each;
- the Kubernetes API requests the service made meanwhile (from the sim's counters);
- the same list request answered by a bare aiohttp handler returning 50 items from memory,
  as the ceiling, and our ratio to it;
- with ``--metrics-cost``: what metrics cost, the list rate (and the service's CPU per
  request) of two fresh services, ``metrics: true`` and ``metrics: false``, in alternating
  rounds of the same run so that both see the same machine load; target: at most 5 % slower
  with metrics on.

With ``--auth`` the simulated cluster has authentication and RBAC on and the service runs with
``--auth kubernetes``: every request carries the token of a user bound to ``view`` in each
seeded namespace (RoleBindings, not a cluster-wide grant: the list then makes the cluster-wide
check and one per namespace, all from the decision cache once warm). Without it the service
runs with ``--auth none``, as before.

With ``--load wrk`` the load comes from ``wrk`` (``apt-get install -y wrk``; refused with that
hint when missing, see ``wrkload.py``) instead of this process's aiohttp client, which on 2
cores costs about as much CPU as the service and so limits the figures; it also measures
``/health`` against the bare handler's, with the targets list ≥ 80 % and ``/health`` ≥ 90 %
of the bare handler in the same run.

Not a test: ``python bench/jobs_read.py [--jobs 1000 --pods-per-job 10 --namespaces 10]
[--auth] [--load aiohttp|wrk] [--metrics-cost --rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp
import orjson
from measure import (cpu_seconds, free_port, load, percentile, rss_mib, start_sim, stop_all,
                     wait_ready)
from wrkload import WrkResult, require_wrk, run_wrk

BARE_SERVER = """
import sys, orjson
from datetime import datetime, timezone
from aiohttp import web
items = orjson.loads(sys.stdin.buffer.read())
async def handler(request):
    return web.Response(body=orjson.dumps({"total": 10000, "items": items}),
                        content_type="application/json")
async def health(request):
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return web.Response(body=orjson.dumps({"status": "healthy", "timestamp": now}),
                        content_type="application/json")
app = web.Application()
app.router.add_get("/api/v1/jobs", handler)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

METRICS_TARGET = 0.05  # at most 5 % fewer list requests per second with metrics on


async def start_twin(kubeconfig: Path, env: dict[str, str], auth: bool,
                     metrics: bool) -> tuple[asyncio.subprocess.Process, str]:
    """A fresh service like the first, with metrics on or off (``GPUCTL_METRICS``)."""
    port = free_port()
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async", "serve", "--kubeconfig", str(kubeconfig),
        "--port", str(port), "--no-access-log", "--log-level", "WARNING",
        "--auth", "kubernetes" if auth else "none",
        env={**env, "GPUCTL_METRICS": "true" if metrics else "false"})
    return service, f"http://127.0.0.1:{port}"


ADMIN_TOKEN = "bench-admin-token"
READER_TOKEN = "bench-reader-token"


async def bind_reader(session: aiohttp.ClientSession, sim_url: str, namespaces: int) -> None:
    """RoleBindings of ``view`` for user ``reader`` in ``bench-0`` ... (as the admin)."""
    for n in range(namespaces):
        namespace = f"bench-{n}"
        async with session.post(
                f"{sim_url}/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                json={"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                      "metadata": {"name": "reader-view"},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "view"},
                      "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                    "name": "reader"}]}) as response:
            if response.status != 201:
                raise RuntimeError(f"binding reader in {namespace}: {await response.text()}")


def report(name: str, rate: float, latencies: list[float], errors: int) -> None:
    print(f"{name}: {rate:,.0f} req/s, p50 {1000 * percentile(latencies, 0.5):.1f} ms, "
          f"p99 {1000 * percentile(latencies, 0.99):.1f} ms"
          + (f", {errors} non-200 answers" if errors else ""))


def report_wrk(name: str, result: WrkResult) -> None:
    print(f"{name}: {result.rate:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
          f"p99 {result.p99_ms:.1f} ms (wrk)"
          + (f", {result.errors} errors or non-200 answers" if result.errors else ""))


async def start_bare(items: list, env: dict) -> tuple[asyncio.subprocess.Process, str]:
    """The ceiling: a bare aiohttp handler returning ``items`` from memory."""
    port = free_port()
    bare = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BARE_SERVER, str(port), stdin=asyncio.subprocess.PIPE, env=env)
    bare.stdin.write(orjson.dumps(items))
    bare.stdin.close()
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/api/v1/jobs"):
                    return bare, url
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)


async def wrk_phase(args, url: str, headers: dict, pages: int, job_list: list,
                    items: list, env: dict, processes: list) -> None:
    """List, detail and /health from wrk, then the bare handler's list and /health."""
    list_paths = [f"/api/v1/jobs?pageSize=50&page={p}" for p in range(1, pages + 1)]
    detail_paths = [f"/api/v1/jobs/{name}?namespace={ns}" for ns, name in job_list]
    run = {"connections": args.connections, "seconds": args.seconds, "headers": headers}
    listed = await run_wrk(url, list_paths, **run)
    report_wrk("GET /api/v1/jobs?pageSize=50 (random pages)", listed)
    report_wrk("GET /api/v1/jobs/{jobId} (random jobs)", await run_wrk(url, detail_paths, **run))
    health = await run_wrk(url, ["/health"], **run)
    report_wrk("GET /health", health)
    bare, bare_url = await start_bare(items, env)
    processes.append(bare)
    bare_list = await run_wrk(bare_url, ["/api/v1/jobs?pageSize=50&page=1"], **run)
    report_wrk("bare aiohttp handler, same 50 items from memory", bare_list)
    bare_health = await run_wrk(bare_url, ["/health"], **run)
    report_wrk("bare aiohttp /health", bare_health)
    print(f"job list / bare list: {100 * listed.rate / bare_list.rate:.0f}% (target >= 80%); "
          f"/health / bare /health: {100 * health.rate / bare_health.rate:.0f}% "
          f"(target >= 90%)")


async def main(args: argparse.Namespace) -> None:
    if args.load == "wrk":
        require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="bench-jobs-read-"))
    kubeconfig = workdir / "kubeconfig"
    processes: list[asyncio.subprocess.Process] = []
    # The load comes from one address: the per-address rate limit would measure itself.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GPUCTL_RATE_LIMIT_PER_SECOND": "0"}
    sim_flags = ["--kubeconfig-out", str(kubeconfig)]
    headers = {}
    if args.auth:
        token_file = workdir / "tokens.csv"
        token_file.write_text(f"{READER_TOKEN},reader,reader\n")
        # The service (through --kubeconfig-out) uses the system:masters token.
        sim_flags += ["--token", ADMIN_TOKEN, "--token-file", str(token_file)]
        headers = {"Authorization": f"Bearer {READER_TOKEN}"}
    try:
        sim, sim_url = await start_sim(*sim_flags)
        processes.append(sim)
        # The sim serves HTTPS with a self-signed certificate when authentication is on.
        connector = aiohttp.TCPConnector(limit=args.connections, ssl=False)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            async with session.post(f"{sim_url}/_sim/seed/running-jobs", json={
                    "jobs": args.jobs, "podsPerJob": args.pods_per_job,
                    "namespaces": args.namespaces}) as response:
                seeded = await response.json()
            print(f"seeded {seeded['pods']} Running pods in {seeded['jobs']} jobs across "
                  f"{args.namespaces} namespaces in {seeded['seconds']:.2f} s")
            if args.auth:
                await bind_reader(session, sim_url, args.namespaces)
                print(f"auth on: user 'reader' bound to view in each of the {args.namespaces} "
                      "namespaces")

            port = free_port()
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gpuctl_async", "serve", "--kubeconfig", str(kubeconfig),
                "--port", str(port), "--no-access-log", "--log-level", "WARNING",
                "--auth", "kubernetes" if args.auth else "none", env=env)
            processes.append(service)
            url = f"http://127.0.0.1:{port}"
            ready_after = await wait_ready(session, url, timeout=120)
            print(f"service ready {ready_after:.2f} s after start; RSS {rss_mib(service.pid):.0f} MiB")

            async with session.get(f"{url}/api/v1/jobs", params={"pageSize": 1}) as response:
                total = (await response.json())["total"]
            pages = max(1, total // 50)
            jobs: set[tuple[str, str]] = set()
            for page in range(1, pages + 1, max(1, pages // 20)):
                async with session.get(f"{url}/api/v1/jobs",
                                       params={"pageSize": 50, "page": page}) as response:
                    jobs.update((i["namespace"], i["name"])
                                for i in (await response.json())["items"])
            job_list = sorted(jobs)

            if args.load == "wrk":
                async with session.get(f"{url}/api/v1/jobs",
                                       params={"pageSize": 50, "page": 1}) as response:
                    items = (await response.json())["items"]
                await wrk_phase(args, url, headers, pages, job_list, items, env, processes)
                print(f"service RSS after the load: {rss_mib(service.pid):.0f} MiB")
                return

            async with session.post(f"{sim_url}/_sim/counters/reset"):
                pass
            list_rate, list_latencies, list_errors = await load(
                session, lambda: f"{url}/api/v1/jobs?pageSize=50&page={random.randint(1, pages)}",
                args.connections, args.seconds)
            report(f"GET /api/v1/jobs?pageSize=50 ({total} items, random pages)",
                   list_rate, list_latencies, list_errors)

            def detail_url() -> str:
                namespace, name = random.choice(job_list)
                return f"{url}/api/v1/jobs/{name}?namespace={namespace}"
            detail_rate, detail_latencies, detail_errors = await load(
                session, detail_url, args.connections, args.seconds)
            report("GET /api/v1/jobs/{jobId} (random jobs)", detail_rate, detail_latencies,
                   detail_errors)
            print(f"service RSS after the load: {rss_mib(service.pid):.0f} MiB")

            async with session.get(f"{sim_url}/_sim/counters") as response:
                requests = (await response.json())["requests"]
            lists = sum(requests.get("list", {}).values())
            gets = sum(requests.get("get", {}).values())
            print(f"Kubernetes API requests by the service during the load: {lists} lists, "
                  f"{gets} gets; all: {orjson.dumps(requests).decode()}")

            async with session.get(f"{url}/api/v1/jobs",
                                   params={"pageSize": 50, "page": 1}) as response:
                items = (await response.json())["items"]
            bare_port = free_port()
            bare = await asyncio.create_subprocess_exec(
                sys.executable, "-c", BARE_SERVER, str(bare_port), stdin=asyncio.subprocess.PIPE,
                env=env)
            processes.append(bare)
            bare.stdin.write(orjson.dumps(items))
            bare.stdin.close()
            bare_url = f"http://127.0.0.1:{bare_port}"
            while True:
                try:
                    async with session.get(f"{bare_url}/api/v1/jobs"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            bare_rate, bare_latencies, bare_errors = await load(
                session, lambda: f"{bare_url}/api/v1/jobs?pageSize=50&page=1", args.connections,
                args.seconds)
            report("bare aiohttp handler, same 50 items from memory", bare_rate, bare_latencies,
                   bare_errors)
            print(f"job list rate / bare handler rate: {100 * list_rate / bare_rate:.0f}%")

            if args.metrics_cost:
                bare.terminate()
                await bare.wait()
                # Two fresh twins, so neither carries the heap of the loads above; rounds
                # alternate which goes first, so both see the same neighbours' load.
                twins = {}
                for mode in ("on", "off"):
                    twins[mode] = await start_twin(kubeconfig, env, args.auth, mode == "on")
                    processes.append(twins[mode][0])
                for _, base in twins.values():
                    await wait_ready(session, base, timeout=120)
                rates: dict[str, list[float]] = {"on": [], "off": []}
                cpu: dict[str, list[float]] = {"on": [0.0, 0], "off": [0.0, 0]}  # s, requests
                for round_ in range(args.rounds):
                    for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                        process, base = twins[mode]
                        used = cpu_seconds(process.pid)
                        rate, latencies, errors = await load(
                            session, lambda b=base: f"{b}/api/v1/jobs?pageSize=50&page="
                                                    f"{random.randint(1, pages)}",
                            args.connections, args.round_seconds)
                        assert not errors, f"{errors} non-200 answers with metrics {mode}"
                        rates[mode].append(rate)
                        cpu[mode][0] += cpu_seconds(process.pid) - used
                        cpu[mode][1] += len(latencies)
                on_rate = sum(rates["on"]) / len(rates["on"])
                off_rate = sum(rates["off"]) / len(rates["off"])
                cost = 1 - on_rate / off_rate
                rounds = ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(rates["on"], rates["off"]))
                per_request = {mode: 1e6 * used / max(1, n) for mode, (used, n) in cpu.items()}
                cpu_cost = per_request["on"] / per_request["off"] - 1
                print(f"list with metrics on: {on_rate:,.0f} req/s, off: {off_rate:,.0f} req/s "
                      f"(rounds on/off: {rounds}); {100 * cost:+.1f}% slower "
                      f"(target <= {100 * METRICS_TARGET:.0f}%: "
                      f"{'met' if cost <= METRICS_TARGET else 'MISSED'})")
                print(f"service CPU per list request: {per_request['on']:.0f} us with metrics, "
                      f"{per_request['off']:.0f} us without ({100 * cpu_cost:+.1f}%; steadier "
                      f"than the rates on a shared machine)")
    finally:
        await stop_all(processes)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pods-per-job", type=int, default=10)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--load", choices=("aiohttp", "wrk"), default="aiohttp",
                        help="who makes the load: this process, or wrk (see wrkload.py)")
    parser.add_argument("--auth", action="store_true",
                        help="authentication and RBAC on (a namespaced reader's token)")
    parser.add_argument("--metrics-cost", action="store_true",
                        help="also compare the list rate with metrics on and off")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating on/off rounds for --metrics-cost")
    parser.add_argument("--round-seconds", type=float, default=4.0)
    asyncio.run(main(parser.parse_args()))
