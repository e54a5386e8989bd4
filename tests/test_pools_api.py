"""Pool routes against the simulated cluster: grouping, GPU accounting, create / update /
delete with their all-or-nothing checks, and read-your-writes."""

from __future__ import annotations

import asyncio

import pytest

from gpuctl_async.sim import status as st
from tests.helpers import add_nodes, eventually, job_yaml, node_manifest, without_request_id

POOLS = "/api/v1/pools"
POOL = "runwhere.ai/pool"
DESCRIPTION = "runwhere.ai/pool-description"
GPU_TYPE = "runwhere.ai/gpu-type"



def add_pod(sim, name: str, *, gpus: int, node: str | None, namespace: str = "default",
            labels: dict | None = None) -> None:
    """A pod requesting ``gpus`` GPUs, bound to ``node`` (as the scheduler would)."""
    gpu = {"nvidia.com/gpu": str(gpus)}
    sim.store.create("pods", {"metadata": {"name": name, "labels": labels or {}}, "spec": {
        "containers": [{"name": "main", "image": "busybox:1.36",
                        "resources": {"requests": {"cpu": "1", **gpu}, "limits": gpu}}]}},
        namespace=namespace)
    if node:
        sim.store.bind_pod(namespace, name, node)


def set_phase(sim, name: str, phase: str, namespace: str = "default") -> None:
    pod = sim.store.get("pods", name, namespace)
    pod["status"]["phase"] = phase
    sim.store.update("pods", pod, subresource="status")


def node_meta(sim, name: str) -> dict:
    return sim.store.get("nodes", name)["metadata"]


async def get_json(api, path: str, status: int = 200) -> dict:
    resp = await api.get(path)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def get_pools(api) -> dict[str, dict]:
    resp = await api.get(POOLS)
    assert resp.status == 200
    return {pool["name"]: pool for pool in await resp.json()}


@pytest.fixture
async def cluster(api, sim):
    """Pool ``train`` (a1, a2: 8 × a100 each) and two unpooled nodes (d1: 4 × t4, d2)."""
    await add_nodes(api, sim, node_manifest("a1", pool="train"), node_manifest("a2", pool="train"),
                    node_manifest("d1", gpus=4, gpu_type="t4"), node_manifest("d2", gpus=0,
                                                                              gpu_type=None))
    return api


async def test_list_groups_nodes_by_pool_and_counts_every_bound_pod(cluster, sim):
    add_pod(sim, "foreign", gpus=2, node="a1")  # not gpuctl's: still uses the GPUs
    add_pod(sim, "gpuctl", gpus=1, node="a2", labels={"runwhere.ai/job-type": "training"})
    add_pod(sim, "unbound", gpus=4, node=None)  # pending, not on a node: uses nothing
    add_pod(sim, "done", gpus=3, node="d1")
    set_phase(sim, "done", "Succeeded")

    pools = await eventually(lambda: get_pools(cluster), lambda p: p["train"]["gpuUsed"] == 3)
    assert list(pools) == ["default", "train"]
    assert pools["train"] == {
        "name": "train", "description": "train resource pool", "gpuTotal": 16, "gpuUsed": 3,
        "gpuFree": 13, "gpuType": ["a100"], "nodeCount": 2, "status": "active"}
    assert pools["default"] == {
        "name": "default", "description": "default resource pool", "gpuTotal": 4, "gpuUsed": 0,
        "gpuFree": 4, "gpuType": ["t4"], "nodeCount": 2, "status": "active"}


async def test_gpu_use_follows_pods_starting_and_finishing(cluster, sim):
    def train_used(n):
        return lambda pools: pools["train"]["gpuUsed"] == n

    add_pod(sim, "p1", gpus=4, node="a1")
    await eventually(lambda: get_pools(cluster), train_used(4))
    add_pod(sim, "p2", gpus=8, node="a2")
    add_pod(sim, "p3", gpus=2, node="d1")
    pools = await eventually(lambda: get_pools(cluster), train_used(12))
    assert pools["train"]["gpuFree"] == 4 and pools["default"]["gpuUsed"] == 2
    set_phase(sim, "p1", "Failed")
    await eventually(lambda: get_pools(cluster), train_used(8))
    sim.store.delete("pods", "p2", "default", grace_period_seconds=0)
    await eventually(lambda: get_pools(cluster), train_used(0))


