"""Bulk seeding for benchmarks: gpuctl training jobs whose pods are already Running.

``seed_running_jobs(store, kubelet, jobs=1000, pods_per_job=10, namespaces=10)`` creates
namespaces ``<prefix>-<n>``, gpuctl's PriorityClasses if missing, and per job the Job gpuctl
would create for a training job (the sim's copy, ``sim.gpuctl_objects``: labels
``runwhere.ai/job-type``, ``runwhere.ai/job-name``, ``runwhere.ai/pool``, ...), with
``parallelism`` = ``completions`` = ``pods_per_job`` so the Job controller keeps them all,
and its pods bound round-robin to the nodes that match their pool and shown Running and
Ready. Everything goes through the store's normal write path (admission, change
notifications), so controllers, quota and watchers see a consistent cluster. Seeded pods run
until deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from gpuctl_async.kuberules.scheduling import selects_node
from gpuctl_async.sim.controller import pod_from_template
from gpuctl_async.sim.gpuctl_objects import PRIORITY_CLASSES, training_job
from gpuctl_async.sim.kubelet import Kubelet
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store


def seed_running_jobs(store: Store, kubelet: Kubelet, *, jobs: int = 1000,
                      pods_per_job: int = 10, namespaces: int = 10, prefix: str = "bench",
                      pool: str = "training-pool", gpus_per_pod: int = 0) -> dict:
    """Create ``jobs`` Jobs with ``pods_per_job`` Running pods each; returns counts and
    the seconds it took."""
    started = time.perf_counter()
    pods = sum(step[1] for step in running_job_steps(
        store, kubelet, jobs=jobs, pods_per_job=pods_per_job, namespaces=namespaces,
        prefix=prefix, pool=pool, gpus_per_pod=gpus_per_pod))
    return {"jobs": jobs, "pods": pods, "namespaces": namespaces,
            "seconds": round(time.perf_counter() - started, 3)}


def running_job_steps(store: Store, kubelet: Kubelet, *, jobs: int, pods_per_job: int,
                      namespaces: int, prefix: str = "bench", pool: str = "training-pool",
                      gpus_per_pod: int = 0, nodes: list[dict] | None = None,
                      ) -> Iterator[tuple[int, int]]:
    """The writes of :func:`seed_running_jobs` in small steps: yields ``(jobs, pods)``
    created by each step ((0, 0) between chunks of node matching), so a caller may pause
    between any two (chunked seeding); never between a Job and its pods, or the Job
    controller would create pods of its own. ``nodes``: the cluster's nodes, if the caller
    has them (listing 5,000 nodes is itself a long step)."""
    for priority_class in PRIORITY_CLASSES:
        try:
            store.create("priorityclasses", priority_class)
        except StatusError:
            pass  # already there
    for n in range(namespaces):
        try:
            store.create("namespaces", {"metadata": {"name": f"{prefix}-{n}"}})
        except StatusError:
            pass
    if nodes is None:
        nodes = store.list("nodes")
        yield 0, 0
    fitting_by_pool: dict[str, list[str]] = {}
    for index in range(jobs):
        namespace = f"{prefix}-{index % namespaces}"
        manifest = training_job(f"{prefix}-job-{index:05d}", namespace, pool, gpus_per_pod)
        manifest["spec"].update(parallelism=pods_per_job, completions=pods_per_job)
        job = store.create("jobs", manifest, namespace=namespace)
        template = job["spec"]["template"]
        if pool not in fitting_by_pool:  # every Job of one pool fits the same nodes
            fitting = []
            for start in range(0, len(nodes), 500):
                fitting.extend(n["metadata"]["name"] for n in nodes[start:start + 500]
                               if selects_node(template["spec"], n))
            fitting_by_pool[pool] = fitting or [n["metadata"]["name"] for n in nodes]
        fitting = fitting_by_pool[pool]
        for replica in range(pods_per_job):
            pod = pod_from_template(job, template)
            if fitting:
                pod["spec"]["nodeName"] = fitting[(index * pods_per_job + replica)
                                                  % len(fitting)]
            pod = store.create("pods", pod, namespace=namespace)
            if fitting:
                pod["status"] = kubelet.running_status(pod)
                store.update("pods", pod, subresource="status")
        yield 1, pods_per_job
