"""The real kubectl against a simulated cluster with authentication and RBAC on (over TLS:
kubectl sends bearer tokens only over TLS)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from gpuctl_async.sim.testing import SimCluster

from .auth_helpers import ADMIN
from .helpers import kubectl_path, stop_process

KUBECTL = kubectl_path()

RBAC_MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team-b}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-reads-pods, namespace: team-b}
subjects:
- {kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
"""


@pytest.fixture
async def sim():
    async with SimCluster(token=ADMIN, users=[("t-alice", "alice", "u-alice", ["devs"]),
                                              ("t-bob", "bob", "u-bob")],
                          tls=True) as cluster:
        cluster.bind("User", "alice", "edit", namespace="team-a")
        yield cluster


async def kubectl(sim: SimCluster, tmp_path: Path, token: str | None, *args: str,
                  stdin: str | None = None) -> tuple[int, str, str]:
    config = sim.write_kubeconfig(tmp_path / f"kubeconfig-{abs(hash(token))}", token=token)
    process = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"), *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None),
                                      60)
    return process.returncode, out.decode(), err.decode()


async def test_auth_can_i(sim, tmp_path):
    code, out, _ = await kubectl(sim, tmp_path, "t-alice", "auth", "can-i", "list", "pods",
                                 "-n", "team-a")
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = await kubectl(sim, tmp_path, "t-alice", "auth", "can-i", "list", "pods",
                                 "-n", "team-b")
    assert (code, out.strip()) == (1, "no")
    code, out, _ = await kubectl(sim, tmp_path, "t-alice", "auth", "can-i", "get",
                                 "pods/log", "-n", "team-a")
    assert out.strip() == "yes"
    code, out, _ = await kubectl(sim, tmp_path, "t-alice", "auth", "can-i", "create",
                                 "jobs.batch", "-n", "team-a")
    assert out.strip() == "yes"
    code, out, _ = await kubectl(sim, tmp_path, ADMIN, "auth", "can-i", "delete", "nodes")
    assert out.strip() == "yes"
    # An administrator asks on someone's behalf with --as (impersonation).
    code, out, _ = await kubectl(sim, tmp_path, ADMIN, "auth", "can-i", "create",
                                 "deployments.apps", "-n", "team-a", "--as", "alice")
    assert out.strip() == "yes"
    code, out, _ = await kubectl(sim, tmp_path, ADMIN, "auth", "can-i", "create",
                                 "deployments.apps", "-n", "team-b", "--as", "alice")
    assert out.strip() == "no"
    code, out, err = await kubectl(sim, tmp_path, "t-bob", "auth", "can-i", "list", "pods",
                                   "--as", "alice")
    assert code != 0 and 'User "bob" cannot impersonate resource "users"' in err


async def test_tenant_kubeconfig_get_pods_and_forbidden_message(sim, tmp_path):
    sim.store.create("pods", {"metadata": {"name": "p1"}, "spec": {"containers": [
        {"name": "main", "image": "busybox:1.36"}]}}, namespace="team-a")
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "get", "pods", "-n", "team-a",
                                   "-o", "name")
    assert (code, out.split()) == (0, ["pod/p1"]), err
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "get", "pods", "-n", "team-b")
    assert code == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list '
            'resource "pods" in API group "" in the namespace "team-b"') in err
    code, out, err = await kubectl(sim, tmp_path, "wrong-token", "get", "pods")
    assert code == 1 and "Unauthorized" in err
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "auth", "whoami", "-o",
                                   "jsonpath={.status.userInfo.username}")
    assert (code, out) == (0, "alice"), err


async def test_create_token_and_use_it(sim, tmp_path):
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "create", "serviceaccount",
                                   "robot", "-n", "team-a")
    assert code == 0, err
    code, token, err = await kubectl(sim, tmp_path, "t-alice", "create", "token", "robot",
                                     "-n", "team-a", "--duration", "15m")
    assert code == 0, err
    token = token.strip()
    code, out, _ = await kubectl(sim, tmp_path, token, "auth", "can-i", "list", "pods", "-n",
                                 "team-a")
    assert out.strip() == "no"
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "create", "rolebinding",
                                   "robot-view", "-n", "team-a", "--clusterrole", "view",
                                   "--serviceaccount", "team-a:robot")
    assert code == 1 and "rolebindings.rbac.authorization.k8s.io is forbidden" in err
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "create", "rolebinding",
                                   "robot-view", "-n", "team-a", "--clusterrole", "view",
                                   "--serviceaccount", "team-a:robot")
    assert code == 0, err
    code, out, _ = await kubectl(sim, tmp_path, token, "auth", "can-i", "list", "pods", "-n",
                                 "team-a")
    assert out.strip() == "yes"
    code, out, err = await kubectl(sim, tmp_path, token, "auth", "whoami", "-o",
                                   "jsonpath={.status.userInfo.username}")
    assert out == "system:serviceaccount:team-a:robot", err
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "create", "token", "robot",
                                   "-n", "team-a", "--duration", "1m")
    assert code == 1 and "may not specify a duration less than 10 minutes" in err


