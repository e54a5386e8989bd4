"""Server-side Tables (what kubectl prints), the scale subresource and the pre-timeout bookmark,
through raw HTTP."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from gpuctl_async.sim import tables, watch
from gpuctl_async.sim.resources import resource
from gpuctl_async.sim.store import timestamp
from gpuctl_async.sim.testing import SimCluster

from .helpers import pod

KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                  "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
TABLE = {"Accept": KUBECTL_ACCEPT}
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
async def http(sim):
    async with aiohttp.ClientSession(sim.url) as session:
        yield session


async def get(http: aiohttp.ClientSession, path: str, headers: dict | None = None,
              **params: str) -> tuple[int, str, dict]:
    async with http.get(path, headers=headers, params=params) as response:
        return response.status, response.headers["Content-Type"], await response.json(
            content_type=None)


def names(table: dict) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


async def test_list_and_get_as_table(sim, http):
    for i in range(3):
        sim.store.create("pods", pod(f"p{i}", {"app": "x"}), namespace="default")
    status, content_type, table = await get(http, PODS, TABLE)
    assert status == 200
    assert content_type == "application/json;as=Table;v=v1;g=meta.k8s.io"
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert names(table) == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                            "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0] * 5 + [1] * 4
    assert table["metadata"]["resourceVersion"] == str(sim.store.resource_version)
    row = table["rows"][0]
    assert row["cells"][:4] == ["p0", "0/1", "Pending", "0"]
    assert row["cells"][4] in ("0s", "1s")
    assert row["cells"][5:] == ["<none>"] * 4
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["labels"] == {"app": "x"}
    assert "spec" not in row["object"]

    _, _, full = await get(http, PODS, TABLE, includeObject="Object")
    assert full["rows"][0]["object"]["kind"] == "Pod" and "spec" in full["rows"][0]["object"]
    _, _, bare = await get(http, PODS, TABLE, includeObject="None")
    assert all("object" not in row for row in bare["rows"])
    status, _, error = await get(http, PODS, TABLE, includeObject="Everything")
    assert status == 400 and "includeObject" in error["message"]

    # v1beta1 only when asked for first; plain JSON stays plain
    _, content_type, beta = await get(http, PODS, {
        "Accept": "application/json;as=Table;v=v1beta1;g=meta.k8s.io"})
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    _, content_type, plain = await get(http, PODS, {"Accept": "application/json"})
    assert content_type == "application/json" and plain["kind"] == "PodList"

    # pagination keeps its continue token in the Table's metadata
    _, _, page = await get(http, PODS, TABLE, limit="2")
    assert len(page["rows"]) == 2 and page["metadata"]["remainingItemCount"] == 1
    _, _, rest = await get(http, PODS, TABLE, limit="2", **{
        "continue": page["metadata"]["continue"]})
    assert [r["cells"][0] for r in rest["rows"]] == ["p2"]

    _, _, one = await get(http, f"{PODS}/p1", TABLE)
    assert [r["cells"][0] for r in one["rows"]] == ["p1"]
    assert one["metadata"]["resourceVersion"] == \
        sim.store.get("pods", "p1", namespace="default")["metadata"]["resourceVersion"]


async def test_other_resources_columns(sim, http):
    sim.store.create("configmaps", {"metadata": {"name": "cm"}}, namespace="default")
    _, _, cms = await get(http, "/api/v1/namespaces/default/configmaps", TABLE)
    assert names(cms) == ["Name", "Age"] and cms["rows"][0]["cells"][0] == "cm"
    _, _, nss = await get(http, "/api/v1/namespaces", TABLE)
    assert names(nss) == ["Name", "Status", "Age"]
    assert [r["cells"][:2] for r in nss["rows"]] == [["default", "Active"],
                                                     ["kube-system", "Active"]]
    sim.store.create("nodes", {"metadata": {"name": "n1", "labels": {
        "node-role.kubernetes.io/control-plane": ""}}, "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": "v1.37.0"},
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}})
    _, _, nodes = await get(http, "/api/v1/nodes", TABLE)
    assert names(nodes)[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    cells = nodes["rows"][0]["cells"]
    assert cells[:3] == ["n1", "Ready,SchedulingDisabled", "control-plane"]
    assert cells[4:6] == ["v1.37.0", "10.0.0.9"]


def _row(obj: dict, rt: str = "pods") -> list:
    options = tables.TableOptions("v1", "None")
    return tables.table(resource(rt), [obj], options, {})["rows"][0]["cells"]


def _pod(phase: str, *states: dict, restarts: int = 0, **extra: object) -> dict:
    body = pod("p")
    body["metadata"].update(creationTimestamp=timestamp(time.time() - 90), **extra)
    body["status"] = {"phase": phase, "containerStatuses": [
        {"name": "main", "ready": "running" in s, "restartCount": restarts, "state": s}
        for s in states]}
    return body


_DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}


@pytest.mark.parametrize(("phase", "states", "extra", "ready", "status"), [
    ("Pending", [], {}, "0/1", "Pending"),
    ("Pending", [{"waiting": {"reason": "ContainerCreating"}}], {}, "0/1",
     "ContainerCreating"),
    ("Pending", [{"waiting": {"reason": "ImagePullBackOff"}}], {}, "0/1", "ImagePullBackOff"),
    ("Running", [{"running": {}}], {}, "1/1", "Running"),
    ("Running", [{"waiting": {"reason": "CrashLoopBackOff"}}], {}, "0/1", "CrashLoopBackOff"),
    ("Succeeded", [_DONE], {}, "0/1", "Completed"),
    ("Failed", [{"terminated": {"exitCode": 2, "reason": "Error"}}], {}, "0/1", "Error"),
    ("Failed", [{"terminated": {"exitCode": 137, "reason": "OOMKilled"}}], {}, "0/1",
     "OOMKilled"),
    ("Failed", [{"terminated": {"exitCode": 3}}], {}, "0/1", "ExitCode:3"),
    ("Running", [{"running": {}}], {"deletionTimestamp": "x"}, "1/1", "Terminating"),
    ("Succeeded", [_DONE], {"deletionTimestamp": "x"}, "0/1", "Completed"),
])
def test_pod_status_column(phase, states, extra, ready, status):
    cells = _row(_pod(phase, *states, **extra))
    assert cells[1:3] == [ready, status]
    assert cells[4] in ("90s", "91s")  # creationTimestamp has whole seconds


def test_pod_restarts_and_age_formats():
    crashing = _pod("Running", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4)
    crashing["status"]["containerStatuses"][0]["lastState"] = {"terminated": {
        "exitCode": 1, "finishedAt": timestamp(time.time() - 30)}}
    assert _row(crashing)[3] in ("4 (30s ago)", "4 (31s ago)")
    assert [tables.human_duration(s) for s in (5, 150, 600, 3 * 3600 + 60, 9 * 3600,
                                                3 * 86400)] == [
        "5s", "2m30s", "10m", "3h1m", "9h", "3d"]


def test_job_and_deployment_columns():
    job = {"metadata": {"name": "j", "creationTimestamp": timestamp()},
           "spec": {"completions": 2, "template": {"spec": {"containers": [
               {"name": "main", "image": "busybox"}]}}},
           "status": {"succeeded": 2, "startTime": "2026-01-01T00:00:00Z",
                      "completionTime": "2026-01-01T00:01:05Z",
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert _row(job, "jobs")[:4] == ["j", "Complete", "2/2", "65s"]
    deployment = {"metadata": {"name": "d", "creationTimestamp": timestamp()},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}},
                           "template": {"spec": {"containers": [
                               {"name": "web", "image": "nginx"}]}}},
                  "status": {"readyReplicas": 2, "updatedReplicas": 3,
                             "availableReplicas": 2}}
    cells = _row(deployment, "deployments")
    assert cells[:4] == ["d", "2/3", 3, 2] and cells[5:] == ["web", "nginx", "app=d"]


async def test_watch_as_table(sim, http):
    sim.store.create("pods", pod("before"), namespace="default")
    _, _, listed = await get(http, PODS, TABLE)
    rv = listed["metadata"]["resourceVersion"]
    async with http.get(PODS, headers=TABLE, params={"watch": "1", "resourceVersion": rv,
                                                     "timeoutSeconds": "5"}) as response:
        assert response.status == 200
        sim.store.create("pods", pod("a", {"x": "1"}), namespace="default")
        sim.store.patch("pods", "a", {"metadata": {"labels": {"x": "2"}}},
                        namespace="default")
        sim.store.delete("pods", "a", namespace="default")
        events = []
        async with asyncio.timeout(5):
            while len(events) < 3:
                events.append(orjson.loads(await response.content.readline()))
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    tables_ = [e["object"] for e in events]
    assert all(t["kind"] == "Table" and len(t["rows"]) == 1 for t in tables_)
    # as the API server's watch encoder: column definitions in the first event only
    assert names(tables_[0])[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert tables_[1]["columnDefinitions"] == tables_[2]["columnDefinitions"] == []
    assert [t["rows"][0]["cells"][0] for t in tables_] == ["a", "a", "a"]
    assert tables_[1]["rows"][0]["object"]["metadata"]["labels"] == {"x": "2"}
    assert tables_[1]["metadata"]["resourceVersion"] == \
        tables_[1]["rows"][0]["object"]["metadata"]["resourceVersion"]


async def test_watch_table_bookmark_and_selector_transitions(sim, http):
    sim.store.create("pods", pod("a", {"x": "1"}), namespace="default")
    params = {"watch": "1", "labelSelector": "x=1", "allowWatchBookmarks": "true",
              "timeoutSeconds": "5"}
    async with http.get(PODS, headers=TABLE, params=params) as response:
        first = orjson.loads(await response.content.readline())
        sim.store.patch("pods", "a", {"metadata": {"labels": {"x": "2"}}},
                        namespace="default")
        events = []
        async with asyncio.timeout(5):
            while not any(e["type"] == "BOOKMARK" for e in events) or \
                    not any(e["type"] == "DELETED" for e in events):
                events.append(orjson.loads(await response.content.readline()))
    assert first["type"] == "ADDED" and first["object"]["columnDefinitions"]
    deleted = next(e for e in events if e["type"] == "DELETED")["object"]
    assert deleted["rows"][0]["object"]["metadata"]["labels"] == {"x": "1"}
    bookmark = next(e for e in events if e["type"] == "BOOKMARK")["object"]
    assert bookmark["kind"] == "Table" and bookmark["rows"] == []
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(
        deleted["metadata"]["resourceVersion"])


async def test_pre_timeout_bookmark_follows_periodic_ones():
    # interval 0.5 s, timeout 1 s, pre-timeout bookmark 0.3 s before the end: one periodic
    # bookmark at 0.5 s, then the pre-timeout one at 0.7 s (it used to be skipped).
    timing = watch.WatchTiming(bookmark_interval=0.5, first_bookmark_delay=None,
                               pre_timeout_bookmark=0.3, compaction_interval=None)
    async with SimCluster(watch_timing=timing) as sim, aiohttp.ClientSession(
            sim.url) as http:
        params = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
        async with http.get(PODS, params=params) as response:
            lines = [orjson.loads(line) async for line in response.content]
    assert [e["type"] for e in lines] == ["BOOKMARK", "BOOKMARK"]


async def test_scale_subresource(sim, http):
    sim.store.create("deployments", {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}},
        namespace="default")
    path = "/apis/apps/v1/namespaces/default/deployments/web/scale"
    status, _, scale = await get(http, path)
    assert status == 200
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 0, "selector": "app=web"}

    async with http.patch(path, data=b'{"spec":{"replicas":3}}', headers={
            "Content-Type": "application/merge-patch+json"}) as response:
        assert response.status == 200
        assert (await response.json())["spec"] == {"replicas": 3}
    deployment = sim.store.get("deployments", "web", namespace="default")
    assert deployment["spec"]["replicas"] == 3 and deployment["metadata"]["generation"] == 2

    stale = {**scale, "spec": {"replicas": 5}}
    async with http.put(path, json=stale) as response:
        assert response.status == 409
    fresh = {**stale, "metadata": {**scale["metadata"], "resourceVersion":
                                   deployment["metadata"]["resourceVersion"]}}
    async with http.put(path, json=fresh) as response:
        assert response.status == 200
    async with http.patch(path, data=b'{"spec":{"replicas":-1}}', headers={
            "Content-Type": "application/strategic-merge-patch+json"}) as response:
        body = await response.json()
    assert response.status == 422
    assert body["message"] == ('Scale.autoscaling "web" is invalid: spec.replicas: Invalid '
                               'value: -1: must be greater than or equal to 0')
    assert sim.store.get("deployments", "web", namespace="default")["spec"]["replicas"] == 5

    _, _, discovery = await get(http, "/apis/apps/v1")
    entries = {r["name"]: r for r in discovery["resources"]}
    for plural in ("deployments", "replicasets", "statefulsets"):
        entry = entries[f"{plural}/scale"]
        assert (entry["group"], entry["version"], entry["kind"]) == ("autoscaling", "v1",
                                                                     "Scale")
        assert entry["verbs"] == ["get", "patch", "update"]
    status, _, _ = await get(http, "/apis/apps/v1/namespaces/default/deployments/nope/scale")
    assert status == 404
