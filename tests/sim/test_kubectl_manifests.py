"""The documented ``kubectl apply -f config/k8s/`` works the first time on an empty cluster.

kubectl applies a directory's files in name order, one object after another, and stops at
the first failure: the Namespace must come first, the ServiceAccount (``rbac.yaml``) before
the Deployment that runs as it (``workload.yaml``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .test_kubectl import cluster  # noqa: F401  (the standalone sim, as a fixture)

MANIFESTS = Path(__file__).resolve().parent.parent.parent / "config" / "k8s"


def test_files_in_name_order_create_what_later_ones_need():
    order = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        order += [d["kind"] for d in yaml.safe_load_all(path.read_text()) if d]
    assert order[0] == "Namespace"
    assert order.index("ServiceAccount") < order.index("Deployment")
    assert order.index("ClusterRole") < order.index("ClusterRoleBinding")


async def test_apply_directory_on_an_empty_cluster(cluster):  # noqa: F811
    rc, out, err = await cluster.kubectl("get", "ns", "gpuctl-system")
    assert rc != 0 and "not found" in err  # empty: nothing of ours yet
    rc, out, err = await cluster.kubectl("apply", "-f", f"{MANIFESTS}/")
    assert rc == 0, err
    assert out.splitlines() == [
        "namespace/gpuctl-system created",
        "serviceaccount/gpuctl-async created",
        "clusterrole.rbac.authorization.k8s.io/gpuctl-async created",
        "clusterrolebinding.rbac.authorization.k8s.io/gpuctl-async created",
        "clusterrole.rbac.authorization.k8s.io/gpuctl-async-metrics-reader created",
        "service/gpuctl-async created",
        "deployment.apps/gpuctl-async created",
    ], out
    rc, out, err = await cluster.kubectl("get", "deployment,service,serviceaccount", "-n",
                                         "gpuctl-system", "-o", "name")
    assert rc == 0, err
    assert sorted(out.split()) == ["deployment.apps/gpuctl-async", "service/gpuctl-async",
                                   "serviceaccount/gpuctl-async"]
    # Applying again changes nothing.
    rc, out, err = await cluster.kubectl("apply", "-f", f"{MANIFESTS}/")
    assert rc == 0, err
    assert all(line.endswith(" unchanged") for line in out.splitlines()), out
