"""Pure pieces of quotas: the hard keys written for a document and utilization reporting."""

from __future__ import annotations

from gpuctl_async.quotas.limits import quota_targets
from gpuctl_async.quotas.usage import quota_info
from gpuctl_async.documents import parse_document
from gpuctl_async.documents.examples import EXAMPLES


def test_document_becomes_one_enforceable_quota_per_namespace():
    targets = quota_targets(parse_document(EXAMPLES["quota"], allowed_kinds=("quota",)).spec)
    assert [(t.namespace, t.object_name, t.field) for t in targets] == [
        ("default", "team-quota-default", "default"),
        ("team-a", "team-quota-team-a", "namespace.team-a"),
    ]
    manifest = targets[1].manifest()
    assert manifest["metadata"]["labels"] == {"runwhere.ai/quota": "team-quota",
                                              "runwhere.ai/namespace": "team-a"}
    assert manifest["spec"]["hard"] == {
        "requests.cpu": "16", "limits.cpu": "16",
        "requests.memory": "64Gi", "limits.memory": "64Gi",
        "requests.nvidia.com/gpu": "4",
    }


def test_missing_limit_is_left_out_and_reported_unlimited():
    text = "kind: quota\nquota: {name: q}\nnamespace: {team-b: {gpu: 2}}\n"
    (target,) = quota_targets(parse_document(text, allowed_kinds=("quota",)).spec)
    assert target.hard() == {"requests.nvidia.com/gpu": "2"}
    assert target.summary("created") == {
        "name": "q", "namespace": "team-b", "resourceQuota": "q-team-b",
        "cpu": "unlimited", "memory": "unlimited", "gpu": "2", "status": "created"}


def test_utilization_reads_the_enforced_keys():
    quota = {
        "metadata": {"name": "q-team-a", "namespace": "team-a",
                     "labels": {"runwhere.ai/quota": "q"}},
        "spec": {"hard": {"requests.cpu": "8", "limits.cpu": "8", "requests.memory": "32Gi",
                          "requests.nvidia.com/gpu": "0"}},
        "status": {"used": {"requests.cpu": "2500m", "requests.memory": "8Gi",
                            "requests.nvidia.com/gpu": "0"}},
    }
    info = quota_info(quota)
    assert info["hard"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0",
                            "pods": "unlimited"}
    assert info["used"] == {"cpu": "2500m", "memory": "8Gi", "nvidia.com/gpu": "0"}
    assert info["utilization"]["cpu"] == {"hard": "8", "used": "2500m",
                                          "fraction": 0.3125, "percent": 31.2}
    assert info["utilization"]["memory"]["percent"] == 25.0
    assert info["utilization"]["nvidia.com/gpu"]["fraction"] is None  # limit 0
    assert info["name"] == "q"


def test_quota_without_status_reports_nothing_used():
    info = quota_info({"metadata": {"name": "x", "namespace": "n", "labels": {}},
                       "spec": {"hard": {"cpu": "4"}}})
    assert info["utilization"]["cpu"] == {"hard": "4", "used": "0", "fraction": 0.0,
                                          "percent": 0.0}
    assert info["utilization"]["memory"]["hard"] == "unlimited"
