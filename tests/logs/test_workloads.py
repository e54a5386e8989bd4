"""Logs of real simulated workloads: controllers make the pods, the kubelet runs them."""

from __future__ import annotations

import pytest

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes
from tests.helpers import eventually, job_yaml
from tests.logs.conftest import RATE
from tests.logs.helpers import LogSocket, contiguous, number


@pytest.fixture
async def sim():
    timing = Timing.fast().with_changes(job_run=1.0)
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=timing,
                          log_lines_per_second=RATE, max_grace_seconds=None) as cluster:
        yield cluster


async def submit(api, name: str, kind: str) -> None:
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(kind, name)})
    assert resp.status == 201, await resp.text()


async def job_pods(api, name: str) -> list[str]:
    resp = await api.get(f"/api/v1/jobs/{name}")
    return [p["name"] for p in (await resp.json()).get("pods", [])] if resp.status == 200 \
        else []


async def test_training_job_is_followed_from_start_to_end(api, sim):
    await submit(api, "train", "training")
    [pod] = await eventually(lambda: job_pods(api, "train"), lambda pods: len(pods) == 1)
    sock = await LogSocket.open(api, "train")
    assert await sock.to_close(timeout=10) == 1000
    assert sock.types() == ["pod-ended", "end"]
    lines = sock.of(pod)
    assert number(lines[0]) == 0 and contiguous(lines)
    assert RATE * 0.5 <= len(lines) <= RATE * 2  # about a second of running
    resp = await api.get("/api/v1/jobs/train/logs", params={"tail": "10000"})
    assert [line.split(" ", 1)[1] for line in (await resp.json())["logs"]] == [
        line["data"].split(" ", 1)[1] for line in lines]


async def test_replaced_deployment_pod_joins_the_stream(api, sim):
    await submit(api, "serve", "inference")
    [old] = await eventually(lambda: job_pods(api, "serve"), lambda pods: len(pods) == 1)
    sock = await LogSocket.open(api, "serve", tail=1)
    await sock.lines_from(old, 5)
    sim.store.delete("pods", old, namespace="default")
    await sock.until(lambda s: any(line["pod"] != old for line in s.lines), timeout=10)
    new = next(line["pod"] for line in sock.lines if line["pod"] != old)
    await sock.until(lambda s: {"type": "pod-ended", "pod": old} in s.frames, timeout=10)
    joined = await sock.lines_from(new, 10)
    assert number(joined[0]) == 0 and contiguous(joined)
    await sock.close()
