"""Two replicas of the service on one cluster behave as one service.

Two apps (two ``aiohttp_client``s, each with its own caches and watches) against one simulated
cluster; conflicting writes are sent through both at once. The API server decides each race
(name claims), and a consistency token from one replica's write answer makes the other
replica's read wait until its caches have the write.
"""

from __future__ import annotations

import asyncio

import pytest

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.consistency import HEADER
from gpuctl_async.k8s.claims import CLAIM_LABEL
from tests.conftest import sim_settings
from tests.helpers import eventually, job_yaml

KINDS = ("training", "inference", "notebook", "compute")


@pytest.fixture
async def replicas(sim, aiohttp_client, tmp_path):
    """Two service apps on ``sim``, caches synced."""
    apps = []
    for index in range(2):
        (tmp_path / f"r{index}").mkdir()
        client = await aiohttp_client(create_app(sim_settings(
            sim, tmp_path / f"r{index}", read_your_writes_timeout=2.0)))
        assert await client.app[CACHE].wait_synced(timeout=10), "caches did not sync"
        apps.append(client)
    return apps


def stored(sim, plural: str, name: str, namespace: str = "default") -> dict | None:
    """The object the cluster holds, or None."""
    return next((obj for obj in sim.store.list(plural, namespace=namespace)
                 if obj["metadata"]["name"] == name), None)


def controllers_named(sim, name: str, namespace: str = "default") -> list[str]:
    return [plural for plural in ("jobs", "deployments", "statefulsets")
            if stored(sim, plural, name, namespace) is not None]


def gpuctl_quotas_in(sim, namespace: str) -> list[str]:
    items = sim.store.list("resourcequotas", namespace=namespace)
    return sorted(q["metadata"]["name"] for q in items
                  if "runwhere.ai/quota" in q["metadata"].get("labels", {}))


def quota_doc(name: str, namespace: str = "team-a", gpu: int = 2) -> str:
    return f"kind: quota\nquota: {{name: {name}}}\nnamespace:\n  {namespace}: {{gpu: {gpu}}}\n"


async def test_one_job_per_name_whatever_the_kinds_racing_through_two_replicas(sim, replicas):
    a, b = replicas
    names = [f"race-{i}" for i in range(8)]

    async def submit(client, kind, name):
        resp = await client.post("/api/v1/jobs", json={"yamlContent": job_yaml(kind, name)})
        return resp.status, await resp.json()

    results = await asyncio.gather(*(
        call for i, name in enumerate(names)
        for call in (submit(a, KINDS[i % 4], name), submit(b, KINDS[(i + 1) % 4], name))))
    for i, name in enumerate(names):
        statuses = sorted(status for status, _ in results[2 * i:2 * i + 2])
        assert statuses == [201, 409], (name, results[2 * i:2 * i + 2])
        assert len(controllers_named(sim, name)) == 1, name
    conflict = next(body for status, body in results if status == 409)
    assert "already exists in namespace 'default'" in conflict["error"]


async def test_a_deleted_job_frees_its_name_for_any_kind_at_once(sim, replicas):
    a, b = replicas
    resp = await a.post("/api/v1/jobs", json={"yamlContent": job_yaml("training", "again")})
    assert resp.status == 201
    claim = stored(sim, "configmaps", "gpuctl-job-again", "default")
    assert claim["metadata"]["labels"][CLAIM_LABEL] == "job"
    assert [ref["kind"] for ref in claim["metadata"]["ownerReferences"]] == ["Job"]
    assert (await a.delete("/api/v1/jobs/again")).status == 200
    assert stored(sim, "configmaps", "gpuctl-job-again", "default") is None
    resp = await b.post("/api/v1/jobs", json={"yamlContent": job_yaml("inference", "again")})
    assert resp.status == 201, await resp.text()


async def test_a_job_deleted_behind_gpuctls_back_takes_its_claim_along(sim, replicas):
    a, _ = replicas
    resp = await a.post("/api/v1/jobs", json={"yamlContent": job_yaml("training", "kubectl")})
    assert resp.status == 201
    sim.store.delete("jobs", "kubectl", namespace="default", propagation_policy="Background")
    # The garbage collector deletes the claim, as the owner is gone.
    await eventually(lambda: stored(sim, "configmaps", "gpuctl-job-kubectl"),
                     lambda claim: claim is None, timeout=5)


