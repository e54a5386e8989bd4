"""Why a job is not running: every reason with its numbers, the queue, and the feed, on a
simulated cluster that schedules, pulls images, crashes and enforces quotas.

Default topology (``sim.topology``): training-pool = 2 nodes × 8 A100, inference-pool = 1 ×
4 T4, default pool = 1 × 2 L4. Compute jobs run until deleted, so they hold GPUs."""

from __future__ import annotations

import pytest

from gpuctl_async.api.paths import JOB_FEED_PATH
from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim.topology import build_node, node_spec
from tests.conftest import sim_settings
from tests.helpers import eventually


def job(name: str, *, kind: str = "compute", pool: str | None = "training-pool", gpu: int = 8,
        gpu_type: str | None = None, priority: str | None = None, namespace: str | None = None,
        image: str = "busybox:1.36", command: str = "[sleep, '3600']", cpu: str = "1") -> str:
    lines = [f"kind: {kind}", "job:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    if priority:
        lines.append(f"  priority: {priority}")
    lines += ["environment:", f"  image: {image}", f"  command: {command}", "resources:",
              f"  cpu: {cpu}", "  memory: 1Gi", f"  gpu: {gpu}"]
    if pool:
        lines.append(f"  pool: {pool}")
    if gpu_type:
        lines.append(f"  gpuType: {gpu_type}")
    return "\n".join(lines) + "\n"


async def submit(api, text: str, status: int = 201, **extra) -> dict:
    resp = await api.post("/api/v1/jobs", json={"yamlContent": text, **extra})
    assert resp.status == status, await resp.text()
    return await resp.json()


async def get_json(api, path: str, **params) -> dict:
    resp = await api.get(path, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def row(api, name: str, check=lambda r: True) -> dict:
    """The list row of job ``name`` once ``check`` holds on it."""
    def find(body):
        return next((i for i in body["items"] if i["name"] == name), None)

    body = await eventually(lambda: get_json(api, "/api/v1/jobs", pageSize=100),
                            lambda b: find(b) is not None and check(find(b)))
    return find(body)


async def running(api, name: str) -> dict:
    return await row(api, name, lambda r: r["status"] == "Running" and r["ready"] == "1/1")


async def fill_training_pool(api) -> None:
    """Two compute jobs hold all 16 A100s of training-pool."""
    for name in ("hold-1", "hold-2"):
        await submit(api, job(name))
    for name in ("hold-1", "hold-2"):
        item = await running(api, name)
        assert item["reason"] is None and item["message"] is None


async def delete(api, name: str) -> None:
    resp = await api.delete(f"/api/v1/jobs/{name}")
    assert resp.status == 200, await resp.text()


async def test_waiting_for_gpus_names_the_numbers(live_api):
    await fill_training_pool(live_api)
    accepted = await submit(live_api, job("wait-1", gpu=4, gpu_type="a100"))
    assert accepted["warnings"] == [
        "needs 4 × a100 GPUs; training-pool has 16, all 16 in use by 2 jobs: the job will "
        "wait (WaitingForGPUs)"]
    item = await row(live_api, "wait-1", lambda r: r["reason"] == "WaitingForGPUs")
    assert item["status"] == "Pending"
    assert item["message"] == "needs 4 × a100 GPUs; training-pool has 16, all 16 in use by 2 jobs"

    detail = await get_json(live_api, "/api/v1/jobs/wait-1")
    scheduling = detail["scheduling"]
    assert scheduling["reason"] == "WaitingForGPUs" and scheduling["message"] == item["message"]
    pool = scheduling["blockers"]["pool"]
    assert pool == {"name": "training-pool", "gpuType": "a100", "nodes": 2, "matchingNodes": 2,
                    "usableNodes": 2, "gpus": 16, "gpusFree": 0, "largestGpusFreeOnNode": 0,
                    "jobsUsingGpus": 2, "otherPodsUsingGpus": 0,
                    "requested": {"nvidia.com/gpu": "4", "cpu": "1", "memory": "1Gi"}}
    assert {n["problem"] for n in scheduling["blockers"]["nodes"]} == {"insufficient"}
    assert "Insufficient nvidia.com/gpu" in scheduling["blockers"]["scheduler"]
    assert scheduling["queue"] == {"position": 1, "waiting": 1, "gpusAhead": 0,
                                   "priority": 500000}
    assert detail["pods"][0]["reason"] == "WaitingForGPUs"

    # Half the pool frees up: the job is placed and its reason goes away.
    await delete(live_api, "hold-1")
    item = await running(live_api, "wait-1")
    assert item["reason"] is None
    assert (await get_json(live_api, "/api/v1/jobs/wait-1"))["scheduling"] is None


async def test_partly_used_pool_says_how_much_is_free(live_api):
    await submit(live_api, job("hold-6", gpu=6))
    await submit(live_api, job("hold-7", gpu=7))
    await running(live_api, "hold-6")
    await running(live_api, "hold-7")
    await submit(live_api, job("wait-3", gpu=3))
    item = await row(live_api, "wait-3", lambda r: r["reason"] == "WaitingForGPUs")
    assert item["message"] == ("needs 3 GPUs; training-pool has 16, 13 in use by 2 jobs, at "
                               "most 2 free on one node")


async def test_queue_positions_move_as_jobs_ahead_are_placed(live_api):
    await fill_training_pool(live_api)
    for name in ("wait-1", "wait-2", "wait-3"):
        await submit(live_api, job(name))
    for name in ("wait-1", "wait-2", "wait-3"):
        await row(live_api, name, lambda r: r["reason"] == "WaitingForGPUs")

    async def queue(name: str) -> dict:
        return (await get_json(live_api, f"/api/v1/jobs/{name}"))["scheduling"]["queue"]

    assert await queue("wait-1") == {"position": 1, "waiting": 3, "gpusAhead": 0,
                                     "priority": 500000}
    assert await queue("wait-3") == {"position": 3, "waiting": 3, "gpusAhead": 16,
                                     "priority": 500000}
    await delete(live_api, "hold-1")
    await running(live_api, "wait-1")
    assert (await queue("wait-3"))["position"] == 2
    assert await queue("wait-3") == {"position": 2, "waiting": 2, "gpusAhead": 8,
                                     "priority": 500000}
    await delete(live_api, "hold-2")
    await running(live_api, "wait-2")
    assert await queue("wait-3") == {"position": 1, "waiting": 1, "gpusAhead": 0,
                                     "priority": 500000}
    still = await row(live_api, "wait-3")
    assert still["reason"] == "WaitingForGPUs"
    assert still["message"] == "needs 8 GPUs; training-pool has 16, all 16 in use by 2 jobs"


async def test_higher_priority_job_overtakes_an_older_one(live_api):
    await fill_training_pool(live_api)
    await submit(live_api, job("early-low", priority="low"))
    await row(live_api, "early-low", lambda r: r["reason"] == "WaitingForGPUs")
    await submit(live_api, job("late-high", priority="high"))
    await row(live_api, "late-high", lambda r: r["reason"] == "WaitingForGPUs")

    high = (await get_json(live_api, "/api/v1/jobs/late-high"))["scheduling"]["queue"]
    low = (await get_json(live_api, "/api/v1/jobs/early-low"))["scheduling"]["queue"]
    assert high == {"position": 1, "waiting": 2, "gpusAhead": 0, "priority": 1000000}
    assert low == {"position": 2, "waiting": 2, "gpusAhead": 8, "priority": 100}

    await delete(live_api, "hold-1")
    await running(live_api, "late-high")  # the scheduler takes it first, as the queue said
    low_row = await row(live_api, "early-low")
    assert low_row["status"] == "Pending" and low_row["reason"] == "WaitingForGPUs"
    low = (await get_json(live_api, "/api/v1/jobs/early-low"))["scheduling"]["queue"]
    assert low == {"position": 1, "waiting": 1, "gpusAhead": 0, "priority": 100}


async def test_taints_and_cordons_make_a_pool_unschedulable(live_sim, live_api):
    tainted = build_node(node_spec("edge-0", pool="edge-pool", gpuType="a100", gpus=8,
                                   taints=[{"key": "dedicated", "value": "ml",
                                            "effect": "NoSchedule"}]), 20)
    cordoned = build_node(node_spec("edge-1", pool="edge-pool", gpuType="a100", gpus=8), 21)
    cordoned["spec"]["unschedulable"] = True
    for node in (tainted, cordoned):
        live_sim.store.create("nodes", node)
    nodes = live_api.app[CACHE].nodes
    assert await nodes.wait_for(lambda: nodes.get("", "edge-1") is not None, timeout=5)

    expected = ("all 2 nodes of edge-pool refuse new pods: edge-0 taint dedicated=ml:NoSchedule; "
                "edge-1 cordoned (unschedulable)")
    accepted = await submit(live_api, job("edgy", pool="edge-pool", gpu=1))
    assert accepted["warnings"] == [f"{expected}: the job will wait (Unschedulable)"]
    item = await row(live_api, "edgy", lambda r: r["reason"] == "Unschedulable")
    assert item["message"] == expected
    problems = (await get_json(live_api, "/api/v1/jobs/edgy"))["scheduling"]["blockers"]["nodes"]
    assert problems == [
        {"node": "edge-0", "problem": "tainted", "detail": "taint dedicated=ml:NoSchedule"},
        {"node": "edge-1", "problem": "cordoned", "detail": "cordoned (unschedulable)"}]

    # Uncordoning the node lets the job run: the reason follows the node cache.
    node = live_sim.store.get("nodes", "edge-1")
    node["spec"]["unschedulable"] = False
    live_sim.store.update("nodes", node)
    await running(live_api, "edgy")


async def test_cpu_shortage_is_waiting_for_resources(live_api):
    await submit(live_api, job("cpu-hog", pool="inference-pool", gpu=0, cpu="40"))
    await running(live_api, "cpu-hog")
    await submit(live_api, job("needs-cpu", pool="inference-pool", gpu=1, cpu="20"))
    item = await row(live_api, "needs-cpu", lambda r: r["reason"] == "WaitingForResources")
    assert item["message"] == ("needs 20 CPU (at most 7710m free on one node) on a node of "
                               "inference-pool; they are in use by other pods")


async def test_quota_at_its_limit_is_quota_exceeded_with_numbers(live_api):
    quota = ("kind: quota\nquota: {name: team}\n"
             "namespace:\n  team-q: {cpu: 8, memory: 8Gi, gpu: 1}\n")
    resp = await live_api.post("/api/v1/quotas", json={"yamlContent": quota})
    assert resp.status == 201, await resp.text()
    await submit(live_api, job("first", namespace="team-q", gpu=1))
    await running(live_api, "first")
    await eventually(lambda: get_json(live_api, "/api/v1/quotas/team-q"),
                     lambda q: q["utilization"]["nvidia.com/gpu"]["used"] in ("1", 1))

    accepted = await submit(live_api, job("second", namespace="team-q", gpu=1))
    assert accepted["warnings"] == [
        "quota 'team-team-q' of namespace 'team-q' has 1 of 1 requests.nvidia.com/gpu in use "
        "and one pod needs 1: its pods wait until that much is free"]
    item = await row(live_api, "second", lambda r: r["reason"] == "QuotaExceeded")
    assert item["message"] == ("needs 1 GPU per pod; quota team-team-q of namespace team-q "
                               "allows 1, 1 in use")
    scheduling = (await get_json(live_api, "/api/v1/jobs/second"))["scheduling"]
    assert scheduling["reason"] == "QuotaExceeded" and scheduling["queue"] is None
    assert scheduling["blockers"]["quota"] == [
        {"quota": "team-team-q", "resource": "requests.nvidia.com/gpu", "hard": "1", "used": "1",
         "requested": "1"}]
    await eventually(lambda: get_json(live_api, "/api/v1/jobs/second"),
                     lambda d: "exceeded quota" in d["scheduling"]["blockers"].get("event", ""))

    await delete(live_api, "first")
    item = await running(live_api, "second")
    assert item["reason"] is None


async def test_image_pull_failure_is_explained(live_api):
    await submit(live_api, job("bad-image", gpu=0, image="registry.invalid/team/app:v1"))
    item = await row(live_api, "bad-image", lambda r: r["reason"] == "ImagePullBackOff")
    assert item["message"].startswith('node train-a100-') and \
        'cannot pull image "registry.invalid/team/app:v1" for container main' in item["message"]
    container = (await get_json(live_api, "/api/v1/jobs/bad-image"))["scheduling"][
        "blockers"]["container"]
    assert container["image"] == "registry.invalid/team/app:v1"
    assert container["state"] in ("ErrImagePull", "ImagePullBackOff")


async def test_crash_loop_names_exit_code_and_restarts(live_api):
    await submit(live_api, job("crasher", gpu=0, command="[sh, -c, 'exit 3']"))
    item = await row(live_api, "crasher", lambda r: r["reason"] == "CrashLoopBackOff")
    assert item["status"] == "CrashLoopBackOff"
    assert item["message"].startswith("container main keeps exiting (last exit code 3, Error) "
                                      "and has restarted ")
    detail = await eventually(
        lambda: get_json(live_api, "/api/v1/jobs/crasher"),
        lambda d: (d["scheduling"] or {}).get("reason") == "CrashLoopBackOff"
        and d["scheduling"]["blockers"]["container"]["restartCount"] >= 2)
    container = detail["scheduling"]["blockers"]["container"]
    assert container["lastExitCode"] == 3 and container["lastTerminationReason"] == "Error"
    assert f"restarted {container['restartCount']} times" in detail["scheduling"]["message"]


async def test_list_and_detail_with_reasons_make_no_api_calls(live_sim, live_api):
    await fill_training_pool(live_api)
    await submit(live_api, job("wait-1"))
    await row(live_api, "wait-1", lambda r: r["reason"] == "WaitingForGPUs")
    live_sim.reset_counters()
    for path in ("/api/v1/jobs", "/api/v1/jobs/wait-1", "/api/v1/jobs/hold-1",
                 "/api/v1/jobs?status=pending"):
        await get_json(live_api, path)
    assert live_sim.counters()["requests"] == {}


async def test_feed_delivers_a_reason_change(live_api):
    await fill_training_pool(live_api)
    await submit(live_api, job("wait-1"))
    await row(live_api, "wait-1", lambda r: r["reason"] == "WaitingForGPUs")
    async with live_api.ws_connect(f"{JOB_FEED_PATH}?pool=training-pool") as ws:
        snapshot = await ws.receive_json(timeout=5)
        (waiting,) = [i for i in snapshot["items"] if i["name"] == "wait-1"]
        assert waiting["reason"] == "WaitingForGPUs"
        await delete(live_api, "hold-1")
        seen = []
        while not seen or seen[-1]["reason"] is not None:
            frame = await ws.receive_json(timeout=5)
            if frame.get("item", {}).get("name") == "wait-1":
                seen.append(frame["item"])
        assert seen[-1]["status"] == "Running" and seen[-1]["message"] is None
        assert seen[0]["reason"] != "WaitingForGPUs"  # a change, not a repeat


async def test_terminating_pod_says_so(aiohttp_client, tmp_path):
    from gpuctl_async.sim.testing import SimCluster
    from gpuctl_async.sim.timing import Timing
    from gpuctl_async.sim.topology import default_nodes

    slow_stop = Timing.fast().with_changes(stop=1.5)  # containers take 1.5 s to stop
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=slow_stop) as sim:
        api = await aiohttp_client(create_app(sim_settings(sim, tmp_path)))
        assert await api.app[CACHE].wait_synced(timeout=10)
        await submit(api, job("going", gpu=1))
        await running(api, "going")
        await delete(api, "going")
        item = await row(api, "going", lambda r: r["reason"] == "Terminating")
        assert item["status"] == "Terminating"
        assert item["message"] == ("being deleted; waiting for its containers to stop "
                                   "(grace period 30s)")
        await eventually(lambda: get_json(api, "/api/v1/jobs"), lambda b: b["total"] == 0)
        await api.close()


# -- submit-time feasibility --------------------------------------------------------------

async def test_wrong_gpu_type_is_refused_naming_the_field(live_api):
    body = await submit(live_api, job("a10", gpu=4, gpu_type="a10-24g"), status=400)
    assert body["details"] == {"resources.gpuType": [
        "no node of pool 'training-pool' has GPU type 'a10-24g' (its nodes have a100)"]}
    assert "never run" in body["error"]
    resp = await live_api.get("/api/v1/jobs/a10")
    assert resp.status == 404  # nothing was created


async def test_pod_larger_than_any_node_is_refused(live_api):
    body = await submit(live_api, job("huge", pool="inference-pool", gpu=8, cpu="64"),
                        status=400)
    assert body["details"] == {
        "resources.gpu": ["one pod asks for 8 GPUs; the largest node of pool 'inference-pool' "
                          "can offer 4"],
        "resources.cpu": ["one pod asks for 64 CPU; the largest node of pool 'inference-pool' "
                          "can offer 47710m"]}


async def test_quota_below_one_pod_is_refused(live_api):
    quota = ("kind: quota\nquota: {name: small}\n"
             "namespace:\n  team-s: {cpu: 8, memory: 8Gi, gpu: 1}\n")
    assert (await live_api.post("/api/v1/quotas", json={"yamlContent": quota})).status == 201
    await eventually(lambda: live_api.app[CACHE].quotas.in_namespace("team-s"), bool)
    body = await submit(live_api, job("greedy", namespace="team-s", gpu=2), status=400)
    assert body["details"] == {"resources.gpu": [
        "quota 'small-team-s' of namespace 'team-s' allows requests.nvidia.com/gpu=1; one pod asks "
        "for 2"]}


async def test_dry_run_refuses_and_warns_too(live_api):
    body = await submit(live_api, job("dry-a10", gpu_type="a10-24g"), status=400,
                        dryRun=True)
    assert "resources.gpuType" in body["details"]
    await fill_training_pool(live_api)
    body = await submit(live_api, job("dry-wait"), status=200, dryRun=True)
    assert body["dryRun"] is True
    assert body["warnings"] == ["needs 8 GPUs; training-pool has 16, all 16 in use by 2 jobs: "
                                "the job will wait (WaitingForGPUs)"]
    assert (await live_api.get("/api/v1/jobs/dry-wait")).status == 404


async def test_batch_refuses_and_warns_per_document(live_api):
    await fill_training_pool(live_api)
    docs = [job("b-ok", pool="inference-pool", gpu=1), job("b-a10", gpu_type="a10-24g"),
            job("b-wait")]
    resp = await live_api.post("/api/v1/jobs/batch", json={"yamlContents": docs})
    assert resp.status == 201
    body = await resp.json()
    assert body["success"] == [
        {"jobId": "b-ok", "name": "b-ok", "namespace": "default", "warnings": []},
        {"jobId": "b-wait", "name": "b-wait", "namespace": "default", "warnings": [
            "needs 8 GPUs; training-pool has 16, all 16 in use by 2 jobs: the job will wait "
            "(WaitingForGPUs)"]}]
    (failed,) = body["failed"]
    assert failed["index"] == 1
    assert failed["details"] == {"resources.gpuType": [
        "no node of pool 'training-pool' has GPU type 'a10-24g' (its nodes have a100)"]}


@pytest.fixture
async def lenient_api(live_sim, aiohttp_client, tmp_path):
    """The app with ``refuse_infeasible_jobs`` off (an autoscaling cluster)."""
    client = await aiohttp_client(create_app(sim_settings(live_sim, tmp_path,
                                                          refuse_infeasible_jobs=False)))
    assert await client.app[CACHE].wait_synced(timeout=10)
    return client


async def test_refusals_become_warnings_when_told(lenient_api):
    accepted = await submit(lenient_api, job("a10", gpu=4, gpu_type="a10-24g"))
    assert accepted["warnings"] == [
        "no node of pool 'training-pool' has GPU type 'a10-24g' (its nodes have a100): the job "
        "would never run as the cluster is now"]
    item = await row(lenient_api, "a10", lambda r: r["reason"] == "NoMatchingNodes")
    assert item["message"] == ("needs a10-24g GPUs; no node of training-pool has that type "
                               "(its nodes have a100)")

    await submit(lenient_api, job("too-big", pool="inference-pool", gpu=8))
    item = await row(lenient_api, "too-big", lambda r: r["reason"] == "Unschedulable")
    assert item["message"] == "needs 8 GPUs in one pod; the largest node of inference-pool has 4"

    await submit(lenient_api, job("nowhere", pool="empty-pool", gpu=1))
    item = await row(lenient_api, "nowhere", lambda r: r["reason"] == "NoMatchingNodes")
    assert item["message"] == "empty-pool has no nodes"


# -- reasons a bare API server (no controllers, no scheduler) shows -------------------------

async def test_creating_failed_create_and_scheduling(sim, api):
    from tests.helpers import add_nodes, job_pod, node_manifest, settle

    await add_nodes(api, sim, node_manifest("gpu-1", pool="train-pool"))
    await submit(api, job("idle", pool="train-pool", gpu=2))
    item = await row(api, "idle", lambda r: r["reason"] == "Creating")
    assert (item["status"], item["message"]) == (
        "Pending", "waiting for the Deployment controller to create its pods")

    deployment = sim.store.get("deployments", "idle", namespace="default")
    sim.store.create("events", {
        "metadata": {"name": "idle.1"},
        "involvedObject": {"kind": "Deployment", "namespace": "default", "name": "idle",
                           "uid": deployment["metadata"]["uid"], "apiVersion": "apps/v1"},
        "reason": "FailedCreate", "type": "Warning", "count": 1,
        "message": 'pods "idle-x" is forbidden: violates PodSecurity "restricted:latest"',
        "source": {"component": "replicaset-controller"}}, namespace="default")
    item = await row(api, "idle", lambda r: r["reason"] == "FailedCreate")
    assert item["message"] == 'pods "idle-x" is forbidden: violates PodSecurity "restricted:latest"'

    # A pod nobody schedules (this API server has no scheduler) fits: "Scheduling".
    sim.store.create("pods", job_pod(deployment, "aaaaa", phase="Pending"), namespace="default")
    await settle(api, sim)
    item = await row(api, "idle", lambda r: r["reason"] == "Scheduling")
    assert item["message"] == ("fits on 1 node of train-pool now; waiting for the scheduler "
                               "to place it")
    queue = (await get_json(api, "/api/v1/jobs/idle"))["scheduling"]["queue"]
    # No Priority admission here: the priority is read from the gpuctl-medium class.
    assert queue == {"position": 1, "waiting": 1, "gpusAhead": 0, "priority": 500000}


async def test_a_scheduler_reason_the_caches_cannot_see_is_passed_on(live_sim, live_api):
    small = build_node(node_spec("tiny-0", pool="tiny-pool", gpuType="a100", gpus=8), 30)
    small["status"]["allocatable"]["pods"] = small["status"]["capacity"]["pods"] = "1"
    live_sim.store.create("nodes", small)
    nodes = live_api.app[CACHE].nodes
    assert await nodes.wait_for(lambda: nodes.get("", "tiny-0") is not None, timeout=5)
    await submit(live_api, job("only", pool="tiny-pool", gpu=1))
    await running(live_api, "only")
    await submit(live_api, job("second", pool="tiny-pool", gpu=1))
    item = await row(live_api, "second", lambda r: r["reason"] == "Unschedulable")
    assert item["message"] == "the scheduler reports: 1 Too many pods"


async def test_replicas_beyond_the_quota_are_warned_and_explained(live_api):
    quota = ("kind: quota\nquota: {name: two}\n"
             "namespace:\n  team-r: {cpu: 8, memory: 8Gi, gpu: 2}\n")
    assert (await live_api.post("/api/v1/quotas", json={"yamlContent": quota})).status == 201
    await eventually(lambda: live_api.app[CACHE].quotas.in_namespace("team-r"), bool)
    text = job("three", kind="inference", namespace="team-r", gpu=1).replace(
        "resources:", "service:\n  replicas: 3\nresources:")
    accepted = await submit(live_api, text)
    assert accepted["warnings"] == [
        "quota 'two-team-r' of namespace 'team-r' allows requests.nvidia.com/gpu=2: at most 2 "
        "of the 3 replicas can run"]
    detail = await eventually(
        lambda: get_json(live_api, "/api/v1/jobs/three", namespace="team-r"),
        lambda d: [p["status"] for p in d["pods"]] == ["Running", "Running"]
        and (d["scheduling"] or {}).get("reason") == "QuotaExceeded")
    assert detail["status"] == "Running"  # its pods run; the third replica is refused
    assert detail["scheduling"]["message"] == (
        "needs 1 GPU per pod; quota two-team-r of namespace team-r allows 2, 2 in use")
    assert detail["scheduling"]["pod"] is None
