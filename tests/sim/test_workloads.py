"""Workload controllers of the simulated cluster, driven through kubernetes_asyncio."""

from __future__ import annotations

import pytest

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

from .helpers import make_clients, raw, wait_for

CONTAINER = {"name": "main", "image": "busybox:1.36"}


@pytest.fixture
async def cluster():
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        yield sim


@pytest.fixture
async def kube(cluster, tmp_path):
    clients = await make_clients(cluster, tmp_path)
    yield clients
    await clients.api.close()


def job(name: str, annotations: dict | None = None, **spec: object) -> dict:
    template = {"metadata": {"annotations": annotations or {}},
                "spec": {"restartPolicy": "Never", "containers": [CONTAINER]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": template, **spec}}


def workload(kind: str, name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "serviceName": name,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [CONTAINER]}}}}


def pods_of(cluster: SimCluster, selector: str) -> list[dict]:
    return cluster.store.list("pods", "default", label_selector=selector)


def conditions(obj: dict) -> dict:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def reasons(cluster: SimCluster, name: str) -> list[str]:
    return [e["reason"] for e in cluster.store.list(
        "events", "default", field_selector=f"involvedObject.name={name}")]


async def test_job_runs_to_completion(cluster, kube):
    created = await raw(kube.batch.create_namespaced_job("default", job("train"),
                                                         _preload_content=False))
    uid = created["metadata"]["uid"]

    def done():
        return "Complete" in conditions(cluster.store.get("jobs", "train", "default"))

    await wait_for(done)
    body = await raw(kube.batch.read_namespaced_job("train", "default",
                                                    _preload_content=False))
    status = body["status"]
    assert status["succeeded"] == 1 and "active" not in status and "failed" not in status
    assert status["startTime"] and status["completionTime"]
    assert conditions(body)["Complete"]["reason"] == "CompletionsReached"
    assert list(conditions(body)) == ["SuccessCriteriaMet", "Complete"]
    [pod] = pods_of(cluster, "job-name=train")
    assert pod["metadata"]["name"].startswith("train-") and len(pod["metadata"]["name"]) == 11
    assert pod["metadata"]["labels"]["controller-uid"] == uid
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "train"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == uid
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert reasons(cluster, "train") == ["SuccessfulCreate", "Completed"]


async def test_job_parallelism_completions_and_backoff_limit(cluster):
    cluster.store.create("jobs", job("many", parallelism=2, completions=4), namespace="default")
    await wait_for(lambda: "Complete" in conditions(cluster.store.get("jobs", "many",
                                                                      "default")))
    assert cluster.store.get("jobs", "many", "default")["status"]["succeeded"] == 4
    assert len(pods_of(cluster, "job-name=many")) == 4

    failing = job("flaky", {"sim.runwhere.ai/exit-code": "3"}, backoffLimit=1)
    cluster.store.create("jobs", failing, namespace="default")
    await wait_for(lambda: "Failed" in conditions(cluster.store.get("jobs", "flaky",
                                                                    "default")))
    flaky = cluster.store.get("jobs", "flaky", "default")
    assert flaky["status"]["failed"] == 2 and "succeeded" not in flaky["status"]
    assert conditions(flaky)["Failed"]["reason"] == "BackoffLimitExceeded"
    assert conditions(flaky)["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert "BackoffLimitExceeded" in reasons(cluster, "flaky")
    codes = [p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
             for p in pods_of(cluster, "job-name=flaky")]
    assert codes == [3, 3]


async def test_job_ttl_after_finished_deletes_it(cluster):
    cluster.store.create("jobs", job("brief", ttlSecondsAfterFinished=0), namespace="default")
    await wait_for(lambda: not cluster.store.list("jobs", "default"))
    await wait_for(lambda: not pods_of(cluster, "job-name=brief"))


async def test_deployment_counts_replicas_that_never_become_ready_as_unavailable(cluster,
                                                                                   kube):
    manifest = workload("Deployment", "stuck", 2)
    manifest["spec"]["template"]["metadata"]["annotations"] = {
        "sim.runwhere.ai/fail": "never-ready"}
    await raw(kube.apps.create_namespaced_deployment("default", manifest,
                                                     _preload_content=False))

    def status() -> dict:
        return cluster.store.get("deployments", "stuck", "default").get("status") or {}

    def running() -> bool:
        pods = pods_of(cluster, "app=stuck")
        return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)

    await wait_for(running)
    await wait_for(lambda: status().get("unavailableReplicas") == 2
                   and status().get("replicas") == 2)
    assert not status().get("readyReplicas") and not status().get("availableReplicas")