async def test_a_failed_creation_leaves_no_claim(sim, replicas):
    a, _ = replicas
    sim.refuse("create", "services")  # the controller is created, its Service refused
    resp = await a.post("/api/v1/jobs", json={"yamlContent": job_yaml("inference", "half")})
    assert resp.status == 403
    sim.refuse(None)
    assert controllers_named(sim, "half") == []
    assert stored(sim, "configmaps", "gpuctl-job-half", "default") is None
    resp = await a.post("/api/v1/jobs", json={"yamlContent": job_yaml("training", "half")})
    assert resp.status == 201, await resp.text()


async def test_one_gpuctl_quota_per_namespace_racing_through_two_replicas(sim, replicas):
    a, b = replicas
    responses = await asyncio.gather(
        a.post("/api/v1/quotas", json={"yamlContent": quota_doc("first")}),
        b.post("/api/v1/quotas", json={"yamlContent": quota_doc("second")}))
    assert sorted(r.status for r in responses) == [201, 409]
    assert len(gpuctl_quotas_in(sim, "team-a")) == 1
    loser = next(r for r in responses if r.status == 409)
    assert "namespace.team-a" in (await loser.json())["details"]


async def test_racing_replaces_leave_one_quota(sim, replicas):
    a, b = replicas
    assert (await a.post("/api/v1/quotas", json={"yamlContent": quota_doc("old")})).status == 201
    for round_ in range(3):
        responses = await asyncio.gather(
            a.post("/api/v1/quotas", json={"yamlContent": quota_doc(f"a{round_}"),
                                           "replace": True}),
            b.post("/api/v1/quotas", json={"yamlContent": quota_doc(f"b{round_}"),
                                           "replace": True}))
        assert {r.status for r in responses} <= {201, 409}
        assert 201 in {r.status for r in responses}
        assert len(gpuctl_quotas_in(sim, "team-a")) == 1, gpuctl_quotas_in(sim, "team-a")


async def test_a_deleted_quota_frees_the_namespace(sim, replicas):
    a, b = replicas
    assert (await a.post("/api/v1/quotas", json={"yamlContent": quota_doc("q")})).status == 201
    assert stored(sim, "configmaps", "gpuctl-quota", "team-a") is not None
    assert (await a.delete("/api/v1/quotas/team-a")).status == 200
    assert stored(sim, "configmaps", "gpuctl-quota", "team-a") is None
    resp = await b.post("/api/v1/quotas", json={"yamlContent": quota_doc("q2")})
    assert resp.status == 201, await resp.text()


async def test_write_answers_carry_a_token_the_other_replica_honours(sim, replicas):
    a, b = replicas
    resp = await a.post("/api/v1/jobs", json={"yamlContent": job_yaml("inference", "mine")})
    assert resp.status == 201
    token = resp.headers[HEADER]
    assert "deployments.apps=" in token and "services=" in token
    listed = await (await b.get("/api/v1/jobs", headers={HEADER: token})).json()
    assert "mine" in [item["name"] for item in listed["items"]]
    # A read answer carries no token; a second write's token covers the first.
    assert HEADER not in (await b.get("/api/v1/jobs")).headers
    resp = await b.delete("/api/v1/jobs/mine", headers={HEADER: token})
    assert resp.status == 200
    assert "deployments.apps=" in resp.headers[HEADER]


async def test_a_read_with_a_token_waits_for_a_lagging_cache(sim, replicas):
    _, b = replicas
    sim.set_watch_delay(0.5)
    # Written by "another replica": this one hears of it only through its (lagging) watch.
    created = sim.store.create("jobs", {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "elsewhere", "labels": {
            "runwhere.ai/job-type": "training", "runwhere.ai/job-name": "elsewhere"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "main", "image": "x"}]}}},
    }, namespace="default")
    token = f"jobs.batch={created['metadata']['resourceVersion']}"
    stale = await (await b.get("/api/v1/jobs")).json()
    assert "elsewhere" not in [item["name"] for item in stale["items"]]
    fresh = await (await b.get("/api/v1/jobs", headers={HEADER: token})).json()
    assert "elsewhere" in [item["name"] for item in fresh["items"]]


async def test_a_token_the_cache_cannot_reach_in_time_is_a_503(sim, replicas):
    _, b = replicas
    sim.set_watch_delay(3.0)  # longer than the replicas' read_your_writes_timeout (2 s)
    created = sim.store.create("namespaces", {"metadata": {"name": "late"}})
    resp = await b.get("/api/v1/jobs",
                       headers={HEADER: f"namespaces={created['metadata']['resourceVersion']}"})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert HEADER in (await resp.json())["error"]


async def test_a_token_beyond_the_clusters_revision_is_a_400_at_once(sim, replicas):
    _, b = replicas
    resp = await b.get("/api/v1/jobs", headers={HEADER: "jobs.batch=99999999"})
    assert resp.status == 400
    assert HEADER in (await resp.json())["details"]


