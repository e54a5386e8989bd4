"""Consistency tokens: which type a write path touches, and the token's wire form."""

from __future__ import annotations

import pytest

from gpuctl_async.k8s import consistency


@pytest.mark.parametrize(("path", "kind"), [
    ("/apis/batch/v1/namespaces/a/jobs/x", "jobs.batch"),
    ("/apis/apps/v1/namespaces/a/deployments", "deployments.apps"),
    ("/api/v1/namespaces/a/pods/p/status", "pods"),
    ("/api/v1/namespaces/a/resourcequotas/q", "resourcequotas"),
    ("/api/v1/namespaces/a", "namespaces"),
    ("/api/v1/namespaces", "namespaces"),
    ("/api/v1/nodes/n1", "nodes"),
    ("/apis/scheduling.k8s.io/v1/priorityclasses", "priorityclasses.scheduling.k8s.io"),
    ("/version", None),
])
def test_the_type_a_path_writes(path, kind):
    assert consistency.type_of_path(path) == kind


def test_a_scope_records_the_newest_version_per_type_and_nothing_outside():
    consistency.record("/api/v1/nodes/n1", {"metadata": {"resourceVersion": "5"}})  # no scope
    with consistency.recording() as written:
        consistency.record("/api/v1/nodes/n1", {"metadata": {"resourceVersion": "7"}})
        consistency.record("/api/v1/nodes/n2", {"metadata": {"resourceVersion": "6"}})
        consistency.record("/api/v1/namespaces/a/pods/p", {"kind": "Status"})
        consistency.record("/api/v1/namespaces/a/pods/p", {"metadata": {"resourceVersion": "x"}})
    assert written == {"nodes": 7}


def test_tokens_round_trip_and_merge():
    token = consistency.encode({"services": 9, "jobs.batch": 8})
    assert token == "jobs.batch=8,services=9"
    assert consistency.decode(token) == {"jobs.batch": 8, "services": 9}
    assert consistency.decode("pods=3, pods=5") == {"pods": 5}
    assert consistency.merge({"pods": 3, "nodes": 1}, {"pods": 2}) == {"pods": 3, "nodes": 1}


@pytest.mark.parametrize("token", ["", " , ", "pods", "pods=", "pods=-1", "Pods=1", "a=1,"*17])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(consistency.BadToken):
        consistency.decode(token)
