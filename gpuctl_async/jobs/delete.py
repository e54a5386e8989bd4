"""Deleting a job: its controller and ``svc-<name>``, and with ``force`` its pods at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Container
from typing import Any

from gpuctl_async.errors import NotFound
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.k8s.manifests import service_name
from gpuctl_async.k8s.resources import PODS, SERVICES
from gpuctl_async.jobs.lookup import JobRef, find_job
from gpuctl_async.jobs.status import pod_is_finished

log = logging.getLogger(__name__)

DELETED_MESSAGE = "Job deletion command issued"


async def delete_job(kube: KubeClient, cache: ClusterCache, job_id: str, *,
                     namespace: str | None = None, force: bool = False,
                     settle_timeout: float = 5.0, within: Container[str] | None = None,
                     authorize: Callable[[JobRef], Awaitable[None]] | None = None,
                     ) -> dict[str, Any]:
    """Issue the deletes and return without waiting for the pods to go. The job is searched
    ``within`` those namespaces (when given); ``authorize(job)`` raises unless the caller
    may delete it, before anything is deleted."""
    job = find_job(cache, job_id, namespace, within=within)
    if authorize is not None:
        await authorize(job)
    deleted = False
    if job.controller is not None:
        resource = job.resource
        deleted = await kube.delete(
            resource.path(job.namespace, job.controller["metadata"]["name"]),
            propagationPolicy="Background")
    deleted |= await kube.delete(SERVICES.path(job.namespace, service_name(job.name)),
                                 propagationPolicy="Background")
    if force or job.controller is None:
        results = await asyncio.gather(*(
            kube.delete(PODS.path(job.namespace, pod["metadata"]["name"]),
                        **({"gracePeriodSeconds": 0} if force else {}))
            for pod in job.pods
        ))
        deleted |= any(results)
    if not deleted:
        raise NotFound(f"Job '{job_id}' not found")
    await _settle(cache, job, settle_timeout)
    log.info("Deleted job %s/%s%s", job.namespace, job.name, " (force)" if force else "")
    return {"jobId": job_id, "name": job.name, "namespace": job.namespace,
            "status": "terminating", "message": DELETED_MESSAGE}


async def _settle(cache: ClusterCache, job: JobRef, timeout: float) -> None:
    """Read-your-writes: wait (bounded) until the cache shows the controller and its running
    pods going, so the next list does not show the job as running. Not until they are gone."""
    pods = [p["metadata"]["name"] for p in job.pods if not pod_is_finished(p)]

    def going(informer, name: str) -> bool:
        obj = informer.get(job.namespace, name)
        return obj is None or bool(obj["metadata"].get("deletionTimestamp"))

    if job.controller is not None:
        informer = cache.controller_informer(job.controller["kind"])
        name = job.controller["metadata"]["name"]
        await informer.wait_for(lambda: going(informer, name), timeout)
    await cache.pods.wait_for(lambda: all(going(cache.pods, name) for name in pods), timeout)
