"""Namespaces gpuctl creates: marked ``runwhere.ai/namespace=true`` so they can be told apart."""

from __future__ import annotations

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.resources import NAMESPACES


def marked_namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {labels.NAMESPACE: labels.NAMESPACE_MARKER}}}


async def create_marked_namespace(kube: KubeClient, name: str) -> bool:
    """Create the namespace with the gpuctl marker; False when it already existed."""
    try:
        await kube.request("POST", NAMESPACES.path(), body=marked_namespace(name))
    except KubeApiError as exc:
        if exc.is_already_exists:
            return False
        raise
    return True
