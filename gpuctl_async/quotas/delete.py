"""Deleting the gpuctl quota of a namespace (never a ResourceQuota gpuctl did not write)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gpuctl_async.errors import NotFound
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.k8s.resources import RESOURCE_QUOTAS
from gpuctl_async.quotas.usage import gpuctl_quotas

log = logging.getLogger(__name__)

DELETED_MESSAGE = "Quota deleted successfully"


def not_found(namespace: str) -> NotFound:
    return NotFound(f"Quota not found: namespace '{namespace}' has no gpuctl quota")


async def delete_namespace_quota(kube: KubeClient, cache: ClusterCache, lock: asyncio.Lock,
                                 namespace: str, *, settle_timeout: float = 5.0) -> dict[str, Any]:
    async with lock:  # not while a create is checking or replacing this namespace's quota
        quotas = gpuctl_quotas(cache.quotas.in_namespace(namespace))
        if not quotas:
            raise not_found(namespace)
        names = [quota["metadata"]["name"] for quota in quotas]
        deleted = []
        for name in names:
            if await kube.delete(RESOURCE_QUOTAS.path(namespace, name)):
                deleted.append(name)
        if not deleted:
            raise not_found(namespace)
        await cache.quotas.wait_for(
            lambda: all(cache.quotas.get(namespace, name) is None for name in names),
            settle_timeout)
    log.info("Deleted quota %s in namespace %s", ", ".join(deleted), namespace)
    # ``jobId`` carries the namespace, as in the original's response.
    return {"jobId": namespace, "namespace": namespace, "deleted": deleted,
            "status": "deleted", "message": DELETED_MESSAGE}