async def test_rbac_objects_through_kubectl(sim, tmp_path):
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "create", "-f", "-",
                                   stdin=RBAC_MANIFESTS)
    assert code == 0, err
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "get", "clusterroles", "-o", "name")
    assert code == 0, err
    assert {"clusterrole.rbac.authorization.k8s.io/view",
            "clusterrole.rbac.authorization.k8s.io/cluster-admin"} <= set(out.split())
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "get", "rolebindings", "-n",
                                   "team-b", "-o", "name")
    assert "rolebinding.rbac.authorization.k8s.io/bob-reads-pods" in out.split(), err
    code, out, _ = await kubectl(sim, tmp_path, "t-bob", "auth", "can-i", "get", "pods/log",
                                 "-n", "team-b")
    assert out.strip() == "yes"
    code, out, _ = await kubectl(sim, tmp_path, "t-bob", "auth", "can-i", "delete", "pods",
                                 "-n", "team-b")
    assert out.strip() == "no"
    code, out, err = await kubectl(sim, tmp_path, "t-bob", "get", "clusterroles")
    assert code == 1 and ('clusterroles.rbac.authorization.k8s.io is forbidden: User "bob" '
                          'cannot list resource "clusterroles" in API group '
                          '"rbac.authorization.k8s.io" at the cluster scope') in err


async def test_auth_can_i_list(sim, tmp_path):
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "auth", "can-i", "--list", "-n",
                                   "team-a")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "jobs.batch" in rows and "create" in rows["jobs.batch"]
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows
    code, out, err = await kubectl(sim, tmp_path, "t-alice", "auth", "can-i", "--list", "-n",
                                   "team-b")
    assert "jobs.batch" not in out


async def test_standalone_sim_with_token_file(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('t-carol,carol,u-carol,"ops"\n')
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async.sim", "--no-workloads", "--token", ADMIN,
        "--token-file", str(tokens), "--kubeconfig-out", str(kubeconfig),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        match = re.fullmatch(r"gpuctl-async sim listening on (https://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        base = (KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c"))

        async def run(*args: str) -> tuple[int, str, str]:
            child = await asyncio.create_subprocess_exec(
                *base, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(child.communicate(), 60)
            return child.returncode, out.decode(), err.decode()

        code, out, err = await run("auth", "whoami", "-o",
                                   "jsonpath={.status.userInfo.username}")
        assert (code, out) == (0, "admin"), err
        code, out, err = await run("--token", "t-carol", "get", "pods")
        assert code == 1 and 'User "carol" cannot list resource "pods"' in err
        code, out, err = await run("--token", "nope", "get", "pods")
        assert code == 1 and "Unauthorized" in err
    finally:
        await stop_process(process)
    bad = tmp_path / "bad.csv"
    bad.write_text("only-two,columns\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gpuctl_async.sim", "--no-workloads", "--token-file", str(bad),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode != 0
    assert "cannot read --token-file" in err.decode() and "at least 3 columns" in err.decode()


async def test_kubectl_get_prints_rbac_columns(sim, tmp_path):
    sim.bind("ServiceAccount", "team-a/robot", "view", namespace="team-a")
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "get", "rolebindings", "-n",
                                   "team-a", "-o", "wide")
    assert code == 0, err
    header, *rows = [line.split() for line in out.splitlines()]
    assert header == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert ["sim:edit:user:alice", "ClusterRole/edit"] == rows[0][:2]
    assert rows[1][0] == "sim:view:serviceaccount:team-a:robot" and rows[1][-1] == "team-a/robot"
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "get", "clusterrole", "view")
    assert out.splitlines()[0].split() == ["NAME", "CREATED", "AT"]
    code, out, err = await kubectl(sim, tmp_path, ADMIN, "get", "sa", "-n", "team-a")
    assert out.splitlines()[0].split() == ["NAME", "SECRETS", "AGE"]
    assert out.splitlines()[1].split()[:2] == ["default", "0"]


async def test_kubectl_create_rolebinding_cannot_escalate(sim, tmp_path):
    sim.bind("User", "bob", "admin", namespace="team-a")
    code, out, err = await kubectl(sim, tmp_path, "t-bob", "create", "rolebinding", "mine",
                                   "-n", "team-a", "--clusterrole", "edit", "--user", "carol")
    assert code == 0, err
    code, out, err = await kubectl(sim, tmp_path, "t-bob", "create", "rolebinding", "root",
                                   "-n", "team-a", "--clusterrole", "cluster-admin", "--user",
                                   "bob")
    assert code == 1
    assert ('rolebindings.rbac.authorization.k8s.io "root" is forbidden: user "bob" '
            '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
            'currently held:') in err
