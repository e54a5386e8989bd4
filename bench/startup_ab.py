"""Benchmark: the service's start-up at Kubernetes' envelope, A/B between source trees.

Seeds one simulated cluster (its own process) through ``/_sim/seed/envelope`` once, then
starts ``python -m gpuctl_async serve`` against it ``--rounds`` times from each ``--tree``
in turn (alternating, so a change in the machine's load hits both alike), and prints for each
start the time to ``/ready``, the CPU time until then, the time it waited for a CPU, and the
RSS, beside the targets (ready ≤ 20 s, RSS ≤ 1 GiB). A tree is a checkout of this project
(e.g. ``git worktree add /tmp/before main``); it is put first on ``PYTHONPATH``, so this
venv's dependencies serve every tree. Without ``--tree``: this checkout only.

Not a test. ``python bench/startup_ab.py --tree before=/tmp/before --tree after=.`` (the
envelope: 5,000 nodes, 150,000 pods, about 3 GB and 2 minutes of seeding), or smaller with
``--nodes 1000 --jobs 1000 --other-pods 20000``.
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
from measure import (add_envelope_arguments, cpu_seconds, free_port, rss_mib, runqueue_seconds,
                     seed_envelope, start_sim, stop_all, wait_ready)

HERE = Path(__file__).resolve().parent.parent


async def start_once(session: aiohttp.ClientSession, tree: Path, kubeconfig: Path) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "GPUCTL_RATE_LIMIT_PER_SECOND": "0"}
    started = time.perf_counter()
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async", "serve", "--kubeconfig", str(kubeconfig),
        "--port", str(port), "--no-access-log", "--log-level", "ERROR", "--auth", "none",
        env=env, cwd=tempfile.gettempdir())  # not this checkout's folder: PYTHONPATH decides
    try:
        await wait_ready(session, f"http://127.0.0.1:{port}", timeout=300)
        figures = {"ready": time.perf_counter() - started, "cpu": cpu_seconds(service.pid),
                   "waited": runqueue_seconds(service.pid), "rss": rss_mib(service.pid)}
        async with session.get(f"http://127.0.0.1:{port}/api/v1/jobs",
                               params={"pageSize": 1}) as response:
            figures["rows"] = (await response.json())["total"]
        return figures
    finally:
        await stop_all([service])


async def main(args: argparse.Namespace) -> None:
    trees = dict(t.split("=", 1) for t in args.tree) if args.tree else {"this": str(HERE)}
    print("trees:", ", ".join(f"{name}={path}" for name, path in trees.items()))
    print(f"machine: {os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    kubeconfig = workdir / "kubeconfig"
    sim, url = await start_sim("--kubeconfig-out", str(kubeconfig))
    try:
        async with aiohttp.ClientSession() as session:
            progress = await seed_envelope(session, url, args)
            print(f"seeded {progress['nodes']} nodes, {progress['pods']} gpuctl pods, "
                  f"{progress['otherPods']} other pods in {progress['seconds']:.1f} s")
            for round_ in range(1, args.rounds + 1):
                for name, tree in trees.items():
                    f = await start_once(session, Path(tree).resolve(), kubeconfig)
                    print(f"round {round_} {name}: ready after {f['ready']:.1f} s "
                          f"(target ≤ 20 s: {'met' if f['ready'] <= 20 else 'MISSED'}), "
                          f"CPU {f['cpu']:.1f} s, waited for a CPU {f['waited']:.1f} s, "
                          f"RSS {f['rss']:,.0f} MiB (target ≤ 1,024 MiB: "
                          f"{'met' if f['rss'] <= 1024 else 'MISSED'}), {f['rows']:,} rows",
                          flush=True)
    finally:
        await stop_all([sim])
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="a checkout to start the service from (repeatable)")
    parser.add_argument("--rounds", type=int, default=2)
    add_envelope_arguments(parser)
    asyncio.run(main(parser.parse_args()))
