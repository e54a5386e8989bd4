"""gpuctl's namespaces: which ones it lists, what it tells about one, and which it may delete.

A namespace is gpuctl's when its label ``runwhere.ai/namespace`` is ``"true"`` (written when
gpuctl creates it, or gives it a quota). The list shows those plus ``default``; detail works
for any namespace; only gpuctl's may be deleted, never ``default`` (original-gpuctl-behavior.md
§4.3). Reads come from the caches.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from gpuctl_async.errors import Forbidden, NotFound
from gpuctl_async.jobs.status import format_age
from gpuctl_async.jobs.views import controller_status
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.resources import NAMESPACES
from gpuctl_async.quotas.usage import gpuctl_quotas, quota_info
from gpuctl_async.documents.jobs import DEFAULT_NAMESPACE

log = logging.getLogger(__name__)


def is_gpuctl_namespace(namespace: Mapping) -> bool:
    marker = namespace.get("metadata", {}).get("labels", {}).get(labels.NAMESPACE)
    return marker == labels.NAMESPACE_MARKER


def listed_namespaces(cache: ClusterCache) -> list[Obj]:
    """gpuctl's namespaces plus ``default``, by name."""
    found = [ns for ns in cache.namespaces.items()
             if is_gpuctl_namespace(ns) or ns["metadata"]["name"] == DEFAULT_NAMESPACE]
    return sorted(found, key=lambda ns: ns["metadata"]["name"])


def namespace_summary(namespace: Mapping) -> dict[str, Any]:
    meta = namespace.get("metadata", {})
    created = meta.get("creationTimestamp")
    return {
        "name": meta.get("name", ""),
        "status": namespace.get("status", {}).get("phase", "Active"),
        "age": format_age(created),
        "createdAt": created,
        "labels": dict(meta.get("labels", {})),
    }


def job_counts(cache: ClusterCache, namespace: str) -> dict[str, Any]:
    """gpuctl jobs (controllers) in ``namespace`` and how many are in each status, as the
    job routes show it (a job whose pods a quota refuses counts as ``FailedCreate``)."""
    statuses = Counter(controller_status(cache, controller)
                       for informer in cache.controllers()
                       for controller in informer.in_namespace(namespace))
    return {"total": sum(statuses.values()), "byStatus": dict(sorted(statuses.items()))}


def namespace_detail(cache: ClusterCache, name: str) -> dict[str, Any]:
    namespace = cache.namespaces.get("", name)
    if namespace is None:
        raise NotFound(f"Namespace '{name}' not found")
    quotas = gpuctl_quotas(cache.quotas.in_namespace(name))
    return {**namespace_summary(namespace),
            "quota": quota_info(quotas[0]) if quotas else None,
            "jobs": job_counts(cache, name)}


async def delete_namespace(kube: KubeClient, cache: ClusterCache, name: str, *,
                           settle_timeout: float = 5.0) -> dict[str, Any]:
    """Delete one of gpuctl's namespaces; Kubernetes then deletes everything in it."""
    namespace = cache.namespaces.get("", name)
    if namespace is None:
        raise NotFound(f"Namespace '{name}' not found")
    adopted = namespace["metadata"].get("annotations", {}).get(labels.ADOPTED_ANNOTATION)
    if name == DEFAULT_NAMESPACE or not is_gpuctl_namespace(namespace) or adopted:
        raise Forbidden(f"Namespace '{name}' was not created by gpuctl and cannot be deleted "
                        "via this API")
    if not namespace["metadata"].get("deletionTimestamp"):
        await kube.delete(NAMESPACES.path(name=name))
        await cache.namespaces.wait_for(lambda: _going(cache.namespaces.get("", name)),
                                        settle_timeout)
        log.info("Deleted namespace %s", name)
    return {"name": name, "status": "deleted",
            "message": f"Namespace {name} deleted successfully"}


def _going(namespace: Obj | None) -> bool:
    return namespace is None or bool(namespace["metadata"].get("deletionTimestamp"))