async def test_detail_of_named_and_default_pools(cluster, sim):
    add_pod(sim, "p1", gpus=2, node="a2")
    body = await eventually(lambda: get_json(cluster, f"{POOLS}/train"),
                            lambda b: b.get("gpu_used") == 2)
    assert body == {"name": "train", "description": "train resource pool", "nodes": ["a1", "a2"],
                    "node_count": 2, "gpu_total": 16, "gpu_used": 2, "gpu_free": 14,
                    "gpu_types": ["a100"], "status": "active"}
    default = await get_json(cluster, f"{POOLS}/default")
    assert default["nodes"] == ["d1", "d2"] and default["gpu_total"] == 4

    missing = await cluster.get(f"{POOLS}/nope")
    assert missing.status == 404
    assert without_request_id(await missing.json()) == {"error": "Pool 'nope' not found"}


# -- create -----------------------------------------------------------------------------

async def test_create_labels_the_nodes_and_stores_the_description(cluster, sim):
    resp = await cluster.post(POOLS, json={"name": "infer", "nodes": ["d1", "d2"],
                                           "description": "T4 serving", "gpuType": "t4"})
    assert resp.status == 201
    assert await resp.json() == {"name": "infer", "status": "created",
                                 "message": "Resource pool created", "nodes": ["d1", "d2"]}
    for name in ("d1", "d2"):
        meta = node_meta(sim, name)
        assert meta["labels"][POOL] == "infer" and meta["labels"][GPU_TYPE] == "t4"
        assert meta["annotations"][DESCRIPTION] == "T4 serving"
        assert meta["labels"]["kubernetes.io/hostname"] == name  # other labels untouched
    # read-your-writes: the very next read shows the pool
    detail = await get_json(cluster, f"{POOLS}/infer")
    assert detail["nodes"] == ["d1", "d2"] and detail["description"] == "T4 serving"
    assert (await get_pools(cluster))["default"]["status"] == "empty"


async def test_create_names_every_missing_node_and_labels_nothing(cluster, sim):
    resp = await cluster.post(POOLS, json={"name": "p", "nodes": ["d1", "ghost", "d2", "nix"]})
    assert resp.status == 404
    assert without_request_id(await resp.json()) == {"error": "Nodes not found: ghost, nix"}
    assert POOL not in node_meta(sim, "d1")["labels"]
    assert (await cluster.get(f"{POOLS}/p")).status == 404


async def test_create_refuses_nodes_of_another_pool_unless_overwrite(cluster, sim):
    body = {"name": "big", "nodes": ["d1", "a1", "a2"]}
    resp = await cluster.post(POOLS, json=body)
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert "a1 (pool train), a2 (pool train)" in error and "overwrite" in error
    assert POOL not in node_meta(sim, "d1")["labels"]

    resp = await cluster.post(POOLS, json={**body, "overwrite": True})
    assert resp.status == 201
    assert (await get_json(cluster, f"{POOLS}/big"))["nodes"] == ["a1", "a2", "d1"]
    assert (await cluster.get(f"{POOLS}/train")).status == 404  # it lost all its nodes


@pytest.mark.parametrize("body, status, field", [
    ({"nodes": ["d1"]}, 400, "name"),
    ({"name": "Bad Name!", "nodes": ["d1"]}, 400, "name"),
    ({"name": "p", "nodes": []}, 400, "nodes"),
    ({"name": "p"}, 400, "nodes"),
    ({"name": "p", "nodes": ["d1"], "gpuType": ""}, 400, "gpuType"),
    ({"name": "p", "nodes": ["d1"], "gpuType": ["a100", "h100"]}, 400, "gpuType"),
    ({"name": "p", "nodes": ["d1"], "quota": {}}, 400, "quota"),
    ({"name": "default", "nodes": ["d1"]}, 400, None),
    ({"name": "train", "nodes": ["d1"]}, 409, None),
])
async def test_create_rejects_bad_requests(cluster, sim, body, status, field):
    resp = await cluster.post(POOLS, json=body)
    assert resp.status == status
    error = await resp.json()
    if field:
        assert field in error["details"]
    assert POOL not in node_meta(sim, "d1")["labels"]


async def test_a_failed_patch_undoes_the_nodes_already_patched(cluster, sim):
    def refuse_d2(request):
        if request.operation == "UPDATE" and request.obj["metadata"]["name"] == "d2":
            raise st.forbidden(request.resource, "d2", "node d2 is locked")

    sim.store.add_admission("nodes", refuse_d2)
    resp = await cluster.post(POOLS, json={"name": "p", "nodes": ["d1", "d2"],
                                           "description": "x"})
    assert resp.status == 403
    meta = node_meta(sim, "d1")
    assert POOL not in meta["labels"] and DESCRIPTION not in (meta.get("annotations") or {})
    assert (await cluster.get(f"{POOLS}/p")).status == 404


