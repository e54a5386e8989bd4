"""Kubernetes request labels: kube-apiserver's verbs and resources, never a name."""

from __future__ import annotations

import pytest

from gpuctl_async.metrics.kube import verb_and_resource


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/pods", {"limit": 500}, ("list", "pods")),
    ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "pods")),
    ("GET", "/api/v1/namespaces/team-a/pods/train-0/log", {"follow": True}, ("get", "pods/log")),
    ("GET", "/api/v1/namespaces/team-a", None, ("get", "namespaces")),
    ("GET", "/api/v1/namespaces", None, ("list", "namespaces")),
    ("POST", "/apis/batch/v1/namespaces/team-a/jobs", None, ("create", "jobs")),
    ("DELETE", "/apis/apps/v1/namespaces/a/deployments/web", None, ("delete", "deployments")),
    ("DELETE", "/api/v1/namespaces/a/pods", None, ("deletecollection", "pods")),
    ("PATCH", "/api/v1/nodes/gpu-node-7", None, ("patch", "nodes")),
    ("PUT", "/api/v1/namespaces/a/resourcequotas/q", None, ("update", "resourcequotas")),
    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", None,
     ("create", "subjectaccessreviews")),
    ("GET", "/version", None, ("get", "nonresource")),
    ("GET", "/api/v1/namespaces/a/pods/p/WEIRD%20name", None, ("get", "pods/other")),
])
def test_verb_and_resource(method, path, query, expected):
    assert verb_and_resource(method, path, query) == expected
