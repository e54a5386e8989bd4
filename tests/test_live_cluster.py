"""End to end on a simulated cluster that runs what it is given: jobs are scheduled onto their
pool's nodes, start, run and finish; quotas refuse pods; the API reports all of it."""

from __future__ import annotations

from tests.helpers import eventually, job_yaml


async def submit(api, text: str) -> dict:
    resp = await api.post("/api/v1/jobs", json={"yamlContent": text})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def get_json(api, path: str, **params) -> dict:
    resp = await api.get(path, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def gpu_job(name: str, *, pool: str | None = None, gpu: int = 1, kind: str = "training",
            namespace: str | None = None) -> str:
    return job_yaml(kind, name, pool=pool, namespace=namespace).replace(
        "  cpu: 1", f"  cpu: 1\n  gpu: {gpu}")


async def test_training_job_runs_in_its_pool_and_is_reported_to_the_end(live_api):
    await submit(live_api, gpu_job("resnet", pool="training-pool", gpu=4))

    running = await eventually(lambda: get_json(live_api, "/api/v1/jobs", kind="training"),
                               lambda b: b["items"] and b["items"][0]["status"] == "Running")
    (item,) = running["items"]
    assert item["node"].startswith("train-a100-")  # the pool's nodes only
    assert item["ready"] == "1/1" and item["ip"] != "N/A"
    pool = await get_json(live_api, "/api/v1/pools/training-pool")
    assert pool["gpu_used"] == 4 and pool["gpu_free"] == 12

    done = await eventually(lambda: get_json(live_api, "/api/v1/jobs/resnet"),
                            lambda d: d["status"] == "Succeeded")
    assert done["completed"] and done["started"]
    reasons = {e["reason"] for e in done["events"]}
    assert {"Scheduled", "Started", "SuccessfulCreate", "Completed"} <= reasons
    assert any(e["from"] == "kubelet" for e in done["events"])
    listed = await get_json(live_api, "/api/v1/jobs", status="succeeded")
    assert [i["name"] for i in listed["items"]] == ["resnet"]
    pool = await eventually(lambda: get_json(live_api, "/api/v1/pools/training-pool"),
                            lambda p: p["gpu_used"] == 0)


async def test_default_pool_jobs_avoid_pooled_nodes(live_api):
    await submit(live_api, gpu_job("web", kind="compute", gpu=1))
    body = await eventually(lambda: get_json(live_api, "/api/v1/jobs", kind="compute"),
                            lambda b: b["items"] and b["items"][0]["status"] == "Running")
    assert body["items"][0]["node"] == "general-l4-0"
    detail = await eventually(
        lambda: get_json(live_api, "/api/v1/jobs/web"),
        lambda d: d["access_methods"]["pod_ip_access"]["url"] is not None)
    assert detail["status"] == "Running" and detail["resource_type"] == "Deployment"
    assert detail["access_methods"]["node_port_access"]["url"].startswith("http://")


async def test_unschedulable_job_says_why(live_api):
    # inference-pool has one 4-GPU node: a 3-GPU compute job holds it until deleted.
    await submit(live_api, gpu_job("holder", pool="inference-pool", gpu=3, kind="compute"))
    await eventually(lambda: get_json(live_api, "/api/v1/jobs", kind="compute"),
                     lambda b: b["items"] and b["items"][0]["status"] == "Running")
    accepted = await submit(live_api, gpu_job("too-big", pool="inference-pool", gpu=2))
    assert accepted["warnings"] == [
        "needs 2 GPUs; inference-pool has 4, 3 in use by 1 job, at most 1 free on one node: "
        "the job will wait (WaitingForGPUs)"]
    detail = await eventually(
        lambda: get_json(live_api, "/api/v1/jobs/too-big"),
        lambda d: any(e["reason"] == "FailedScheduling" for e in d["events"]))
    assert detail["status"] == "Pending"
    failed = next(e for e in detail["events"] if e["reason"] == "FailedScheduling")
    assert "Insufficient nvidia.com/gpu" in failed["message"]
    assert failed["type"] == "Warning" and failed["from"] == "default-scheduler"


async def test_job_over_quota_is_shown_as_refused_and_utilization_moves(live_api):
    quota = ("kind: quota\nquota: {name: team}\n"
             "namespace:\n  team-q: {cpu: 2, memory: 4Gi, gpu: 1}\n")
    resp = await live_api.post("/api/v1/quotas", json={"yamlContent": quota})
    assert resp.status == 201, await resp.text()

    await submit(live_api, gpu_job("fits", namespace="team-q", gpu=1))
    quota_view = await eventually(
        lambda: get_json(live_api, "/api/v1/quotas/team-q"),
        lambda q: q["utilization"]["nvidia.com/gpu"]["used"] in ("1", 1))
    assert quota_view["utilization"]["nvidia.com/gpu"]["hard"] in ("1", 1)

    await submit(live_api, gpu_job("over", namespace="team-q", gpu=1))
    refused = await eventually(lambda: get_json(live_api, "/api/v1/jobs/over"),
                               lambda d: d["status"] == "FailedCreate")
    event = next(e for e in refused["events"] if e["reason"] == "FailedCreate")
    assert "exceeded quota" in event["message"]
    listed = await get_json(live_api, "/api/v1/jobs", namespace="team-q", status="FailedCreate")
    assert [i["jobId"] for i in listed["items"]] == ["over"]

    # When the first job finishes, its GPU is free again and the refused job gets its pod.
    await eventually(lambda: get_json(live_api, "/api/v1/jobs/over"),
                     lambda d: d["status"] in ("Running", "Succeeded"), timeout=15)
    await eventually(lambda: get_json(live_api, "/api/v1/jobs", namespace="team-q",
                                      status="succeeded"),
                     lambda b: b["total"] == 2, timeout=15)
    await eventually(lambda: get_json(live_api, "/api/v1/quotas/team-q"),
                     lambda q: q["utilization"]["nvidia.com/gpu"]["used"] in ("0", 0))


async def test_node_list_and_detail_agree_on_capacity(live_api):
    listed = {n["nodeName"]: n for n in (await get_json(live_api, "/api/v1/nodes"))["items"]}
    assert set(listed) == {"train-a100-0", "train-a100-1", "infer-t4-0", "general-l4-0"}
    for name, item in listed.items():
        detail = await get_json(live_api, f"/api/v1/nodes/{name}")
        assert item["memory"] == detail["resources"]["memoryTotal"], name
        assert item["gpuTotal"] == detail["resources"]["gpuTotal"], name
