"""Start-up at scale: what the caches and the job list make of a cluster that is already full.

The pod cache decodes its list pages itself (``k8s.podpages``: other workloads' pods never
built whole) and the job list sorts the rows of the first fill once (``jobs.listing``); both
must give exactly what the generic, one-object-at-a-time path gives.
"""

from __future__ import annotations

import time

import msgspec
import orjson

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.k8s.cache import keep_pod, shape_pod
from gpuctl_async.k8s.podpages import split_page, take_pod
from gpuctl_async.sim.gpuctl_objects import training_job
from tests.conftest import sim_settings
from tests.helpers import eventually, job_pod, node_manifest, settle


def other_pod(name: str, namespace: str, *, node: str | None, phase: str = "Running",
              init: bool = False) -> dict:
    spec: dict = {"containers": [
        {"name": "web", "image": "nginx:1.27",
         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
        {"name": "sidecar", "image": "envoy:1"}]}
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox:1.36",
                                   "resources": {"requests": {"cpu": "2"}}}]
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
            "spec": spec, "status": {"phase": phase}}


def generic(obj: dict) -> dict | None:
    """What the pod cache made of a listed pod before it decoded its own pages."""
    if not keep_pod(obj):
        return None
    obj.setdefault("kind", "Pod")
    obj.setdefault("apiVersion", "v1")
    return shape_pod(obj)


def decoded(page: dict) -> list[dict | None]:
    meta, items = split_page(orjson.dumps(page))
    assert meta == {key: page["metadata"][key] for key in ("resourceVersion", "continue")
                    if page["metadata"].get(key)}
    return [take_pod(item, keep_pod, shape_pod) for item in items]


