"""Quota routes against the simulated cluster: create (default section, replace, all or
nothing), list, detail with utilization, delete."""

from __future__ import annotations

import asyncio

import pytest

from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim import status as st

QUOTAS = "/api/v1/quotas"
MARKER = "runwhere.ai/namespace"

TEAM_QUOTA = """\
kind: quota
quota: {name: team-quota}
namespace:
  team-a: {cpu: 16, memory: 64Gi, gpu: 4}
default: {cpu: 4, gpu: 0}
"""


def quota_doc(name: str, namespaces: dict[str, str]) -> str:
    """A quota document; ``namespaces`` maps each namespace to its limits in YAML flow form."""
    lines = ["kind: quota", f"quota: {{name: {name}}}", "namespace:"]
    lines += [f"  {ns}: {limits}" for ns, limits in namespaces.items()]
    return "\n".join(lines) + "\n"


async def post_quota(api, text: str, **extra):
    return await api.post(QUOTAS, json={"yamlContent": text, **extra})


def gpuctl_quotas_in(sim, namespace: str) -> dict[str, dict]:
    """name → spec.hard of the gpuctl ResourceQuotas Kubernetes holds in ``namespace``."""
    return {q["metadata"]["name"]: q["spec"]["hard"]
            for q in sim.store.list("resourcequotas", namespace=namespace)
            if "runwhere.ai/quota" in q["metadata"].get("labels", {})}


def namespace_labels(sim, name: str) -> dict:
    return sim.store.get("namespaces", name)["metadata"].get("labels", {})


def add_namespace(sim, name: str, labels: dict | None = None) -> None:
    sim.store.create("namespaces", {"metadata": {"name": name, "labels": labels or {}}})


async def test_create_writes_enforced_keys_for_each_namespace_and_default(api, sim):
    resp = await post_quota(api, TEAM_QUOTA)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["message"] == "Quota created successfully"
    assert body["name"] == "team-quota"
    assert body["created"] == [
        {"name": "team-quota", "namespace": "default", "resourceQuota": "team-quota-default",
         "cpu": "4", "memory": "unlimited", "gpu": "0", "status": "created"},
        {"name": "team-quota", "namespace": "team-a", "resourceQuota": "team-quota-team-a",
         "cpu": "16", "memory": "64Gi", "gpu": "4", "status": "created"},
    ]
    assert gpuctl_quotas_in(sim, "team-a") == {"team-quota-team-a": {
        "requests.cpu": "16", "limits.cpu": "16", "requests.memory": "64Gi",
        "limits.memory": "64Gi", "requests.nvidia.com/gpu": "4"}}
    # A missing field of the default section is left out (the original wrote "None").
    assert gpuctl_quotas_in(sim, "default") == {"team-quota-default": {
        "requests.cpu": "4", "limits.cpu": "4", "requests.nvidia.com/gpu": "0"}}
    quota = sim.store.get("resourcequotas", "team-quota-team-a", namespace="team-a")
    assert quota["metadata"]["labels"] == {"runwhere.ai/quota": "team-quota", MARKER: "team-a"}
    assert namespace_labels(sim, "team-a")[MARKER] == "true"
    assert MARKER not in namespace_labels(sim, "default")

    # Read-your-writes: the list shows both at once.
    listed = await (await api.get(QUOTAS)).json()
    assert listed["total"] == 2
    assert [(q["namespace"], q["name"]) for q in listed["items"]] == [
        ("default", "team-quota"), ("team-a", "team-quota")]


async def test_existing_namespace_gets_the_marker(api, sim):
    add_namespace(sim, "team-x", {"owner": "me"})
    resp = await post_quota(api, quota_doc("q", {"team-x": "{gpu: 1}"}))
    assert resp.status == 201, await resp.text()
    assert namespace_labels(sim, "team-x").items() >= {"owner": "me", MARKER: "true"}.items()
    namespaces = await (await api.get("/api/v1/namespaces")).json()
    assert "team-x" in [ns["name"] for ns in namespaces["items"]]
    # Listed as gpuctl's, but gpuctl did not create it: the namespace API will not delete it.
    resp = await api.delete("/api/v1/namespaces/team-x")
    assert resp.status == 403
    assert sim.store.get("namespaces", "team-x")["metadata"].get("deletionTimestamp") is None


@pytest.mark.parametrize("text, field", [
    ("kind: training\njob: {name: x}\nenvironment: {image: busybox}\n", "kind"),
    ("kind: quota\nquota: {name: q}\nnamespace: {team-a: {cpu: lots}}\n", "namespace.team-a.cpu"),
    ("kind: quota\nquota: {name: q}\nnamespace: {Team_A: {cpu: 1}}\n", "namespace.Team_A"),
    ("kind: quota\nquota: {name: q}\nnamespace: {default: {cpu: 1}}\n", "namespace.default"),
    ("kind: quota\nnamespace: {team-a: {cpu: 1}}\n", "quota"),
])
async def test_bad_documents_are_400_with_details(api, sim, text, field):
    resp = await post_quota(api, text)
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert field in body["details"], body
    assert sim.store.list("resourcequotas") == []


