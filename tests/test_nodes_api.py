"""Node routes against the simulated cluster: list filters and pages, detail, GPU occupancy,
joining and leaving pools, and literal routes winning over ``{nodeName}``."""

from __future__ import annotations

import pytest

from tests.helpers import add_nodes, eventually, node_manifest, without_request_id

NODES = "/api/v1/nodes"
POOL = "runwhere.ai/pool"



def add_pod(sim, name: str, *, node: str, gpus: int = 0, cpu: str = "1", memory: str = "1Gi",
            namespace: str = "default", labels: dict | None = None) -> None:
    requests = {"cpu": cpu, "memory": memory}
    limits = {}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    sim.store.create("pods", {"metadata": {"name": name, "labels": labels or {}}, "spec": {
        "containers": [{"name": "main", "image": "busybox:1.36",
                        "resources": {"requests": requests, "limits": limits}}]}},
        namespace=namespace)
    sim.store.bind_pod(namespace, name, node)


def not_ready(manifest: dict) -> dict:
    manifest["status"]["conditions"] = [{"type": "Ready", "status": "False",
                                         "reason": "KubeletNotReady"}]
    return manifest


async def get_json(api, path: str, expect: int = 200, **params) -> dict:
    resp = await api.get(path, params=params)
    assert resp.status == expect, await resp.text()
    return await resp.json()


@pytest.fixture
async def cluster(api, sim):
    """a1, a2 in pool train (8 × a100); d1 unpooled (4 × t4); x1 unpooled, not Ready."""
    await add_nodes(api, sim, node_manifest("a1", pool="train"), node_manifest("a2", pool="train"),
                    node_manifest("d1", gpus=4, gpu_type="t4"),
                    not_ready(node_manifest("x1", gpus=0, gpu_type=None)))
    return api


async def test_list_with_every_filter_and_pages(cluster, sim):
    add_pod(sim, "p1", node="a1", gpus=3)
    body = await eventually(lambda: get_json(cluster, NODES),
                            lambda b: b["items"][0]["gpuUsed"] == 3)
    assert body["total"] == 4
    assert [n["nodeName"] for n in body["items"]] == ["a1", "a2", "d1", "x1"]
    a1 = body["items"][0]
    created = sim.store.get("nodes", "a1")["metadata"]["creationTimestamp"]
    assert a1 == {"nodeName": "a1", "status": "active", "gpuTotal": 8, "gpuUsed": 3,
                  "gpuFree": 5, "boundPools": ["train"], "cpu": "64", "memory": "512Gi",
                  "gpuType": "a100", "createdAt": created}
    assert body["items"][3]["gpuType"] == "unknown"

    async def names(**params) -> list[str]:
        return [n["nodeName"] for n in (await get_json(cluster, NODES, **params))["items"]]

    assert await names(pool="train") == ["a1", "a2"]
    assert await names(pool="default") == ["d1", "x1"]
    assert await names(gpuType="t4") == ["d1"]
    assert await names(status="not_ready") == ["x1"]
    assert await names(status="active", pool="default") == ["d1"]
    assert await names(pool="nope") == []
    page = await get_json(cluster, NODES, page=2, pageSize=3)
    assert page["total"] == 4 and [n["nodeName"] for n in page["items"]] == ["x1"]
    assert (await get_json(cluster, NODES, page=3, pageSize=3))["items"] == []


@pytest.mark.parametrize("params, field", [
    ({"status": "sleeping"}, "status"), ({"page": "0"}, "page"), ({"pageSize": "101"}, "pageSize"),
])
async def test_list_rejects_bad_parameters(cluster, params, field):
    body = await get_json(cluster, NODES, expect=400, **params)
    assert field in body["details"]


async def test_detail_counts_every_pod_and_lists_gpuctl_jobs(cluster, sim):
    job_labels = {"runwhere.ai/job-type": "training", "runwhere.ai/job-name": "t1"}
    add_pod(sim, "t1-abc", node="a1", gpus=2, cpu="500m", memory="2Gi", labels=job_labels)
    add_pod(sim, "foreign", node="a1", gpus=1, cpu="2", memory="1Gi")
    body = await eventually(lambda: get_json(cluster, f"{NODES}/a1"),
                            lambda b: b["resources"]["gpuUsed"] == 3
                            and len(b["runningJobs"]) == 1)
    assert body["resources"] == {"cpuTotal": 64, "cpuUsed": 2.5, "memoryTotal": "512Gi",
                                 "memoryUsed": "3Gi", "gpuTotal": 8, "gpuUsed": 3, "gpuFree": 5}
    assert body["runningJobs"] == [{"name": "t1", "namespace": "default", "kind": "training",
                                    "pod": "t1-abc", "status": "Pending", "gpu": 2}]
    assert body["nodeName"] == "a1" and body["status"] == "active"
    assert {"key": POOL, "value": "train"} in body["labels"]
    assert body["boundPools"] == ["train"] and body["gpuType"] == "a100"
    assert body["capacity"]["nvidia.com/gpu"] == "8"
    assert body["allocatable"]["cpu"] == "64"
    assert body["conditions"][0]["type"] == "Ready"
    assert body["createdAt"] == sim.store.get("nodes", "a1")["metadata"]["creationTimestamp"]

    missing = await get_json(cluster, f"{NODES}/ghost", expect=404)
    assert without_request_id(missing) == {"error": "Node 'ghost' not found"}


