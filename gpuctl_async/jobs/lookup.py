"""Finding a job from what a client calls it: its name, or the name of one of its pods."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from gpuctl_async.errors import Conflict, NotFound
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import JOB_INDEX, NAME_INDEX, ClusterCache, is_gpuctl
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.resources import BY_KIND, Resource


@dataclass
class JobRef:
    """A gpuctl job as the caches know it: its controller (if it still exists) and pods."""

    namespace: str
    name: str
    controller: Obj | None
    pods: list[Obj] = field(default_factory=list)

    @property
    def kind(self) -> str:
        source = self.controller or (self.pods[0] if self.pods else {})
        return source.get("metadata", {}).get("labels", {}).get(labels.JOB_TYPE, "unknown")

    @property
    def resource(self) -> Resource | None:
        return BY_KIND[self.controller["kind"]] if self.controller else None


def job_pods(cache: ClusterCache, namespace: str, name: str) -> list[Obj]:
    return cache.pods.by_index(JOB_INDEX, f"{namespace}/{name}")


def _controllers_named(cache: ClusterCache, name: str, namespace: str | None,
                       within: Container[str] | None = None) -> list[Obj]:
    found = []
    for informer in cache.controllers():
        if namespace is not None:
            obj = informer.get(namespace, name)
            found.extend([obj] if obj else [])
        else:
            found.extend(_inside(informer.by_index(NAME_INDEX, name), within))
    return found


def _inside(objects: list[Obj], within: Container[str] | None) -> list[Obj]:
    if within is None:
        return objects
    return [o for o in objects if o["metadata"].get("namespace") in within]


def find_job(cache: ClusterCache, job_id: str, namespace: str | None = None, *,
             within: Container[str] | None = None) -> JobRef:
    """Resolve ``job_id`` (controller name, else pod name) within ``namespace`` or everywhere
    (only the namespaces ``within``, when given: those the caller may read).

    Raises NotFound, or Conflict when the name exists in several namespaces and none was given.
    """
    controllers = _controllers_named(cache, job_id, namespace, within)
    if controllers:
        _refuse_ambiguous(job_id, controllers)
        controller = controllers[0]
        ns = controller["metadata"]["namespace"]
        job_name = controller["metadata"].get("labels", {}).get(labels.JOB_NAME, job_id)
        return JobRef(ns, job_name, controller, job_pods(cache, ns, job_name))

    if namespace is not None:
        pod = cache.pods.get(namespace, job_id)
        pods = [pod] if pod is not None and is_gpuctl(pod) else []
    else:
        pods = _inside(cache.pods.by_index(NAME_INDEX, job_id), within)
    if pods:
        _refuse_ambiguous(job_id, pods)
        pod_meta = pods[0]["metadata"]
        ns, job_name = pod_meta["namespace"], pod_meta.get("labels", {}).get(labels.JOB_NAME)
        if job_name:
            owners = _controllers_named(cache, job_name, ns)
            return JobRef(ns, job_name, owners[0] if owners else None,
                          job_pods(cache, ns, job_name))
        return JobRef(ns, job_id, None, pods)
    raise NotFound(f"Job '{job_id}' not found")


def _refuse_ambiguous(job_id: str, objects: list[Obj]) -> None:
    namespaces = sorted({o["metadata"]["namespace"] for o in objects})
    if len(namespaces) > 1:
        raise Conflict(
            f"Job '{job_id}' exists in several namespaces ({', '.join(namespaces)}); "
            "say which with the namespace query parameter"
        )
