"""Deleting the gpuctl quota of a namespace (never a ResourceQuota gpuctl did not write)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gpuctl_async.errors import GpuctlError, NotFound
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.k8s.resources import RESOURCE_QUOTAS
from gpuctl_async.quotas.create import quota_claims
from gpuctl_async.quotas.usage import gpuctl_quotas

log = logging.getLogger(__name__)

DELETED_MESSAGE = "Quota deleted successfully"


def not_found(namespace: str) -> NotFound:
    return NotFound(f"Quota not found: namespace '{namespace}' has no gpuctl quota")


async def _release_claim(kube: KubeClient, namespace: str, quota_uid: str) -> None:
    """Free the namespace for a new quota now (the garbage collector would, later)."""
    try:
        await quota_claims(kube).release_owned_by(namespace, None, quota_uid)
    except GpuctlError as exc:
        log.warning("Could not release the quota claim of namespace %s: %s", namespace,
                    exc.message)


async def delete_namespace_quota(kube: KubeClient, cache: ClusterCache, lock: asyncio.Lock,
                                 namespace: str, *, settle_timeout: float = 5.0) -> dict[str, Any]:
    async with lock:  # not while a create is checking or replacing this namespace's quota
        quotas = gpuctl_quotas(cache.quotas.in_namespace(namespace))
        if not quotas:
            raise not_found(namespace)
        names = [quota["metadata"]["name"] for quota in quotas]
        deleted = []
        for quota in quotas:
            name = quota["metadata"]["name"]
            if await kube.delete(RESOURCE_QUOTAS.path(namespace, name)):
                deleted.append(name)
                await _release_claim(kube, namespace, quota["metadata"]["uid"])
        if not deleted:
            raise not_found(namespace)
        await cache.quotas.wait_for(
            lambda: all(cache.quotas.get(namespace, name) is None for name in names),
            settle_timeout)
    log.info("Deleted quota %s in namespace %s", ", ".join(deleted), namespace)
    # ``jobId`` carries the namespace, as in the original's response.
    return {"jobId": namespace, "namespace": namespace, "deleted": deleted,
            "status": "deleted", "message": DELETED_MESSAGE}
