"""What the benchmarks measure a process by, shared by the scripts in this folder (which run
as ``python bench/<name>.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import time
from pathlib import Path

import aiohttp

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def rss_mib(pid: int) -> float:
    return rss_bytes(pid) / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def runqueue_seconds(pid: int) -> float:
    """Time the main thread of ``pid`` has spent runnable but waiting for a CPU (the second
    field of ``/proc/<pid>/schedstat``): what another process on the cores took from it, so a
    wall-clock figure can be told apart from the process's own cost."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def start_sim(*flags: str) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m gpuctl_async.sim --port 0 FLAGS`` as its own process, and its URL (read
    from the line it prints once it listens). The caller terminates the process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async.sim", "--port", "0", *flags,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = (await process.stdout.readline()).decode()
    match = re.search(r"(https?://\S+)", line)
    if match is None:
        process.terminate()
        await process.wait()
        raise RuntimeError(f"the simulated cluster did not start: {line!r}")
    return process, match.group(1)


async def stop_all(processes: list[asyncio.subprocess.Process]) -> None:
    """Terminate the processes still running, the last started first, and wait for each."""
    for process in reversed(processes):
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout: float = 60) -> float:
    """Poll ``url``/ready until it answers 200; the seconds that took."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            async with session.get(f"{url}/ready") as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{url}/ready did not answer 200 within {timeout} s")


async def load(session: aiohttp.ClientSession, make_url, connections: int, seconds: float):
    """``connections`` workers requesting ``make_url()`` for ``seconds``: (rate, latencies in
    seconds, non-200 answers)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(make_url()) as response:
                await response.read()
                errors += response.status != 200
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(latencies) / (time.perf_counter() - started), latencies, errors


def add_envelope_arguments(parser) -> None:
    """The cluster size options of ``/_sim/seed/envelope`` (defaults: Kubernetes' envelope)."""
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--pods-per-job", type=int, default=10)
    parser.add_argument("--other-pods", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=50)


async def seed_envelope(session: aiohttp.ClientSession, sim_url: str, args, *,
                        interval: float = 0.5, probe_version: bool = False) -> dict:
    """Seed the sim through ``/_sim/seed/envelope`` with ``args``' sizes and wait until it is
    done: its final progress report. With ``probe_version``, ``/version`` is asked between
    polls and the slowest answer is added as ``slowestProbeMs`` (is the sim's loop free?)."""
    async with session.post(f"{sim_url}/_sim/seed/envelope", json={
            "nodes": args.nodes, "jobs": args.jobs, "podsPerJob": args.pods_per_job,
            "otherPods": args.other_pods, "namespaces": args.namespaces}) as response:
        assert response.status == 202, await response.text()
    slowest = 0.0
    while True:
        if probe_version:
            started = time.perf_counter()
            async with session.get(f"{sim_url}/version") as response:
                await response.read()
            slowest = max(slowest, time.perf_counter() - started)
        async with session.get(f"{sim_url}/_sim/seed/envelope") as response:
            progress = await response.json()
        if progress["done"]:
            break
        await asyncio.sleep(interval)
    if "error" in progress:
        raise RuntimeError(f"seeding failed: {progress['error']}")
    if probe_version:
        progress["slowestProbeMs"] = 1000 * slowest
    return progress
