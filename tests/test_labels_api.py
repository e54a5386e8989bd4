"""Label routes against the simulated cluster: add / update / delete with their 404 and 409,
prefixed keys in the path, Kubernetes' key and value rules, the batch, the overviews, and
concurrent writes to one node."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import add_nodes, node_manifest, without_request_id

NODES = "/api/v1/nodes"
POOL = "runwhere.ai/pool"



def sim_labels(sim, node: str) -> dict:
    return sim.store.get("nodes", node)["metadata"].get("labels") or {}


async def call(api, method: str, path: str, expect: int, **kwargs) -> dict:
    resp = await api.request(method, path, **kwargs)
    assert resp.status == expect, await resp.text()
    return await resp.json()


@pytest.fixture
async def cluster(api, sim):
    """n1 in pool train with a100 GPUs; n2 with no pool and an nvidia GPU label."""
    n2 = node_manifest("n2", gpu_type=None)
    n2["metadata"]["labels"]["nvidia.com/gpu-model"] = "H100-SXM"
    await add_nodes(api, sim, node_manifest("n1", pool="train"), n2)
    return api


async def test_add_label_then_read_it(cluster, sim):
    body = await call(cluster, "POST", f"{NODES}/n1/labels", 200,
                      json={"key": "zone", "value": "east"})
    assert body == {"nodeName": "n1", "label": {"zone": "east"}, "message": "Label added"}
    assert sim_labels(sim, "n1")["zone"] == "east"
    # read-your-writes: the next GET shows it
    got = await call(cluster, "GET", f"{NODES}/n1/labels/zone", 200)
    created = sim.store.get("nodes", "n1")["metadata"]["creationTimestamp"]
    assert got == {"nodeName": "n1", "label": {"key": "zone", "value": "east",
                                               "createdAt": created, "lastUpdatedAt": created}}
    # the same value again is fine
    await call(cluster, "POST", f"{NODES}/n1/labels", 200, json={"key": "zone", "value": "east"})


async def test_add_existing_label_needs_overwrite(cluster, sim):
    body = await call(cluster, "POST", f"{NODES}/n1/labels", 409,
                      json={"key": POOL, "value": "infer"})
    assert without_request_id(body) == {
        "error": "Label 'runwhere.ai/pool' already exists on node 'n1' with value 'train'; set "
                 "overwrite to replace it"}
    assert sim_labels(sim, "n1")[POOL] == "train"
    await call(cluster, "POST", f"{NODES}/n1/labels", 200,
               json={"key": POOL, "value": "infer", "overwrite": True})
    assert (await call(cluster, "GET", f"{NODES}/n1/labels", 200))["labels"][POOL] == "infer"


@pytest.mark.parametrize("key, value, field, rule", [
    ("bad key", "v", "key", "name part must consist of alphanumeric characters"),
    ("Bad_Prefix.io/k", "v", "key", "prefix part a lowercase RFC 1123 subdomain"),
    ("/k", "v", "key", "prefix part must be non-empty"),
    ("k" * 64, "v", "key", "name part must be no more than 63 characters"),
    ("k", "-v", "value", "a valid label must be an empty string or consist of"),
    ("k", "v" * 64, "value", "must be no more than 63 characters"),
])
async def test_invalid_keys_and_values_are_400_with_the_rule(cluster, sim, key, value, field,
                                                             rule):
    body = await call(cluster, "POST", f"{NODES}/n1/labels", 400,
                      json={"key": key, "value": value})
    assert any(rule in message for message in body["details"][field]), body
    assert rule in body["error"]
    batch = await call(cluster, "POST", f"{NODES}/labels/batch", 400,
                       json={"nodeNames": ["n1"], "key": key, "value": value})
    assert field in batch["details"]
    assert key not in sim_labels(sim, "n1")


async def test_add_label_errors(cluster):
    await call(cluster, "POST", f"{NODES}/ghost/labels", 404, json={"key": "a", "value": "b"})
    body = await call(cluster, "POST", f"{NODES}/n1/labels", 400, json={"value": "b"})
    assert body["details"] == {"key": ["Missing data for required field."]}


@pytest.mark.parametrize("encoded", ["runwhere.ai%2Fpool", "runwhere.ai/pool"])
async def test_prefixed_keys_in_the_path(cluster, sim, encoded):
    path = f"{NODES}/n1/labels/{encoded}"
    got = await call(cluster, "GET", path, 200)
    assert got["label"]["key"] == POOL and got["label"]["value"] == "train"

    body = await call(cluster, "PUT", path, 200, json={"value": "infer"})
    assert body == {"node": "n1", "label": "runwhere.ai/pool=infer", "message": "Label updated"}
    assert sim_labels(sim, "n1")[POOL] == "infer"
    assert (await call(cluster, "GET", path, 200))["label"]["value"] == "infer"

    body = await call(cluster, "DELETE", path, 200)
    assert body == {"node": "n1", "label": POOL, "message": "Label deleted"}
    assert POOL not in sim_labels(sim, "n1")
    await call(cluster, "GET", path, 404)
    assert sim_labels(sim, "n1")["runwhere.ai/gpu-type"] == "a100"  # the rest untouched


async def test_get_update_delete_404s(cluster):
    for method, kwargs in (("GET", {}), ("PUT", {"json": {"value": "x"}}), ("DELETE", {})):
        body = await call(cluster, method, f"{NODES}/n1/labels/nope", 404, **kwargs)
        assert without_request_id(body) == {"error": "Label 'nope' not found on node 'n1'"}
        body = await call(cluster, method, f"{NODES}/ghost/labels/zone", 404, **kwargs)
        assert without_request_id(body) == {"error": "Node 'ghost' not found"}
    await call(cluster, "GET", f"{NODES}/ghost/labels", 404)


async def test_update_validates_the_value(cluster, sim):
    path = f"{NODES}/n1/labels/runwhere.ai%2Fpool"
    for body in ({}, {"value": ""}):
        assert "value" in (await call(cluster, "PUT", path, 400, json=body))["details"]
    assert "value" in (await call(cluster, "PUT", path, 400, json={"value": "a b"}))["details"]
    assert sim_labels(sim, "n1")[POOL] == "train"


async def test_concurrent_writes_to_one_node_all_survive(cluster, sim):
    keys = [f"team-{i}" for i in range(8)]
    results = await asyncio.gather(*(
        cluster.post(f"{NODES}/n1/labels", json={"key": key, "value": "yes"}) for key in keys))
    assert [r.status for r in results] == [200] * len(keys)
    stored = sim_labels(sim, "n1")
    assert all(stored[key] == "yes" for key in keys)
    assert stored[POOL] == "train"
    shown = (await call(cluster, "GET", f"{NODES}/n1/labels", 200))["labels"]
    assert all(shown[key] == "yes" for key in keys)


async def test_racing_adds_of_one_new_key_give_one_winner_and_409s(cluster, sim):
    values = [f"v{i}" for i in range(6)]
    results = await asyncio.gather(*(
        cluster.post(f"{NODES}/n1/labels", json={"key": "owner", "value": v}) for v in values))
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [409] * (len(values) - 1)
    winner = values[[r.status for r in results].index(200)]
    assert sim_labels(sim, "n1")["owner"] == winner


# -- batch ------------------------------------------------------------------------------

async def test_batch_reports_each_node(cluster, sim):
    await call(cluster, "POST", f"{NODES}/n2/labels", 200, json={"key": "zone", "value": "west"})
    body = await call(cluster, "POST", f"{NODES}/labels/batch", 200,
                      json={"nodeNames": ["n1", "ghost", "n2", "n1"], "key": "zone",
                            "value": "east"})
    assert body == {"success": ["n1"], "failed": [
        {"nodeName": "ghost", "error": "Node 'ghost' not found"},
        {"nodeName": "n2", "error": "Label 'zone' already exists on node 'n2' with value "
                                    "'west'; set overwrite to replace it"}],
        "message": "Batch labelling finished"}
    assert sim_labels(sim, "n1")["zone"] == "east" and sim_labels(sim, "n2")["zone"] == "west"

    body = await call(cluster, "POST", f"{NODES}/labels/batch", 200,
                      json={"nodeNames": ["n1", "n2"], "key": "zone", "value": "east",
                            "overwrite": True})
    assert body["success"] == ["n1", "n2"] and body["failed"] == []
    assert sim_labels(sim, "n2")["zone"] == "east"


async def test_batch_in_the_query_string_as_the_original(cluster, sim):
    params = [("nodeNames", "n1"), ("nodeNames", "n2"), ("key", "rack"), ("value", "r7"),
              ("overwrite", "true")]
    body = await call(cluster, "POST", f"{NODES}/labels/batch", 200, params=params)
    assert body["success"] == ["n1", "n2"]
    assert sim_labels(sim, "n2")["rack"] == "r7"
    # the original's comma form names one node called "n1,n2"
    body = await call(cluster, "POST", f"{NODES}/labels/batch", 200,
                      params={"nodeNames": "n1,n2", "key": "rack", "value": "r7"})
    assert body["failed"] == [{"nodeName": "n1,n2", "error": "Node 'n1,n2' not found"}]


async def test_batch_needs_nodes_key_and_value(cluster):
    body = await call(cluster, "POST", f"{NODES}/labels/batch", 400, json={"key": "k"})
    assert set(body["details"]) == {"nodeNames", "value"}
    body = await call(cluster, "POST", f"{NODES}/labels/batch", 400,
                      json={"nodeNames": [], "key": "k", "value": "v"})
    assert "nodeNames" in body["details"]


# -- overviews --------------------------------------------------------------------------

async def test_overviews(cluster, sim):
    await call(cluster, "POST", f"{NODES}/n2/labels", 200, json={"key": POOL, "value": "infer"})
    assert await call(cluster, "GET", f"{NODES}/n1/labels", 200) == {
        "node": "n1", "labels": sim_labels(sim, "n1")}

    overview = await call(cluster, "GET", "/api/v1/labels", 200)
    assert overview[POOL] == ["infer", "train"]
    assert overview["kubernetes.io/hostname"] == ["n1", "n2"]

    query = await call(cluster, "GET", f"{NODES}/labels", 200,
                       params={"key": "nvidia.com/gpu-model"})
    assert query == {"total": 1, "items": [{"nodeName": "n2", "labelKey": "nvidia.com/gpu-model",
                                            "labelValue": "H100-SXM"}]}
    page = await call(cluster, "GET", f"{NODES}/labels", 200,
                      params={"key": POOL, "page": 2, "pageSize": 1})
    assert page["total"] == 2 and [i["nodeName"] for i in page["items"]] == ["n2"]
    await call(cluster, "GET", f"{NODES}/labels", 400)

    everything = await call(cluster, "GET", f"{NODES}/labels/all", 200)
    assert everything == {"total": 2, "items": [
        {"nodeName": "n1", "gpuLabels": [{"key": "runwhere.ai/gpu-type", "value": "a100"}],
         "boundPools": ["train"]},
        {"nodeName": "n2", "gpuLabels": [{"key": "nvidia.com/gpu-model", "value": "H100-SXM"}],
         "boundPools": ["infer"]}]}