async def test_second_quota_for_a_namespace_is_409_and_writes_nothing(api, sim):
    assert (await post_quota(api, quota_doc("first", {"team-a": "{cpu: 2}"}))).status == 201
    resp = await post_quota(api, quota_doc("second", {"team-b": "{cpu: 1}",
                                                      "team-a": "{cpu: 4}"}))
    assert resp.status == 409
    body = await resp.json()
    assert "team-a already has a quota 'first'" in body["error"]
    assert "replace" in body["error"]
    assert list(body["details"]) == ["namespace.team-a"]
    # Checked before any write: team-b was not even created.
    with pytest.raises(st.StatusError):
        sim.store.get("namespaces", "team-b")
    assert gpuctl_quotas_in(sim, "team-a") == {"first-team-a": {
        "requests.cpu": "2", "limits.cpu": "2"}}


async def test_replace_swaps_the_quota(api, sim):
    assert (await post_quota(api, quota_doc("first", {"team-a": "{cpu: 2, gpu: 1}"}))).status == 201
    # Same quota name: new limits, keys no longer given are dropped.
    resp = await post_quota(api, quota_doc("first", {"team-a": "{memory: 1Gi}"}), replace=True)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["created"][0]["status"] == "updated"
    assert gpuctl_quotas_in(sim, "team-a") == {"first-team-a": {
        "requests.memory": "1Gi", "limits.memory": "1Gi"}}
    # Another quota name: the old object goes, the new one takes its place.
    resp = await post_quota(api, quota_doc("second", {"team-a": "{gpu: 3}"}), replace=True)
    assert resp.status == 201
    assert gpuctl_quotas_in(sim, "team-a") == {"second-team-a": {"requests.nvidia.com/gpu": "3"}}
    detail = await (await api.get(f"{QUOTAS}/team-a")).json()
    assert detail["name"] == "second"
    assert detail["hard"]["nvidia.com/gpu"] == "3"


async def test_failure_in_one_namespace_undoes_the_whole_request(api, sim):
    assert (await post_quota(api, quota_doc("old", {"team-a": "{cpu: 2}"}))).status == 201
    add_namespace(sim, "team-c")

    def refuse_team_d(request):
        if request.obj["metadata"].get("namespace") == "team-d":
            raise st.forbidden(request.resource, request.obj["metadata"]["name"],
                               "injected refusal")
    sim.store.add_admission("resourcequotas", refuse_team_d)

    text = quota_doc("new", {"team-a": "{cpu: 8}", "team-b": "{cpu: 1}", "team-c": "{cpu: 1}",
                             "team-d": "{cpu: 1}"})
    resp = await post_quota(api, text, replace=True)
    assert resp.status == 403, await resp.text()
    assert "injected refusal" in (await resp.json())["error"]

    assert gpuctl_quotas_in(sim, "team-a") == {"old-team-a": {
        "requests.cpu": "2", "limits.cpu": "2"}}  # the replaced quota is back
    assert gpuctl_quotas_in(sim, "team-c") == {}
    assert MARKER not in namespace_labels(sim, "team-c")  # marker taken off again
    for created in ("team-b", "team-d"):  # namespaces this request created are going
        try:
            namespace = sim.store.get("namespaces", created)
        except st.StatusError:
            continue
        assert namespace["metadata"].get("deletionTimestamp"), created
    listed = await (await api.get(QUOTAS)).json()
    assert [(q["namespace"], q["name"]) for q in listed["items"]] == [("team-a", "old")]


async def test_dry_run_checks_and_writes_nothing(api, sim):
    resp = await post_quota(api, TEAM_QUOTA, dryRun=True)
    assert resp.status == 200
    body = await resp.json()
    assert body["dryRun"] is True
    assert [e["namespace"] for e in body["created"]] == ["default", "team-a"]
    assert sim.store.list("resourcequotas") == []
    with pytest.raises(st.StatusError):
        sim.store.get("namespaces", "team-a")