@pytest.mark.parametrize("token", ["", "jobs", "jobs.batch=abc", "JOBS=1", "a=1," * 20])
async def test_a_malformed_token_is_a_400_naming_the_header(sim, replicas, token):
    _, b = replicas
    resp = await b.get("/api/v1/jobs", headers={HEADER: token})
    assert resp.status == 400
    body = await resp.json()
    assert HEADER in body["details"]


async def test_an_abandoned_claim_is_taken_over_and_a_held_one_is_not(sim, replicas):
    """A claim without owner (its replica died between claim and bind) is taken over once it
    is older than ``abandoned_after``; one that guards a live job never is."""
    from gpuctl_async.appkeys import KUBE
    from gpuctl_async.k8s.claims import NameClaims

    a, _ = replicas
    impatient = NameClaims(a.app[KUBE], "job", abandoned_after=0)
    orphan = sim.store.create("configmaps", {"metadata": {"name": "gpuctl-job-orphan",
                                                          "labels": {CLAIM_LABEL: "job"}}},
                              namespace="default")
    claim = await impatient.take("default", "orphan", holder="Job/orphan")
    assert claim is not None and claim["metadata"]["uid"] != orphan["metadata"]["uid"]
    patient = NameClaims(a.app[KUBE], "job")  # the default: two minutes
    assert await patient.take("default", "orphan") is None  # young, though unbound
    assert (await a.post("/api/v1/jobs",
                         json={"yamlContent": job_yaml("training", "held")})).status == 201
    assert await impatient.take("default", "held") is None  # bound to its Job


def pre_claims_quota(sim, name: str, namespace: str = "team-a") -> dict:
    """A gpuctl quota as the service wrote it before claims existed: no claim guards it."""
    from gpuctl_async.quotas.limits import quota_targets
    from gpuctl_async.documents import parse_document

    target = quota_targets(parse_document(quota_doc(name, namespace)).spec)[0]
    return sim.store.create("resourcequotas", target.manifest(), namespace=namespace)


async def test_a_quota_older_than_claims_refuses_a_second_one_through_a_stale_cache(
        sim, replicas):
    a, _ = replicas
    sim.ensure_namespace("team-a")
    await eventually(lambda: a.app[CACHE].namespaces.peek("", "team-a"), bool)
    sim.set_watch_delay(30)  # the replica's cache will not hear of the old quota
    try:
        pre_claims_quota(sim, "old")
        resp = await a.post("/api/v1/quotas", json={"yamlContent": quota_doc("new")})
        assert resp.status == 409, await resp.text()
        assert "already has a quota 'old'" in (await resp.json())["error"]
        assert gpuctl_quotas_in(sim, "team-a") == ["old-team-a"]
        assert stored(sim, "configmaps", "gpuctl-quota", "team-a") is None  # released
        # Replacing it takes the unseen quota over, as if the cache had shown it.
        resp = await a.post("/api/v1/quotas", json={"yamlContent": quota_doc("new"),
                                                     "replace": True})
        assert resp.status == 201, await resp.text()
        assert gpuctl_quotas_in(sim, "team-a") == ["new-team-a"]
    finally:
        sim.set_watch_delay(0)


async def test_a_rolled_back_replace_leaves_the_restored_quota_claimed(sim, replicas):
    a, b = replicas
    assert (await a.post("/api/v1/quotas", json={"yamlContent": quota_doc("old")})).status == 201
    both = ("kind: quota\nquota: {name: new}\nnamespace:\n  team-a: {gpu: 4}\n"
            "  team-z: {gpu: 4}\n")
    sim.refuse("create", "namespaces")  # team-a is replaced, then team-z cannot be made
    try:
        resp = await a.post("/api/v1/quotas", json={"yamlContent": both, "replace": True})
        assert resp.status == 403, await resp.text()
    finally:
        sim.refuse(None)
    assert gpuctl_quotas_in(sim, "team-a") == ["old-team-a"]
    restored = stored(sim, "resourcequotas", "old-team-a", "team-a")

    def claim_owners() -> list[str]:
        claim = stored(sim, "configmaps", "gpuctl-quota", "team-a")
        return [ref["uid"] for ref in (claim or {}).get("metadata", {}).get(
            "ownerReferences") or ()]

    # The claim guards the restored quota (a new uid), and outlives the new one's deletion.
    await eventually(claim_owners, lambda owners: owners == [restored["metadata"]["uid"]])
    resp = await b.post("/api/v1/quotas", json={"yamlContent": quota_doc("other")})
    assert resp.status == 409, await resp.text()
