"""Kubernetes' rules as both the service and the sim read them (gpuctl_async.kuberules)."""

from __future__ import annotations

from decimal import Decimal

from gpuctl_async.kuberules.quota import quota_usage
from gpuctl_async.kuberules.resources import parse_amounts, pod_limits, pod_requests
from gpuctl_async.kuberules.scheduling import selects_node, untolerated_taint


def container(requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "resources": resources}


def test_malformed_quantities_are_left_out():
    assert parse_amounts({"cpu": "1", "memory": "lots", "nvidia.com/gpu": 2}) == {
        "cpu": Decimal(1), "nvidia.com/gpu": Decimal(2)}
    assert parse_amounts(None) == {} and parse_amounts(["1"]) == {}


def test_requests_default_to_limits_and_init_containers_count_by_the_largest():
    spec = {"containers": [container(limits={"cpu": "2", "memory": "1Gi"}),
                           container(requests={"cpu": "500m"}, limits={"cpu": "1"})],
            "initContainers": [container(requests={"cpu": "4"}),
                               container(requests={"memory": "512Mi"})]}
    assert pod_requests(spec) == {"cpu": Decimal(4), "memory": Decimal(2**30)}
    assert pod_limits(spec) == {"cpu": Decimal(3), "memory": Decimal(2**30)}


def test_quota_usage_keys():
    spec = {"containers": [container({"cpu": "1", "nvidia.com/gpu": "2"},
                                     {"cpu": "2", "nvidia.com/gpu": "2"})]}
    assert quota_usage(spec) == {
        "pods": 1, "count/pods": 1, "cpu": 1, "requests.cpu": 1, "limits.cpu": 2,
        "requests.nvidia.com/gpu": 2, "limits.nvidia.com/gpu": 2}


def test_taints_need_a_matching_toleration():
    taint = {"key": "gpu", "value": "yes", "effect": "NoSchedule"}
    assert untolerated_taint([], [{"key": "x", "effect": "PreferNoSchedule"}, taint]) == taint
    assert untolerated_taint([{"key": "gpu", "value": "yes"}], [taint]) is None
    assert untolerated_taint([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}],
                             [taint]) == taint
    assert untolerated_taint([{"operator": "Exists"}], [taint]) is None


def test_node_affinity_terms_are_ored_and_empty_terms_match_nothing():
    node = {"metadata": {"name": "n1", "labels": {"zone": "a", "gpus": "8"}}}

    def affinity(*terms: dict) -> dict:
        return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": list(terms)}}}}

    assert selects_node({"nodeSelector": {"zone": "a"}}, node)
    assert not selects_node({"nodeSelector": {"zone": "b"}}, node)
    assert not selects_node(affinity({}), node)
    assert selects_node(affinity({}, {"matchExpressions": [
        {"key": "gpus", "operator": "Gt", "values": ["4"]}]}), node)
    assert not selects_node(affinity({"matchExpressions": [
        {"key": "gpus", "operator": "Lt", "values": ["x"]}]}), node)
    assert selects_node(affinity({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}), node)