# -- update -----------------------------------------------------------------------------

async def test_update_changes_membership_description_and_gpu_type(cluster, sim):
    resp = await cluster.put(f"{POOLS}/train", json={"nodes": ["a2", "d1"],
                                                      "description": "mixed", "gpuType": "h100"})
    assert resp.status == 200
    assert await resp.json() == {"name": "train", "status": "updated",
                                 "message": "Resource pool updated", "nodes": ["a2", "d1"]}
    detail = await get_json(cluster, f"{POOLS}/train")
    assert detail["nodes"] == ["a2", "d1"] and detail["description"] == "mixed"
    assert detail["gpu_types"] == ["h100"]
    left = node_meta(sim, "a1")
    assert POOL not in left["labels"] and DESCRIPTION not in (left.get("annotations") or {})
    assert left["labels"][GPU_TYPE] == "a100"  # hardware fact: kept on leaving

    resp = await cluster.put(f"{POOLS}/train", json={"description": "only the text"})
    assert resp.status == 200
    detail = await get_json(cluster, f"{POOLS}/train")
    assert detail["nodes"] == ["a2", "d1"] and detail["description"] == "only the text"


async def test_update_checks_everything_first(cluster, sim):
    await cluster.post(POOLS, json={"name": "other", "nodes": ["d2"]})
    resp = await cluster.put(f"{POOLS}/train", json={"nodes": ["a1", "d2", "ghost"]})
    assert resp.status == 404 and "ghost" in (await resp.json())["error"]
    resp = await cluster.put(f"{POOLS}/train", json={"nodes": ["a1", "d2"]})
    assert resp.status == 409 and "d2 (pool other)" in (await resp.json())["error"]
    assert (await get_json(cluster, f"{POOLS}/train"))["nodes"] == ["a1", "a2"]

    assert (await cluster.put(f"{POOLS}/nope", json={"description": "x"})).status == 404
    assert (await cluster.put(f"{POOLS}/default", json={"description": "x"})).status == 400
    resp = await cluster.put(f"{POOLS}/train", json={"nodes": []})
    assert resp.status == 400 and "nodes" in (await resp.json())["details"]


# -- delete -----------------------------------------------------------------------------

async def test_delete_refuses_while_jobs_use_the_pool(cluster, sim):
    resp = await cluster.post("/api/v1/jobs", json={"yamlContent": job_yaml(
        name="t1", namespace="team-a", pool="train")})
    assert resp.status == 201, await resp.text()

    resp = await cluster.delete(f"{POOLS}/train")
    assert resp.status == 409
    assert without_request_id(await resp.json()) == {
        "error": "Cannot delete pool 'train' because it has associated jobs: team-a/t1. Please "
                 "delete these jobs first."}
    assert node_meta(sim, "a1")["labels"][POOL] == "train"

    assert (await cluster.delete("/api/v1/jobs/t1")).status == 200
    resp = await cluster.delete(f"{POOLS}/train")
    assert resp.status == 200
    assert await resp.json() == {"name": "train", "status": "deleted",
                                 "message": "Resource pool deleted", "nodes": ["a1", "a2"]}
    assert POOL not in node_meta(sim, "a1")["labels"]
    assert (await cluster.get(f"{POOLS}/train")).status == 404
    assert (await get_json(cluster, f"{POOLS}/default"))["nodes"] == ["a1", "a2", "d1", "d2"]


async def test_delete_unknown_or_default_pool(cluster):
    assert (await cluster.delete(f"{POOLS}/nope")).status == 404
    resp = await cluster.delete(f"{POOLS}/default")
    assert resp.status == 400 and "default" in (await resp.json())["error"]


async def test_concurrent_creates_cannot_both_take_a_node(cluster, sim):
    first, second = await asyncio.gather(
        cluster.post(POOLS, json={"name": "p1", "nodes": ["d1"]}),
        cluster.post(POOLS, json={"name": "p2", "nodes": ["d2", "d1"]}))
    assert sorted([first.status, second.status]) == [201, 409]
    winner = "p1" if first.status == 201 else "p2"
    assert node_meta(sim, "d1")["labels"][POOL] == winner
    assert POOL not in node_meta(sim, "d2")["labels"] or winner == "p2"


async def test_the_original_one_item_gpu_type_list_is_accepted(cluster, sim):
    resp = await cluster.post(POOLS, json={"name": "listed", "nodes": ["d1"], "gpuType": ["l4"]})
    assert resp.status == 201, await resp.text()
    assert node_meta(sim, "d1")["labels"][GPU_TYPE] == "l4"
