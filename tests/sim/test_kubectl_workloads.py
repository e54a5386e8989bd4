"""The real kubectl against a simulated cluster that runs workloads (in this test's loop)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

from .helpers import kubectl_path, stop_process, wait_for


KUBECTL = kubectl_path()

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  template:
    metadata:
      annotations: {sim.runwhere.ai/run-seconds: "0.6"}
    spec:
      restartPolicy: Never
      nodeSelector: {runwhere.ai/pool: training-pool}
      containers:
      - name: main
        image: busybox:1.36
        resources:
          limits: {nvidia.com/gpu: "4"}
"""
COLUMNS = ("custom-columns=NAME:.metadata.name,PHASE:.status.phase,"
           "WAITING:.status.containerStatuses[0].state.waiting.reason,"
           "DONE:.status.containerStatuses[0].state.terminated.reason")


@pytest.fixture
async def cluster():
    timing = Timing.fast().with_changes(image_pull=0.2, container_start=0.1)
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=timing) as sim:
        yield sim


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path):
        self.base = (KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache))
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *self.base, *args, stdin=asyncio.subprocess.PIPE if stdin else
            asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self.processes.append(process)
        return process

    async def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        process = await self.start(*args, stdin=stdin is not None)
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), 30)
        return process.returncode, out.decode(), err.decode()

    async def close(self) -> None:
        for process in self.processes:
            await stop_process(process)