async def test_deployment_scales_and_replaces_a_deleted_pod(cluster, kube):
    await raw(kube.apps.create_namespaced_deployment("default", workload("Deployment", "web", 2),
                                                     _preload_content=False))

    def available(n: int):
        status = cluster.store.get("deployments", "web", "default").get("status") or {}
        return (status.get("availableReplicas") == n and status.get("replicas") == n
                and status.get("readyReplicas") == n and not status.get("unavailableReplicas"))

    await wait_for(lambda: available(2))
    [rs] = cluster.store.list("replicasets", "default")
    name, pod_hash = rs["metadata"]["name"], rs["metadata"]["labels"]["pod-template-hash"]
    assert name == f"web-{pod_hash}" and len(pod_hash) <= 10
    # rand.SafeEncodeString of a decimal number only ever yields these characters.
    assert set(pod_hash) <= set("456789bcdf"), pod_hash
    pods = pods_of(cluster, "app=web")
    assert all(p["metadata"]["name"].startswith(name + "-") for p in pods)
    assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in pods)
    deployment = cluster.store.get("deployments", "web", "default")
    assert conditions(deployment)["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conditions(deployment)["Progressing"]["reason"] == "NewReplicaSetAvailable"

    await raw(kube.apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}},
                                                    _preload_content=False))
    await wait_for(lambda: available(3))
    victim = pods_of(cluster, "app=web")[0]["metadata"]["name"]
    await raw(kube.core.delete_namespaced_pod(victim, "default", _preload_content=False))
    await wait_for(lambda: victim not in {p["metadata"]["name"]
                                          for p in pods_of(cluster, "app=web")})
    await wait_for(lambda: available(3))
    assert len(pods_of(cluster, "app=web")) == 3
    messages = [e["message"] for e in cluster.store.list(
        "events", "default", field_selector="reason=ScalingReplicaSet")]
    assert messages == [f"Scaled up replica set {name} from 0 to 2",
                        f"Scaled up replica set {name} from 2 to 3"]

    cluster.store.patch("deployments", "web", {"spec": {"replicas": 1}}, namespace="default")
    await wait_for(lambda: available(1) and len(pods_of(cluster, "app=web")) == 1)
    assert "SuccessfulDelete" in reasons(cluster, name)

    # a new template: a new ReplicaSet takes over, the old one is scaled to zero
    cluster.store.patch("deployments", "web", {"spec": {"template": {"metadata": {
        "annotations": {"rev": "2"}}}}}, namespace="default")
    await wait_for(lambda: len(cluster.store.list("replicasets", "default")) == 2)
    new_rs = next(rs for rs in cluster.store.list("replicasets", "default")
                  if rs["metadata"]["name"] != name)
    assert new_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    await wait_for(lambda: cluster.store.get("replicasets", name, "default")["spec"][
        "replicas"] == 0 and [p["metadata"]["name"].rsplit("-", 1)[0]
                              for p in pods_of(cluster, "app=web")] == [new_rs["metadata"]["name"]])
    await wait_for(lambda: available(1))


async def test_statefulset_keeps_ordinals(cluster, kube):
    history: list[tuple[str, str]] = []  # ("created" | "ready", pod name), in commit order

    def record(event) -> None:
        pod = event.new
        if pod is None or not pod["metadata"]["name"].startswith("nb-"):
            return
        if event.type == "ADDED":
            history.append(("created", pod["metadata"]["name"]))
        elif any(c.get("type") == "Ready" and c.get("status") == "True"
                 for c in (pod.get("status") or {}).get("conditions") or ()):
            if ("ready", pod["metadata"]["name"]) not in history:
                history.append(("ready", pod["metadata"]["name"]))

    cluster.store.add_listener("pods", record)
    await raw(kube.apps.create_namespaced_stateful_set(
        "default", workload("StatefulSet", "nb", 3), _preload_content=False))

    def ready(n: int):
        status = cluster.store.get("statefulsets", "nb", "default").get("status") or {}
        return status.get("readyReplicas") == n and status.get("replicas") == n

    await wait_for(lambda: ready(3))
    pods = pods_of(cluster, "app=nb")
    assert [p["metadata"]["name"] for p in pods] == ["nb-0", "nb-1", "nb-2"]
    assert [p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] for p in pods] == \
        ["0", "1", "2"]
    assert pods[1]["spec"]["hostname"] == "nb-1" and pods[1]["spec"]["subdomain"] == "nb"
    # OrderedReady: each pod was created only after the previous one was ready.
    for ordinal in (1, 2):
        assert history.index(("ready", f"nb-{ordinal - 1}")) < \
            history.index(("created", f"nb-{ordinal}")), history
    old_uid = pods[1]["metadata"]["uid"]
    cluster.store.delete("pods", "nb-1", "default")
    await wait_for(lambda: any(p["metadata"]["name"] == "nb-1" and
                               p["metadata"]["uid"] != old_uid for p in pods_of(cluster,
                                                                                "app=nb")))
    await wait_for(lambda: ready(3))
    cluster.store.patch("statefulsets", "nb", {"spec": {"replicas": 1}}, namespace="default")
    await wait_for(lambda: [p["metadata"]["name"] for p in pods_of(cluster, "app=nb")] ==
                   ["nb-0"])
    status = cluster.store.get("statefulsets", "nb", "default")["status"]
    assert status["currentRevision"].startswith("nb-") and status["currentReplicas"] == 1
    assert "create Pod nb-2 in StatefulSet nb successful" in [
        e["message"] for e in cluster.store.list("events", "default",
                                                 field_selector="involvedObject.name=nb")]
