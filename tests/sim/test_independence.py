"""The simulated cluster is a cluster, not part of the service.

It may import only itself and the neutral Kubernetes rules (``gpuctl_async.kuberules``); the
rules import neither side. Its copy of gpuctl's conventions (``sim.gpuctl_objects``, used to
seed gpuctl-looking workloads) is pinned here to the service's, so neither drifts alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gpuctl_async
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.manifests import build_controller
from gpuctl_async.sim import gpuctl_objects

PACKAGE = Path(gpuctl_async.__file__).parent


def _imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, module) of every gpuctl_async import in ``package``'s modules."""
    found = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against the module's package
                    base = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                    modules = [".".join((*base, node.module or ""))
                               if node.module else ".".join(base)]
                else:
                    modules = [node.module or ""]
            else:
                continue
            found.extend((str(path.relative_to(PACKAGE.parent)), node.lineno, m)
                         for m in modules if m == "gpuctl_async" or
                         m.startswith("gpuctl_async."))
    return found


def _outside(found: list[tuple[str, int, str]], *allowed: str) -> list[str]:
    return [f"{file}:{line}: {module}" for file, line, module in found
            if not any(module == a or module.startswith(a + ".") for a in allowed)]


def test_the_scan_sees_imports():
    # A scan that found nothing would pass whatever the sim imported.
    assert any(m.startswith("gpuctl_async.kuberules") for _, _, m in _imports("sim"))
    assert _outside([("x.py", 1, "gpuctl_async.k8s.labels")], "gpuctl_async.sim") == [
        "x.py:1: gpuctl_async.k8s.labels"]


def test_sim_imports_nothing_of_the_service():
    assert _outside(_imports("sim"), "gpuctl_async.sim", "gpuctl_async.kuberules") == []


def test_kubernetes_rules_import_neither_side():
    assert _outside(_imports("kuberules"), "gpuctl_async.kuberules") == []


def test_sim_copy_of_gpuctl_labels_matches_the_service():
    assert (gpuctl_objects.GPU_RESOURCE, gpuctl_objects.POOL, gpuctl_objects.GPU_TYPE,
            gpuctl_objects.JOB_TYPE, gpuctl_objects.JOB_NAME) == (
        labels.GPU_RESOURCE, labels.POOL, labels.GPU_TYPE, labels.JOB_TYPE, labels.JOB_NAME)
    assert gpuctl_objects.PRIORITY_CLASSES == labels.PRIORITY_CLASSES


@pytest.mark.parametrize("gpus", [0, 2])
def test_seeded_training_job_is_the_job_gpuctl_creates(gpus):
    spec = {"kind": "training",
            "job": {"name": "bench-job-00001", "namespace": "bench-1", "priority": "medium",
                    "description": "seeded for benchmarks"},
            "resources": {"pool": "training-pool", "gpu": gpus, "cpu": "1", "memory": "2Gi"},
            "environment": {"image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
                            "command": ["python", "train.py"], "args": [], "env": []},
            "storage": {"workdirs": []}}
    assert gpuctl_objects.training_job("bench-job-00001", "bench-1", "training-pool",
                                       gpus) == build_controller(spec)
