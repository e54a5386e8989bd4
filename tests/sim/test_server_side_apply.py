"""``kubectl apply --server-side``: create, then merge, with the field manager recorded."""

from __future__ import annotations

import aiohttp
import orjson

from gpuctl_async.sim.testing import SimCluster

from .test_kubectl import cluster  # noqa: F401  (the standalone sim, as a fixture)
from .test_kubectl_manifests import MANIFESTS

WEB = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-ssa}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-ssa
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: IMAGE
        resources: {requests: {cpu: "0.5", memory: 1Gi}}
"""


async def test_server_side_apply_creates_then_merges(cluster):  # noqa: F811
    rc, out, err = await cluster.kubectl("apply", "--server-side", "-f", "-",
                                         stdin=WEB.replace("IMAGE", "nginx:1.26"))
    assert rc == 0, err
    assert out.splitlines() == ["namespace/team-ssa serverside-applied",
                                "deployment.apps/web serverside-applied"]
    rc, out, err = await cluster.kubectl("apply", "--server-side", "-f", "-",
                                         stdin=WEB.replace("IMAGE", "nginx:1.27"))
    assert rc == 0, err
    rc, out, err = await cluster.kubectl("get", "deployment", "web", "-n", "team-ssa",
                                         "-o", "json", "--show-managed-fields")
    assert rc == 0, err
    deployment = orjson.loads(out)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nginx:1.27"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert deployment["metadata"]["generation"] == 2
    (managed,) = deployment["metadata"]["managedFields"]
    assert (managed["manager"], managed["operation"]) == ("kubectl", "Apply")
    spec_fields = managed["fieldsV1"]["f:spec"]
    assert 'k:{"name":"web"}' in spec_fields["f:template"]["f:spec"]["f:containers"]


async def test_server_side_apply_of_the_manifests_on_an_empty_cluster(cluster):  # noqa: F811
    rc, out, err = await cluster.kubectl("apply", "--server-side", "-f", f"{MANIFESTS}/")
    assert rc == 0, err
    assert len(out.splitlines()) == 7 and all(  # config/k8s holds 7 objects
        line.endswith(" serverside-applied") for line in out.splitlines()), out


async def test_apply_patch_needs_a_field_manager():
    async with SimCluster() as sim, aiohttp.ClientSession(sim.url) as http:
        async with http.patch("/api/v1/namespaces/default/configmaps/c",
                              data=b"apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
                              headers={"Content-Type": "application/apply-patch+yaml"}) as r:
            assert r.status == 422
            assert "fieldManager: Required value" in (await r.json())["message"]
        async with http.patch("/api/v1/namespaces/default/configmaps/c",
                              params={"fieldManager": "me"},
                              data=b"apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
                              headers={"Content-Type": "application/apply-patch+yaml"}) as r:
            assert r.status == 201
            assert (await r.json())["data"] == {"a": "b"}