async def test_gpu_detail_marks_gpus_used_by_bound_pods(cluster, sim):
    add_pod(sim, "big", node="d1", gpus=3)
    body = await eventually(lambda: get_json(cluster, f"{NODES}/gpu-detail"),
                            lambda b: b["items"][2]["gpuUsed"] == 3)
    assert body["total"] == 4
    d1 = body["items"][2]
    assert d1["nodeName"] == "d1" and d1["gpuCount"] == 4 and d1["gpuFree"] == 1
    assert [(g["gpuId"], g["status"], g["pod"]) for g in d1["gpus"]] == [
        ("gpu-0", "used", "default/big"), ("gpu-1", "used", "default/big"),
        ("gpu-2", "used", "default/big"), ("gpu-3", "free", None)]
    assert {g["type"] for g in d1["gpus"]} == {"t4"}
    assert body["items"][3]["gpus"] == []  # x1 has no GPUs
    page = await get_json(cluster, f"{NODES}/gpu-detail", page=2, pageSize=3)
    assert [n["nodeName"] for n in page["items"]] == ["x1"]


async def test_literal_routes_are_not_node_names(cluster, sim):
    await add_nodes(cluster, sim, node_manifest("gpu-detail"), node_manifest("labels"))
    assert "items" in await get_json(cluster, f"{NODES}/gpu-detail")
    # /nodes/labels is the label query (400 without key), never node "labels"
    assert "key" in (await get_json(cluster, f"{NODES}/labels", expect=400))["details"]
    body = await get_json(cluster, f"{NODES}/labels", key=POOL)
    assert {i["nodeName"] for i in body["items"]} == {"a1", "a2"}
    assert "items" in await get_json(cluster, f"{NODES}/labels/all")


# -- pool membership --------------------------------------------------------------------

async def test_add_node_to_pool(cluster, sim):
    resp = await cluster.post(f"{NODES}/d1/pools", json={"pool": "infer"})
    assert resp.status == 200
    assert await resp.json() == {"node": "d1", "pool": "infer",
                                 "message": "Node added to resource pool"}
    assert sim.store.get("nodes", "d1")["metadata"]["labels"][POOL] == "infer"
    assert (await get_json(cluster, f"{NODES}/d1"))["boundPools"] == ["infer"]
    assert (await cluster.post(f"{NODES}/d1/pools", json={"pool": "infer"})).status == 200


async def test_joining_a_pool_takes_its_description(cluster, sim):
    await cluster.put("/api/v1/pools/train", json={"description": "A100 training"})
    assert (await cluster.post(f"{NODES}/d1/pools", json={"pool": "train"})).status == 200
    annotations = sim.store.get("nodes", "d1")["metadata"]["annotations"]
    assert annotations["runwhere.ai/pool-description"] == "A100 training"


async def test_add_node_to_pool_errors(cluster, sim):
    for body in ({}, {"pool": ""}, {"pool": "Not A Label!"}):
        resp = await cluster.post(f"{NODES}/d1/pools", json=body)
        assert resp.status == 400 and "pool" in (await resp.json())["details"]
    resp = await cluster.post(f"{NODES}/ghost/pools", json={"pool": "p"})
    assert resp.status == 404 and "ghost" in (await resp.json())["error"]

    resp = await cluster.post(f"{NODES}/a1/pools", json={"pool": "infer"})
    assert resp.status == 409 and "a1 (pool train)" in (await resp.json())["error"]
    assert sim.store.get("nodes", "a1")["metadata"]["labels"][POOL] == "train"
    resp = await cluster.post(f"{NODES}/a1/pools", json={"pool": "infer", "overwrite": True})
    assert resp.status == 200
    assert sim.store.get("nodes", "a1")["metadata"]["labels"][POOL] == "infer"


async def test_joining_default_leaves_the_named_pool(cluster, sim):
    resp = await cluster.post(f"{NODES}/a1/pools", json={"pool": "default"})
    assert resp.status == 409
    resp = await cluster.post(f"{NODES}/a1/pools", json={"pool": "default", "overwrite": True})
    assert resp.status == 200
    assert POOL not in sim.store.get("nodes", "a1")["metadata"]["labels"]


async def test_remove_node_from_pool(cluster, sim):
    resp = await cluster.delete(f"{NODES}/a1/pools/infer")
    assert resp.status == 404
    assert without_request_id(await resp.json()) == {
        "error": "Node 'a1' is not in pool 'infer' (it is in pool 'train')"}
    assert (await cluster.delete(f"{NODES}/ghost/pools/train")).status == 404
    assert (await cluster.delete(f"{NODES}/d1/pools/default")).status == 400

    resp = await cluster.delete(f"{NODES}/a1/pools/train")
    assert resp.status == 200
    assert await resp.json() == {"node": "a1", "pool": "train",
                                 "message": "Node removed from resource pool"}
    assert POOL not in sim.store.get("nodes", "a1")["metadata"]["labels"]
    assert (await get_json(cluster, f"{NODES}/a1"))["boundPools"] == ["default"]
