"""What can be checked of the container image and cluster manifests without Docker or a cluster."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_copies_only_existing_paths():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM python:3.11-slim")
    copies = re.findall(r"^COPY\s+(.+)$", dockerfile, flags=re.MULTILINE)
    assert copies
    for line in copies:
        sources = line.split()[:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} does not exist"
    assert re.search(r"^USER\s+\d+", dockerfile, flags=re.MULTILINE), "must not run as root"
    assert "EXPOSE 8000" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert "0.0.0.0" in dockerfile


def _documents() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "config" / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_manifests_parse_with_expected_kinds():
    kinds = sorted(d["kind"] for d in _documents())
    # two ClusterRoles: the service's own, and gpuctl-async-metrics-reader for scrapers
    assert kinds == sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRole",
                            "ClusterRoleBinding", "Deployment", "Service"])


def test_deployment_is_locked_down_and_probed():
    deployment = next(d for d in _documents() if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_cluster_role_grants_what_the_service_needs_and_no_wildcards():
    """Reads for the caches, the reviews, impersonation, the PriorityClasses and the name
    claims (gpuctl's own ConfigMaps); no write to tenants' objects: with auth on every such
    write is the caller's, impersonated."""
    role = next(d for d in _documents() if d["kind"] == "ClusterRole")
    granted = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        for resource in rule["resources"]:
            granted.setdefault(resource, set()).update(rule["verbs"])
    read = {"get", "list", "watch"}
    for resource in ("pods", "events", "nodes", "namespaces", "services", "resourcequotas",
                     "jobs", "deployments", "statefulsets", "replicasets", "priorityclasses"):
        assert read <= granted[resource], resource
    assert granted["pods/log"] == {"get"}
    assert granted["tokenreviews"] == granted["subjectaccessreviews"] == {"create"}
    extras = [r for r in granted if r.startswith("userextras/")]
    assert "userextras/authentication.kubernetes.io/credential-id" in extras
    for resource in ("users", "groups", "serviceaccounts", "uids", *extras):
        assert granted[resource] == {"impersonate"}, resource
    writes = {resource: verbs - read - {"impersonate"} for resource, verbs in granted.items()}
    assert {r: v for r, v in writes.items() if v} == {
        "priorityclasses": {"create"}, "tokenreviews": {"create"},
        "subjectaccessreviews": {"create"}, "configmaps": {"create", "patch", "delete"}}