@pytest.fixture
async def kubectl(cluster, tmp_path):
    tool = Kubectl(cluster.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")
    yield tool
    await tool.close()


async def test_job_seen_through_get_watch_and_describe(cluster, kubectl):
    watcher = await kubectl.start("get", "pods", "-w", "-o", COLUMNS)
    await wait_for(lambda: cluster.open_watches("pods") > 0, 20)
    rc, out, err = await kubectl.run("create", "-f", "-", stdin=JOB)
    assert rc == 0, err
    rows: list[list[str]] = []

    async def until_done() -> None:
        while not rows or rows[-1][1] != "Succeeded":
            line = await watcher.stdout.readline()
            assert line, "kubectl get -w ended early"
            rows.append(line.decode().split())

    await asyncio.wait_for(until_done(), 20)
    states = [tuple(row[1:]) for row in rows if row[0].startswith("train-")]
    assert states[0] == ("Pending", "<none>", "<none>")
    assert ("Pending", "ContainerCreating", "<none>") in states
    assert ("Running", "<none>", "<none>") in states
    assert states[-1] == ("Succeeded", "<none>", "Completed")
    order = [states.index(s) for s in (("Pending", "ContainerCreating", "<none>"),
                                       ("Running", "<none>", "<none>"), states[-1])]
    assert order == sorted(order)

    pod = rows[-1][0]
    rc, out, err = await kubectl.run("describe", "pod", pod)
    assert rc == 0, err
    assert re.search(r"^Status:\s+Succeeded$", out, re.M)
    assert re.search(r"^Node:\s+train-a100-[01]/10\.0\.0\.1[01]$", out, re.M)
    assert re.search(r"^Controlled By:\s+Job/train$", out, re.M)
    assert re.search(r"^\s+Reason:\s+Completed$", out, re.M)
    assert re.search(r"^\s+Exit Code:\s+0$", out, re.M)
    events = out[out.index("Events:"):]
    for reason, source in (("Scheduled", "default-scheduler"), ("Pulling", "kubelet"),
                           ("Pulled", "kubelet"), ("Created", "kubelet"),
                           ("Started", "kubelet")):
        assert re.search(rf"Normal\s+{reason}\s+\S+\s+{source}", events), (reason, events)
    assert f"Successfully assigned default/{pod} to train-a100-" in events

    rc, out, err = await kubectl.run("describe", "job", "train")
    assert rc == 0, err
    assert re.search(r"^Pods Statuses:\s+0 Active \(0 Ready\) / 1 Succeeded / 0 Failed$", out,
                     re.M)
    assert re.search(rf"Normal\s+SuccessfulCreate\s+\S+\s+job-controller\s+Created pod: {pod}",
                     out)
    assert re.search(r"Normal\s+Completed\s+\S+\s+job-controller\s+Job completed", out)


async def test_describe_shows_failed_scheduling_and_aggregated_events(cluster, kubectl):
    greedy = JOB.replace('"4"', '"16"').replace("name: train", "name: greedy")
    rc, _, err = await kubectl.run("create", "-f", "-", stdin=greedy)
    assert rc == 0, err
    await wait_for(lambda: cluster.store.list("events", "default",
                                              field_selector="reason=FailedScheduling"))
    cluster.store.patch("nodes", "infer-t4-0", {"metadata": {"labels": {"touched": "1"}}})
    await wait_for(lambda: (cluster.store.list("events", "default", field_selector=(
        "reason=FailedScheduling"))[0].get("series") or {}).get("count") == 2)
    rc, out, err = await kubectl.run("describe", "pods", "-l", "job-name=greedy")
    assert rc == 0, err
    assert re.search(r"Warning\s+FailedScheduling\s+\S+ \(x2 over \S+\)\s+default-scheduler\s+"
                     r"0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 2 node\(s\) "
                     r"didn't match Pod's node affinity/selector\.", out), out
    rc, out, err = await kubectl.run("get", "deployments,jobs", "-o", "name")
    assert (rc, out.split()) == (0, ["job.batch/greedy"])


async def test_get_pods_watch_prints_server_side_status_columns(cluster, kubectl):
    watcher = await kubectl.start("get", "pods", "-w")
    await wait_for(lambda: cluster.open_watches("pods") > 0, 20)
    rc, _, err = await kubectl.run("create", "-f", "-", stdin=JOB)
    assert rc == 0, err
    lines: list[str] = []

    async def until_completed() -> None:
        while not lines or lines[-1].split()[2:3] != ["Completed"]:
            line = await watcher.stdout.readline()
            assert line, "kubectl get -w ended early"
            lines.append(line.decode())

    await asyncio.wait_for(until_completed(), 20)
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [line.split() for line in lines[1:]]
    assert all(row[0].startswith("train-") for row in rows)
    statuses = [(row[1], row[2]) for row in rows]
    assert statuses[0] == ("0/1", "Pending")
    assert statuses[-1] == ("0/1", "Completed")
    order = [statuses.index(s) for s in (("0/1", "ContainerCreating"), ("1/1", "Running"),
                                         ("0/1", "Completed"))]
    assert order == sorted(order)
    assert all(row[3] == "0" for row in rows)

    rc, out, err = await kubectl.run("get", "jobs")
    assert rc == 0, err
    header, row = (line.split() for line in out.splitlines())
    assert header == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row[:3] == ["train", "Complete", "1/1"]


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        resources:
          requests: {cpu: 100m, memory: 64Mi}
"""


async def test_scale_deployment(cluster, kubectl):
    rc, _, err = await kubectl.run("create", "-f", "-", stdin=DEPLOYMENT)
    assert rc == 0, err

    def ready() -> int:
        return (cluster.store.get("deployments", "web", namespace="default").get("status")
                or {}).get("readyReplicas", 0)

    await wait_for(lambda: ready() == 1, 20)
    rc, out, err = await kubectl.run("scale", "deployment", "web", "--replicas", "3")
    assert (rc, out.strip()) == (0, "deployment.apps/web scaled"), err
    await wait_for(lambda: ready() == 3, 20)
    rc, out, err = await kubectl.run("get", "deployment", "web")
    assert rc == 0, err
    header, row = (line.split() for line in out.splitlines())
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row[:2] == ["web", "3/3"]
    # the precondition form goes through PUT with the Scale's resourceVersion
    rc, out, err = await kubectl.run("scale", "deployment", "web", "--current-replicas", "2",
                                     "--replicas", "1")
    assert rc == 1 and "Expected replicas to be 2, was 3" in err, (out, err)
