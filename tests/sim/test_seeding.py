"""Bulk seeding of Running gpuctl training jobs, in process and through /_sim."""

from __future__ import annotations

import aiohttp
import pytest

from gpuctl_async.sim import gpuctl_objects as labels
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

from .helpers import wait_for


@pytest.fixture
async def cluster():
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        yield sim


async def test_seeded_jobs_run_and_stay_running(cluster):
    result = cluster.seed_running_jobs(jobs=12, pods_per_job=5, namespaces=3)
    assert (result["jobs"], result["pods"], result["namespaces"]) == (12, 60, 3)
    pods = cluster.store.list("pods")
    assert len(pods) == 60
    assert {p["metadata"]["namespace"] for p in pods} == {"bench-0", "bench-1", "bench-2"}
    for pod in pods:
        pod_labels = pod["metadata"]["labels"]
        assert pod_labels[labels.JOB_TYPE] == "training"
        assert pod_labels[labels.JOB_NAME] == pod_labels["job-name"]
        assert pod_labels[labels.POOL] == "training-pool"
        assert pod["spec"]["nodeName"] in ("train-a100-0", "train-a100-1")
        assert pod["spec"]["priorityClassName"] == "gpuctl-medium"
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["containerStatuses"][0]["ready"] is True
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"

    def settled():
        return all((j.get("status") or {}).get("active") == 5 and
                   (j.get("status") or {}).get("ready") == 5 for j in cluster.store.list("jobs"))

    await wait_for(settled)
    assert len(cluster.store.list("pods")) == 60  # the Job controller keeps every pod
    assert not cluster.store.list("events", field_selector="reason=SuccessfulCreate")
    job = cluster.store.list("jobs", "bench-0")[0]
    victim = cluster.store.list("pods", "bench-0", label_selector=f"job-name="
                                f"{job['metadata']['name']}")[0]["metadata"]["name"]
    cluster.store.delete("pods", victim, "bench-0")
    await wait_for(lambda: (cluster.store.get("jobs", job["metadata"]["name"], "bench-0")
                            ["status"].get("failed")) == 1)
    await wait_for(settled)  # replaced after the back-off


async def test_seed_endpoint(cluster):
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{cluster.url}/_sim/seed/running-jobs",
                                json={"jobs": 3, "podsPerJob": 2, "namespaces": 1,
                                      "prefix": "load"}) as response:
            assert response.status == 200
            body = await response.json()
        async with session.post(f"{cluster.url}/_sim/seed/running-jobs",
                                data=b"[1]") as response:
            assert response.status == 400
    assert (body["jobs"], body["pods"]) == (3, 6) and body["seconds"] >= 0
    assert len(cluster.store.list("pods", "load-0")) == 6


async def test_seeding_needs_workloads():
    async with SimCluster() as bare:
        with pytest.raises(RuntimeError):
            bare.seed_running_jobs(jobs=1)
