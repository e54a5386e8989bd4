"""The simulated kubelets: pod status, events, failure behaviours, graceful termination."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

from .helpers import wait_for


@pytest.fixture
async def cluster():
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        yield sim


def pod(name: str, annotations: dict | None = None, restart: str = "Always",
        **container: object) -> dict:
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "main", "image": "busybox:1.36", **container}]}}


def get(cluster: SimCluster, name: str) -> dict:
    return cluster.store.get("pods", name, "default")


def container(cluster: SimCluster, name: str) -> dict:
    statuses = get(cluster, name)["status"].get("containerStatuses") or [{}]
    return statuses[0]


def conditions(cluster: SimCluster, name: str) -> dict:
    return {c["type"]: c["status"] for c in get(cluster, name)["status"]["conditions"]}


def events(cluster: SimCluster, name: str) -> list[dict]:
    return cluster.store.list("events", "default", field_selector=f"involvedObject.name={name}")


def waiting_reason(cluster: SimCluster, name: str) -> str | None:
    return container(cluster, name).get("state", {}).get("waiting", {}).get("reason")


async def test_a_pod_starts_with_truthful_status_and_events(cluster):
    cluster.store.create("pods", pod("web", readinessProbe={
        "httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 20}), namespace="default")
    await wait_for(lambda: get(cluster, "web")["status"].get("phase") == "Running")
    status = get(cluster, "web")["status"]
    main = status["containerStatuses"][0]
    assert "running" in main["state"] and main["state"]["running"]["startedAt"]
    assert main["image"] == "docker.io/library/busybox:1.36"
    assert main["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert main["containerID"].startswith("containerd://") and main["restartCount"] == 0
    assert main["started"] is True and main["lastState"] == {}
    assert status["podIP"].startswith("10.244.") and status["podIPs"] == [{"ip": status["podIP"]}]
    node = cluster.store.get("nodes", get(cluster, "web")["spec"]["nodeName"])
    assert status["hostIP"] == node["status"]["addresses"][0]["address"]
    assert status["startTime"] and status["qosClass"] == "BestEffort"
    # ready only once the readiness probe's initial delay (scaled) has passed
    await wait_for(lambda: container(cluster, "web")["ready"])
    assert conditions(cluster, "web") == {"PodReadyToStartContainers": "True",
                                          "Initialized": "True", "Ready": "True",
                                          "ContainersReady": "True", "PodScheduled": "True"}
    # The scheduler's event is events.k8s.io/v1-style (reportingComponent, empty source).
    seen = [(e["reason"], e["source"].get("component") or e["reportingComponent"],
             e["involvedObject"].get("fieldPath")) for e in events(cluster, "web")]
    assert seen == [("Scheduled", "default-scheduler", None),
                    ("Pulling", "kubelet", "spec.containers{main}"),
                    ("Pulled", "kubelet", "spec.containers{main}"),
                    ("Created", "kubelet", "spec.containers{main}"),
                    ("Started", "kubelet", "spec.containers{main}")]
    messages = [e["message"] for e in events(cluster, "web")]
    assert messages[1] == 'Pulling image "busybox:1.36"'
    assert messages[2].startswith('Successfully pulled image "busybox:1.36" in ')
    assert messages[3:] == ["Created container: main", "Started container main"]
    node_name = node["metadata"]["name"]
    started_event = events(cluster, "web")[-1]
    assert started_event["involvedObject"] == {
        "kind": "Pod", "namespace": "default", "name": "web", "apiVersion": "v1",
        "uid": get(cluster, "web")["metadata"]["uid"],
        "resourceVersion": started_event["involvedObject"]["resourceVersion"],
        "fieldPath": "spec.containers{main}"}
    assert started_event["type"] == "Normal" and started_event["count"] == 1
    assert started_event["firstTimestamp"] == started_event["lastTimestamp"]
    assert started_event["eventTime"].endswith("Z") and "." in started_event["eventTime"]
    assert started_event["reportingComponent"] == "kubelet"
    assert {e["source"].get("host") for e in events(cluster, "web")[1:]} == {node_name}


async def test_image_pull_failure(cluster):
    cluster.store.create("pods", pod("bad", {"sim.runwhere.ai/fail": "image-pull"}),
                         namespace="default")
    await wait_for(lambda: waiting_reason(cluster, "bad") == "ImagePullBackOff")
    await wait_for(lambda: waiting_reason(cluster, "bad") == "ErrImagePull")
    assert get(cluster, "bad")["status"]["phase"] == "Pending"
    assert "podIP" not in get(cluster, "bad")["status"]
    await wait_for(lambda: any(e["message"] == "Error: ImagePullBackOff" and e["count"] > 1
                               for e in events(cluster, "bad")))
    by_message = {e["message"]: e for e in events(cluster, "bad")}
    assert by_message['Back-off pulling image "busybox:1.36"']["type"] == "Normal"
    assert by_message["Error: ErrImagePull"]["type"] == "Warning"
    assert any(m.startswith('Failed to pull image "busybox:1.36": rpc error: code = NotFound')
               for m in by_message)


async def test_crash_loop_restarts_with_growing_count(cluster):
    cluster.store.create("pods", pod("crash", {"sim.runwhere.ai/fail": "crash-loop"}),
                         namespace="default")
    await wait_for(lambda: container(cluster, "crash").get("restartCount", 0) >= 3)
    await wait_for(lambda: waiting_reason(cluster, "crash") == "CrashLoopBackOff")
    main = container(cluster, "crash")
    assert main["state"]["waiting"]["message"].startswith(
        "back-off ") and "restarting failed container=main pod=crash_default(" in \
        main["state"]["waiting"]["message"]
    last = main["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert get(cluster, "crash")["status"]["phase"] == "Running"
    assert conditions(cluster, "crash")["Ready"] == "False"
    backoff = [e for e in events(cluster, "crash") if e["reason"] == "BackOff"]
    assert len(backoff) == 1 and backoff[0]["count"] >= 2 and backoff[0]["type"] == "Warning"
    started = [e for e in events(cluster, "crash") if e["reason"] == "Started"]
    assert started[0]["count"] >= 3  # aggregated repeats
    pulled = [e["message"] for e in events(cluster, "crash") if e["reason"] == "Pulled"]
    assert 'Container image "busybox:1.36" already present on machine' in pulled


async def test_oom_killed_and_non_zero_exit(cluster):
    cluster.store.create("pods", pod("oom", {"sim.runwhere.ai/fail": "oom"}, restart="Never"),
                         namespace="default")
    cluster.store.create("pods", pod("exit", {"sim.runwhere.ai/run-seconds": "0.05",
                                              "sim.runwhere.ai/exit-code": "42"},
                                     restart="Never"), namespace="default")
    cluster.store.create("pods", pod("done", {"sim.runwhere.ai/run-seconds": "0.05"},
                                     restart="OnFailure"), namespace="default")
    for name in ("oom", "exit", "done"):
        await wait_for(lambda name=name: get(cluster, name)["status"]["phase"] in (
            "Succeeded", "Failed"))
    oom = container(cluster, "oom")["state"]["terminated"]
    assert (oom["exitCode"], oom["reason"]) == (137, "OOMKilled")
    assert get(cluster, "oom")["status"]["phase"] == "Failed"
    code = container(cluster, "exit")["state"]["terminated"]
    assert (code["exitCode"], code["reason"]) == (42, "Error")
    assert code["startedAt"] and code["finishedAt"]
    assert get(cluster, "done")["status"]["phase"] == "Succeeded"
    assert conditions(cluster, "done")["Ready"] == "False"
    reasons = {c["type"]: c.get("reason") for c in get(cluster, "done")["status"]["conditions"]}
    assert reasons["Ready"] == "PodCompleted"


async def test_never_ready(cluster):
    cluster.store.create("pods", pod("shy", {"sim.runwhere.ai/fail": "never-ready"}),
                         namespace="default")
    cluster.store.create("pods", pod("eager"), namespace="default")
    await wait_for(lambda: container(cluster, "eager").get("ready"))
    assert get(cluster, "shy")["status"]["phase"] == "Running"
    assert container(cluster, "shy")["ready"] is False
    status = get(cluster, "shy")["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [main]")


async def test_graceful_termination(cluster):
    cluster.store.create("pods", pod("slow", {"sim.runwhere.ai/stop-seconds": "0.3"}),
                         namespace="default")
    await wait_for(lambda: container(cluster, "slow").get("ready"))
    started = container(cluster, "slow")["state"]["running"]["startedAt"]
    seen: list[tuple[str, dict]] = []

    async def follow() -> None:
        async with contextlib.aclosing(cluster.store.changes("pods")) as changes:
            async for change in changes:
                seen.append((change.type, change.entry.obj))
                if change.type == "DELETED":
                    return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    cluster.store.delete("pods", "slow", "default")
    terminating = get(cluster, "slow")
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 5
    await wait_for(lambda: any(e["reason"] == "Killing" for e in events(cluster, "slow")))
    assert [e["message"] for e in events(cluster, "slow") if e["reason"] == "Killing"] == \
        ["Stopping container main"]
    assert "running" in container(cluster, "slow")["state"]  # still stopping
    await asyncio.wait_for(follower, 5)
    assert [kind for kind, _ in seen] == ["MODIFIED", "MODIFIED", "DELETED"]
    last = seen[1][1]
    terminated = last["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["startedAt"]) == (143, started)
    assert last["status"]["phase"] == "Failed"


async def test_grace_period_caps_the_stop(cluster):
    cluster.store.create("pods", pod("stubborn", {"sim.runwhere.ai/stop-seconds": "60"}),
                         namespace="default")
    await wait_for(lambda: get(cluster, "stubborn")["status"].get("phase") == "Running")
    cluster.store.delete("pods", "stubborn", "default", grace_period_seconds=0)
    assert not cluster.store.list("pods", "default")  # grace 0: gone at once
    cluster.store.create("pods", pod("pending", {"sim.runwhere.ai/fail": "image-pull"}),
                         namespace="default")
    await wait_for(lambda: waiting_reason(cluster, "pending") == "ErrImagePull")
    cluster.store.delete("pods", "pending", "default")
    await wait_for(lambda: not cluster.store.list("pods", "default"))


async def test_an_unresolvable_registry_fails_the_pull(cluster):
    cluster.store.create("pods", pod("nohost", image="registry.invalid/team/app:v1"),
                         namespace="default")
    await wait_for(lambda: waiting_reason(cluster, "nohost") == "ErrImagePull")
    message = container(cluster, "nohost")["state"]["waiting"]["message"]
    assert message.endswith("dial tcp: lookup registry.invalid: no such host")
    assert 'Head "https://registry.invalid/v2/team/app/manifests/v1"' in message
    await wait_for(lambda: waiting_reason(cluster, "nohost") == "ImagePullBackOff")


async def test_a_shell_exit_command_crash_loops_with_its_code(cluster):
    cluster.store.create("pods", pod("exits", command=["sh", "-c", "exit 3"]),
                         namespace="default")
    cluster.store.create("pods", pod("once", restart="Never", command=["false"]),
                         namespace="default")
    await wait_for(lambda: waiting_reason(cluster, "exits") == "CrashLoopBackOff")
    last = container(cluster, "exits")["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    await wait_for(lambda: get(cluster, "once")["status"]["phase"] == "Failed")
    assert container(cluster, "once")["state"]["terminated"]["exitCode"] == 1