async def test_detail_reports_utilization(api, sim):
    assert (await post_quota(api, quota_doc("q", {"team-a": "{cpu: 8, memory: 32Gi, gpu: 4}"}))
            ).status == 201
    # What Kubernetes' quota controller writes as pods come and go.
    sim.store.patch("resourcequotas", "q-team-a", {"status": {
        "hard": sim.store.get("resourcequotas", "q-team-a", namespace="team-a")["spec"]["hard"],
        "used": {"requests.cpu": "2", "limits.cpu": "2", "requests.memory": "8Gi",
                 "limits.memory": "8Gi", "requests.nvidia.com/gpu": "3"}}},
        namespace="team-a", patch_type="application/merge-patch+json", subresource="status")

    quotas = api.app[CACHE].quotas
    assert await quotas.wait_for(
        lambda: quotas.get("team-a", "q-team-a").get("status", {}).get("used"), timeout=5)
    body = await (await api.get(f"{QUOTAS}/team-a")).json()
    assert body["name"] == "q"
    assert body["namespace"] == "team-a"
    assert body["hard"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4",
                            "pods": "unlimited"}
    assert body["used"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "3"}
    assert body["utilization"] == {
        "cpu": {"hard": "8", "used": "2", "fraction": 0.25, "percent": 25.0},
        "memory": {"hard": "32Gi", "used": "8Gi", "fraction": 0.25, "percent": 25.0},
        "nvidia.com/gpu": {"hard": "4", "used": "3", "fraction": 0.75, "percent": 75.0},
    }


async def test_only_gpuctl_quotas_are_listed_shown_and_deleted(api, sim):
    add_namespace(sim, "team-f")
    sim.store.create("resourcequotas", {"metadata": {"name": "admin-limits"},
                                        "spec": {"hard": {"pods": "10"}}}, namespace="team-f")
    assert (await api.get(f"{QUOTAS}/team-f")).status == 404
    assert (await (await api.get(QUOTAS)).json())["total"] == 0
    resp = await api.delete(f"{QUOTAS}/team-f")
    assert resp.status == 404
    assert "Quota not found" in (await resp.json())["error"]
    sim.store.get("resourcequotas", "admin-limits", namespace="team-f")  # still there

    assert (await post_quota(api, quota_doc("q", {"team-f": "{cpu: 1}"}))).status == 201
    resp = await api.delete(f"{QUOTAS}/team-f")
    assert resp.status == 200
    assert await resp.json() == {"jobId": "team-f", "namespace": "team-f",
                                 "deleted": ["q-team-f"], "status": "deleted",
                                 "message": "Quota deleted successfully"}
    assert gpuctl_quotas_in(sim, "team-f") == {}
    sim.store.get("resourcequotas", "admin-limits", namespace="team-f")
    # Read-your-writes, and a second delete has nothing left to delete.
    assert (await api.get(f"{QUOTAS}/team-f")).status == 404
    assert (await api.delete(f"{QUOTAS}/team-f")).status == 404


async def test_list_filters_by_namespace_and_pages(api, sim):
    text = quota_doc("q", {f"team-{i}": "{cpu: 1}" for i in range(5)})
    assert (await post_quota(api, text)).status == 201
    page = await (await api.get(QUOTAS, params={"page": 2, "pageSize": 2})).json()
    assert page["total"] == 5
    assert [q["namespace"] for q in page["items"]] == ["team-2", "team-3"]
    past_end = await (await api.get(QUOTAS, params={"page": 9})).json()
    assert past_end == {"total": 5, "items": []}
    one = await (await api.get(QUOTAS, params={"namespace": "team-4"})).json()
    assert [q["namespace"] for q in one["items"]] == ["team-4"]
    resp = await api.get(QUOTAS, params={"pageSize": 0})
    assert resp.status == 400
    assert "pageSize" in (await resp.json())["details"]


async def test_namespace_being_deleted_is_409(api, sim):
    add_namespace(sim, "team-t", {MARKER: "true"})
    # A finalizer keeps the namespace Terminating while its contents wait to go.
    sim.store.create("configmaps", {"metadata": {"name": "held", "finalizers": ["test/hold"]}},
                     namespace="team-t")
    sim.store.delete("namespaces", "team-t")
    namespaces = api.app[CACHE].namespaces
    assert await namespaces.wait_for(
        lambda: (namespaces.get("", "team-t") or {}).get("metadata", {}).get("deletionTimestamp"),
        timeout=5)
    resp = await post_quota(api, quota_doc("q", {"team-t": "{cpu: 1}"}))
    assert resp.status == 409
    assert (await resp.json())["details"] == {
        "namespace.team-t": ["Namespace team-t is being deleted."]}


async def test_concurrent_creates_for_one_namespace_leave_one_quota(api, sim):
    first, second = await asyncio.gather(
        post_quota(api, quota_doc("one", {"team-r": "{cpu: 1}"})),
        post_quota(api, quota_doc("two", {"team-r": "{cpu: 2}"})))
    assert sorted([first.status, second.status]) == [201, 409]
    assert len(gpuctl_quotas_in(sim, "team-r")) == 1
