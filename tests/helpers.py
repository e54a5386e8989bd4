"""Small helpers shared by the service's tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T] | T], check: Callable[[T], bool], *,
                     timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call ``probe`` (sync or async) until ``check`` holds on its result; fail with the last
    result on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if check(result):
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {result!r}")
        await asyncio.sleep(interval)


def node_manifest(name: str, *, pool: str | None = None, gpus: int = 8,
                  gpu_type: str | None = "a100", ip: str = "192.168.1.10") -> dict:
    """A Ready GPU node as the simulated cluster stores it."""
    node_labels = {"kubernetes.io/hostname": name}
    if pool:
        node_labels["runwhere.ai/pool"] = pool
    if gpu_type:
        node_labels["runwhere.ai/gpu-type"] = gpu_type
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": ip}],
        },
    }


def job_yaml(kind: str = "training", name: str = "train-1", *, namespace: str | None = None,
             pool: str | None = None, extra: str = "") -> str:
    """A small valid gpuctl document."""
    lines = [f"kind: {kind}", "job:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    lines += ["environment:", "  image: busybox:1.36", "  command: [sleep, '60']",
              "resources:", "  cpu: 1", "  memory: 256Mi"]
    if pool:
        lines.append(f"  pool: {pool}")
    return "\n".join(lines) + "\n" + extra


def job_pod(job: dict, suffix: str = "abcde", *, node: str | None = None,
            phase: str = "Running") -> dict:
    """A pod of ``job`` (a controller as stored), shaped as its Kubernetes controller makes them."""
    meta = job["metadata"]
    template = job["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{suffix}",
            "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "ownerReferences": [{"apiVersion": job["apiVersion"], "kind": job["kind"],
                                 "name": meta["name"], "uid": meta["uid"], "controller": True}],
        },
        "spec": {**template["spec"], **({"nodeName": node} if node else {})},
        "status": {"phase": phase},
    }
    return pod


async def add_nodes(api, sim, *manifests: dict) -> None:
    """Create nodes in the sim and wait until the app's cache has them all."""
    from gpuctl_async.appkeys import CACHE

    for manifest in manifests:
        sim.store.create("nodes", manifest)
    nodes = api.app[CACHE].nodes
    names = [m["metadata"]["name"] for m in manifests]
    assert await nodes.wait_for(lambda: all(nodes.get("", n) for n in names), timeout=5)


async def settle(api, sim, resource: str = "pods") -> None:
    """Wait until the app's cache of ``resource`` has seen the latest write to the cluster."""
    from gpuctl_async.appkeys import CACHE

    informer = getattr(api.app[CACHE], resource)
    version = sim.store.resource_version
    await eventually(lambda: int(informer.resource_version or 0) >= version, bool, timeout=5)


def without_request_id(body: dict) -> dict:
    """An error body without its ``requestId`` (tests/test_request_ids.py checks that one)."""
    assert isinstance(body.get("requestId"), str), body
    return {key: value for key, value in body.items() if key != "requestId"}