def test_a_decoded_page_is_what_the_generic_path_makes_of_it():
    gpuctl = job_pod(training_job("t1", "team-a", "training-pool", 1) | {
        "metadata": {"name": "t1", "namespace": "team-a", "uid": "u-1",
                     "labels": {"runwhere.ai/job-type": "training",
                                "runwhere.ai/job-name": "t1"}}}, node="gpu-1")
    gpuctl["metadata"]["resourceVersion"] = "7"
    pods = [other_pod("web-1", "shop", node="gpu-1", init=True),
            other_pod("web-2", "shop", node=None),                      # not bound: not kept
            other_pod("web-3", "shop", node="gpu-2", phase="Succeeded"),  # finished: not kept
            other_pod("web-4", "shop", node="gpu-2", phase="Pending"),
            gpuctl]
    for index, pod in enumerate(pods):
        pod["metadata"].setdefault("resourceVersion", str(index + 1))
        pod.pop("kind")  # as list items come
        pod.pop("apiVersion")
    page = {"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "abc"}, "items": pods}
    want = [generic(orjson.loads(orjson.dumps(p))) for p in pods]
    assert [w is not None for w in want] == [True, False, False, True, True]
    assert decoded(page) == want


def test_odd_items_take_the_generic_path():
    # A request that is not a string, labels of null, and a label key written with JSON
    # escapes: each is decoded whole, and still gets exactly what the generic path makes.
    odd = other_pod("web-5", "shop", node="gpu-1")
    odd["spec"]["containers"][0]["resources"]["requests"]["cpu"] = 1
    unlabelled = other_pod("web-6", "shop", node="gpu-1")
    unlabelled["metadata"]["labels"] = None
    page = {"metadata": {"resourceVersion": "3"}, "items": [odd, unlabelled]}
    assert decoded(page) == [generic(orjson.loads(orjson.dumps(p))) for p in page["items"]]
    escaped = orjson.dumps({"metadata": {}, "items": [{
        "metadata": {"name": "t1-x", "namespace": "a", "labels": {
            "runwhere.ai/job-type": "training", "runwhere.ai/job-name": "t1"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Pending"}}]}).replace(b'"runwhere.ai/job-type"',
                                                  b'"runwhere.ai\\/job-type"')
    _, items = split_page(escaped)
    kept = take_pod(items[0], keep_pod, shape_pod)
    assert kept is not None and kept["metadata"]["labels"]["runwhere.ai/job-type"] == "training"
    # A body of another shape is taken whole.
    meta, items = split_page(b'{"metadata": {"resourceVersion": "4"}, "items": null}')
    assert (meta, items) == ({"resourceVersion": "4"}, [])
    assert isinstance(split_page(orjson.dumps({"items": [odd]}))[1][0], msgspec.Raw)


async def test_a_full_cluster_at_start_is_cached_and_listed_as_the_watch_would(
        sim, aiohttp_client, tmp_path):
    sim.store.create("nodes", node_manifest("gpu-1"))
    jobs = {}
    for namespace in ("team-b", "team-a"):
        sim.store.create("namespaces", {"metadata": {"name": namespace}})
        for name in ("t2", "t1", "idle"):
            jobs[namespace, name] = sim.store.create(
                "jobs", training_job(name, namespace, "default", 0), namespace=namespace)
    sim.store.create("namespaces", {"metadata": {"name": "shop"}})
    for index in range(5):
        sim.store.create("pods", other_pod(f"web-{index}", "shop",
                                           node="gpu-1" if index % 2 else None),
                         namespace="shop")
    # gpuctl pods created in two seconds (creation times have whole seconds), in an order
    # neither by time nor by name: the first fill must sort them. Two rounds, the second
    # once the clock has passed the first's second, so the page holds them all.
    created: set[str] = set()
    for serial in (1, 2):
        first_second = int(time.time())
        for namespace in ("team-b", "team-a"):
            for name in ("t2", "t1"):
                pod = sim.store.create("pods", job_pod(jobs[namespace, name],
                                                       f"{999 - serial:05d}", node="gpu-1"),
                                       namespace=namespace)
                created.add(pod["metadata"]["creationTimestamp"])
        if serial == 1:
            await eventually(lambda: int(time.time()) > first_second, bool, timeout=3)
    assert len(created) >= 2

    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path)))
    cache = client.app[CACHE]
    assert await cache.wait_synced(timeout=10)

    def differing() -> list[str]:
        # The sim's kubelet may move a pod on after the list; the watch then brings it.
        return [pod["metadata"]["name"] for pod in sim.store.list("pods")
                if cache.pods.peek(pod["metadata"]["namespace"], pod["metadata"]["name"])
                != generic(pod)]

    await eventually(differing, lambda names: not names)

    async def listed() -> list[tuple[str, str]]:
        resp = await client.get("/api/v1/jobs", params={"pageSize": 100})
        assert resp.status == 200
        body = await resp.json()
        assert body["total"] == len(body["items"])
        return [(item["namespace"], item["jobId"]) for item in body["items"]]

    def expected() -> list[tuple[str, str]]:
        pods = [p for p in sim.store.list("pods")
                if "runwhere.ai/job-type" in p["metadata"].get("labels", {})]
        rows = [(p["metadata"]["creationTimestamp"], p["metadata"]["namespace"],
                 p["metadata"]["name"]) for p in pods]
        with_pods = {(p["metadata"]["namespace"], p["metadata"]["labels"]["runwhere.ai/job-name"])
                     for p in pods}
        # A job without pods shows as one row, under the job's name.
        rows += [(j["metadata"]["creationTimestamp"], ns, name)
                 for (ns, name), j in jobs.items() if (ns, name) not in with_pods]
        rows.sort(key=lambda r: (r[1], r[2]))
        rows.sort(key=lambda r: r[0], reverse=True)  # newest first, then namespace and name
        return [(ns, name) for _, ns, name in rows]

    assert await listed() == expected()
    # Changes after the first fill go into the sorted rows one by one.
    first = sim.store.list("pods", namespace="team-a")[0]["metadata"]["name"]
    sim.store.delete("pods", first, namespace="team-a", grace_period_seconds=0)
    sim.store.create("pods", job_pod(jobs["team-a", "idle"], "late1", node="gpu-1"),
                     namespace="team-a")
    await settle(client, sim)
    assert await listed() == expected()
    resp = await client.get("/api/v1/jobs", params={"namespace": "team-b", "pageSize": 100})
    assert [i["jobId"] for i in (await resp.json())["items"]] == [
        name for ns, name in expected() if ns == "team-b"]
