"""Benchmark: does hostile input hold the event loop? And does memory come back after deletes?

Starts the simulated cluster (default topology) and the service as separate processes, then:

1. quiet: probes ``GET /health`` and ``GET /api/v1/jobs`` one after the other for
   ``--quiet`` seconds, with a few jobs in the list;
2. attack: ``--clients`` clients (8) send the worst bodies of issue 14 back to back for
   ``--seconds`` (20) while the same probes run: JSON nested 50,000 deep, a lone surrogate, a
   5,000-digit integer, a batch of 30 documents of 2,000 nested ``[``, and a 1 MB batch of
   four 250 KB well-formed documents (parsed whole, then refused by validation), and a 1 MB
   body of 400,000 numbers;
3. memory: the service's RSS, then 20 jobs with 1,000-item ``args`` created and deleted, and
   the RSS once the list is empty again.

With ``--limited`` the service keeps its default per-address rate limit (50/s, burst 200),
which the attackers (127.0.0.1) meet and the probes (127.0.0.2) do not.

Prints p50/p99 of each probe beside the targets: ``/health`` p99 ≤ 100 ms under attack, list
p99 ≤ 2× its quiet value. Not a test: ``python bench/hostile_input.py`` (about 40 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from measure import free_port, percentile, rss_mib, start_sim, stop_all, wait_ready

JOB = ("kind: training\njob: {{name: {name}}}\nenvironment:\n  image: busybox:1.36\n"
       "  command: [sleep, '3600']\n{extra}resources: {{pool: training-pool, cpu: 1, "
       "memory: 256Mi}}\n")
NESTED_YAML = "kind: training\njob: " + "[" * 2000 + "]" * 2000
BIG_YAML = ("kind: training\njob: {name: big}\nenvironment:\n  image: busybox\n  args:\n"
            + "".join(f"    - '{i:04d}{'x' * 1000}'\n" for i in range(240)))
JSON = {"Content-Type": "application/json"}


def attacks() -> list[tuple[str, bytes]]:
    import orjson

    return [
        ("/api/v1/jobs", b"[" * 50_000 + b"]" * 50_000),
        ("/api/v1/jobs", b'{"yamlContent": "\\ud800"}'),
        ("/api/v1/jobs", b'{"yamlContent": 1' + b"0" * 5000 + b"}"),
        ("/api/v1/jobs/batch", orjson.dumps({"yamlContents": [NESTED_YAML] * 30})),
        ("/api/v1/jobs/batch", orjson.dumps({"yamlContents": [BIG_YAML] * 4})),
        ("/api/v1/jobs/batch", b'{"yamlContents": [' + b",".join([b"1"] * 400_000) + b"]}"),
    ]


async def probe(session: aiohttp.ClientSession, url: str, seconds: float) -> dict[str, list]:
    """Alternate the two probes for ``seconds``; latencies in ms."""
    found: dict[str, list] = {"health": [], "list": []}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for name, path in (("health", "/health"), ("list", "/api/v1/jobs?pageSize=50")):
            started = time.perf_counter()
            async with session.get(url + path) as response:
                await response.read()
                assert response.status == 200, (path, response.status)
            found[name].append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.025)  # ~35 list probes/s: under the 50/s limit of --limited
    return found


async def attack(session: aiohttp.ClientSession, url: str, seconds: float, clients: int,
                 only: int | None = None) -> dict[int, int]:
    bodies = attacks() if only is None else [attacks()[only]]
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        n = offset
        while time.perf_counter() < deadline:
            path, body = bodies[n % len(bodies)]
            n += 1
            async with session.post(url + path, data=body, headers=JSON) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return statuses


def row(name: str, quiet: list[float], loud: list[float], target: str) -> str:
    return (f"{name:<8} quiet p50 {percentile(quiet, 0.5):7.1f} p99 {percentile(quiet, 0.99):7.1f}"
            f" | attack p50 {percentile(loud, 0.5):7.1f} p99 {percentile(loud, 0.99):7.1f} ms"
            f" ({len(loud)} probes)   target: {target}")


async def memory(session: aiohttp.ClientSession, url: str, pid: int, rounds: int = 3) -> None:
    """Create and delete 20 big jobs, ``rounds`` times: RSS that stays flat from round to round
    is memory the process reuses, not memory a delete failed to give back."""
    args = "  args: [" + ", ".join(f"'{i:04d}{'y' * 60}'" for i in range(1000)) + "]\n"
    figures = [f"start {rss_mib(pid):.0f}"]
    for n in range(rounds):
        for i in range(20):
            text = JOB.format(name=f"mem-{n}-{i}", extra=args)
            async with session.post(f"{url}/api/v1/jobs", json={"yamlContent": text}) as r:
                assert r.status == 201, await r.text()
        full = rss_mib(pid)
        for i in range(20):
            async with session.delete(f"{url}/api/v1/jobs/mem-{n}-{i}?force=true") as r:
                assert r.status == 200, await r.text()
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            async with session.get(f"{url}/api/v1/jobs?pageSize=100") as response:
                if not any(i["name"].startswith("mem-") for i in (await response.json())["items"]):
                    break
            await asyncio.sleep(0.2)
        figures.append(f"round {n + 1}: {full:.0f} with the jobs, {rss_mib(pid):.0f} after")
    print("memory (RSS MiB, 20 jobs of 1,000 args, ~65 KB each, created then deleted): "
          + "; ".join(figures) + "   target: flat from round to round")


async def main(options: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    kubeconfig = workdir / "kubeconfig"
    processes: list[asyncio.subprocess.Process] = []
    try:
        sim, _ = await start_sim("--kubeconfig-out", str(kubeconfig))
        processes.append(sim)
        port = free_port()
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gpuctl_async", "serve", "--kubeconfig", str(kubeconfig),
            "--port", str(port), "--no-access-log", "--log-level", "ERROR", "--auth", "none",
            # Without --limited, no per-address rate limit: the figures show what the event
            # loop does with everything the attackers send, not what the limiter refuses.
            env={**os.environ, "PYTHONUNBUFFERED": "1",
                 **({} if options.limited else {"GPUCTL_RATE_LIMIT_PER_SECOND": "0"})})
        processes.append(service)
        url = f"http://127.0.0.1:{port}"
        timeout = aiohttp.ClientTimeout(total=60)
        # Probes (and set-up) come from 127.0.0.2, attackers from 127.0.0.1: two client
        # addresses, so that with --limited only the attackers meet the limit.
        probes = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
            local_addr=("127.0.0.2", 0)))
        attackers = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
            limit=options.clients))
        async with probes as session, attackers:
            await wait_ready(session, url)
            for i in range(5):
                text = JOB.format(name=f"quiet-{i}", extra="")
                async with session.post(f"{url}/api/v1/jobs", json={"yamlContent": text}) as r:
                    assert r.status == 201, await r.text()
            quiet = await probe(session, url, options.quiet)
            attack_task = asyncio.create_task(
                attack(attackers, url, options.seconds, options.clients, options.only))
            loud = await probe(session, url, options.seconds)
            statuses = await attack_task
            print(f"attack: {sum(statuses.values())} hostile requests from {options.clients} "
                  f"clients in {options.seconds:.0f} s, statuses {dict(sorted(statuses.items()))}")
            print(row("/health", quiet["health"], loud["health"], "attack p99 <= 100 ms"))
            print(row("list", quiet["list"], loud["list"],
                      f"attack p99 <= {2 * percentile(quiet['list'], 0.99):.1f} ms (2x quiet)"))
            if options.only is None:
                await memory(session, url, service.pid)
    finally:
        await stop_all(processes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quiet", type=float, default=5.0)
    parser.add_argument("--only", type=int, help="send only this one of the attacks (0-5)")
    parser.add_argument("--limited", action="store_true",
                        help="keep the default per-address rate limit on (the attackers meet it)")
    asyncio.run(main(parser.parse_args()))
