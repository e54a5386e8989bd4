"""The scheduler's filters and request arithmetic as the explanations evaluate them."""

from __future__ import annotations

from decimal import Decimal

from gpuctl_async.jobs.placement import amount_phrase, blocking_problem, pod_requests, selects_node
from gpuctl_async.jobs.reasons import unexplained_parts

NO_POOL = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "runwhere.ai/pool",
                                                 "operator": "DoesNotExist"}]}]}}}


def node(labels: dict | None = None, *, taints=None, unschedulable=False, ready=True) -> dict:
    return {"metadata": {"name": "n", "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_selector_and_required_affinity():
    pooled = node({"runwhere.ai/pool": "p", "runwhere.ai/gpu-type": "a100"})
    assert selects_node({"nodeSelector": {"runwhere.ai/pool": "p"}}, pooled)
    assert not selects_node({"nodeSelector": {"runwhere.ai/gpu-type": "t4"}}, pooled)
    assert not selects_node({"affinity": NO_POOL}, pooled)
    assert selects_node({"affinity": NO_POOL}, node({"runwhere.ai/gpu-type": "l4"}))


def test_taints_cordons_and_readiness_block_unless_tolerated():
    taint = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
    assert blocking_problem({}, node(taints=[taint])) == ("tainted",
                                                           "taint dedicated=ml:NoSchedule")
    tolerated = {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}
    assert blocking_problem(tolerated, node(taints=[taint])) is None
    assert blocking_problem({}, node(taints=[{**taint, "effect": "PreferNoSchedule"}])) is None
    assert blocking_problem({}, node(unschedulable=True))[0] == "cordoned"
    assert blocking_problem({}, node(ready=False))[0] == "not-ready"


def test_requests_default_to_limits_and_init_containers_take_the_larger():
    pod = {"spec": {
        "containers": [{"resources": {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}}},
                       {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "4"}}}]}}
    assert pod_requests(pod) == {"cpu": Decimal(4), "memory": Decimal(2**30),
                                 "nvidia.com/gpu": Decimal(1)}


def test_phrases():
    assert amount_phrase("nvidia.com/gpu", Decimal(1)) == "1 GPU"
    assert amount_phrase("nvidia.com/gpu", Decimal(4), "a100") == "4 × a100 GPUs"
    assert amount_phrase("cpu", Decimal("1.5")) == "1500m CPU"
    assert amount_phrase("memory", Decimal(2**31)) == "2Gi memory"
    assert amount_phrase("pods", Decimal(2)) == "2 pods"


def test_scheduler_reasons_the_caches_cannot_see():
    message = ("0/3 nodes are available: 1 Too many pods, 2 Insufficient nvidia.com/gpu. "
               "preemption: 0/3 nodes are available: 3 No preemption victims found.")
    assert unexplained_parts(message) == ["1 Too many pods"]
    assert unexplained_parts("0/2 nodes are available: 2 node(s) had untolerated taint "
                       "{a: b}. preemption: ...") == []
    assert unexplained_parts(None) == []
