"""The last lines of a job's logs, read once: every pod's tail, merged in time order."""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field

from gpuctl_async.errors import BadRequest, Conflict, NotFound
from gpuctl_async.jobs.lookup import JobRef
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.logs import pods as podinfo
from gpuctl_async.logs.lines import Line
from gpuctl_async.logs.reader import read_log

MAX_CONCURRENT_READS = 16


@dataclass
class Tail:
    lines: list[Line]
    pods: list[str] = field(default_factory=list)
    """The pods whose logs could be read."""


async def job_tail(kube: KubeClient, job: JobRef, *, pod: str | None = None,
                   container: str | None = None, tail: int = 100,
                   since_ns: int | None = None, since_seconds: int | None = None) -> Tail:
    """Raises NotFound for a pod not in the job, Conflict (with Kubernetes' message, such as
    ``... is waiting to start: ContainerCreating``) when no pod's log can be read yet."""
    pods = job.pods
    if pod is not None:
        pods = [p for p in pods if p["metadata"]["name"] == pod]
        if not pods:
            raise NotFound(f"Pod '{pod}' not found in job '{job.name}'")
    pods = sorted((p for p in pods if podinfo.on_node(p)), key=lambda p: p["metadata"]["name"])
    limit = asyncio.Semaphore(MAX_CONCURRENT_READS)

    async def read(pod_obj: dict) -> list[Line] | KubeApiError:
        name = pod_obj["metadata"]["name"]
        chosen = container or podinfo.default_container(pod_obj) or ""
        async with limit:
            try:
                return await read_log(kube, job.namespace, name, chosen, tail=tail,
                                      since_ns=since_ns, since_seconds=since_seconds)
            except KubeApiError as exc:
                if exc.code in (400, 404):
                    return exc  # not started, unknown container, or deleted meanwhile
                raise

    results = await asyncio.gather(*(read(p) for p in pods))
    readable = [(p["metadata"]["name"], r) for p, r in zip(pods, results)
                if not isinstance(r, KubeApiError)]
    refusals = [r for r in results if isinstance(r, KubeApiError) and r.code == 400]
    if not readable and refusals:
        message = refusals[0].message
        if "is not valid for pod" in message:
            raise BadRequest(message)
        raise Conflict(message)
    merged = list(heapq.merge(*(lines for _, lines in readable), key=lambda line: line.ns))
    return Tail(merged[-tail:], [name for name, _ in readable])
