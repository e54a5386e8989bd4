"""Pools as the node cache shows them: members, GPU totals and use, description, status."""

from __future__ import annotations

from gpuctl_async.errors import NotFound
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.pools.accounting import (
    ACTIVE, NOT_READY, gpu_total, node_gpu_type, node_name, node_pool, node_ready, node_usage)
from gpuctl_async.k8s.memo import memoized

EMPTY = "empty"
POOL_INDEX = "pool"  # the node cache's index by pool label


def pool_not_found(name: str) -> NotFound:
    return NotFound(f"Pool '{name}' not found")


def _by_name(nodes: list[Obj]) -> list[Obj]:
    return sorted(nodes, key=node_name)


def sorted_nodes(cache: ClusterCache) -> list[Obj]:
    """Every node by name (shared: do not mutate)."""
    return memoized(cache, "nodes by name", (cache.nodes,),
                    lambda: _by_name(list(cache.nodes.items())))


def members(cache: ClusterCache, pool: str) -> list[Obj]:
    """The pool's nodes, by name; the default pool is every node without a pool label."""
    if pool == labels.DEFAULT_POOL:
        return [n for n in sorted_nodes(cache) if node_pool(n) == labels.DEFAULT_POOL]
    return _by_name(cache.nodes.by_index(POOL_INDEX, pool))


def pool_exists(cache: ClusterCache, pool: str) -> bool:
    return pool == labels.DEFAULT_POOL or bool(cache.nodes.by_index(POOL_INDEX, pool))


def all_pools(cache: ClusterCache) -> dict[str, list[Obj]]:
    """Every pool and its nodes: ``default`` first (always there), then by name."""
    grouped: dict[str, list[Obj]] = {labels.DEFAULT_POOL: []}
    for node in sorted_nodes(cache):
        grouped.setdefault(node_pool(node), []).append(node)
    order = sorted(grouped, key=lambda pool: (pool != labels.DEFAULT_POOL, pool))
    return {pool: grouped[pool] for pool in order}


def stored_description(nodes: list[Obj]) -> str | None:
    """The description written on the pool's nodes (the first member that has one)."""
    for node in nodes:
        description = (node.get("metadata", {}).get("annotations") or {}).get(
            labels.POOL_DESCRIPTION_ANNOTATION)
        if description:
            return description
    return None


def description(pool: str, nodes: list[Obj]) -> str:
    return stored_description(nodes) or f"{pool} resource pool"


def status(nodes: list[Obj]) -> str:
    if not nodes:
        return EMPTY
    return ACTIVE if any(node_ready(n) for n in nodes) else NOT_READY


def _gpu_figures(cache: ClusterCache, nodes: list[Obj]) -> tuple[int, int, list[str]]:
    total = sum(gpu_total(n) for n in nodes)
    used = sum(node_usage(cache, node_name(n)).gpu for n in nodes)
    types = sorted({t for n in nodes if (t := node_gpu_type(n))})
    return total, used, types


def pool_summary(cache: ClusterCache, pool: str, nodes: list[Obj]) -> dict:
    """A list entry (camelCase, as the original's pool list)."""
    total, used, types = _gpu_figures(cache, nodes)
    return {"name": pool, "description": description(pool, nodes), "gpuTotal": total,
            "gpuUsed": used, "gpuFree": max(total - used, 0), "gpuType": types,
            "nodeCount": len(nodes), "status": status(nodes)}


def list_pools(cache: ClusterCache) -> list[dict]:
    """Every pool's summary; recomputed only after a node or pod changed."""
    return memoized(cache, "pool list", (cache.nodes, cache.pods), lambda: [
        pool_summary(cache, pool, nodes) for pool, nodes in all_pools(cache).items()])


def pool_detail(cache: ClusterCache, pool: str) -> dict:
    """One pool (snake_case, as the original's pool detail); 404 for a pool without nodes."""
    return memoized(cache, ("pool", pool), (cache.nodes, cache.pods),
                    lambda: _pool_detail(cache, pool))


def _pool_detail(cache: ClusterCache, pool: str) -> dict:
    if not pool_exists(cache, pool):
        raise pool_not_found(pool)
    nodes = members(cache, pool)
    total, used, types = _gpu_figures(cache, nodes)
    return {"name": pool, "description": description(pool, nodes),
            "nodes": [node_name(n) for n in nodes], "node_count": len(nodes),
            "gpu_total": total, "gpu_used": used, "gpu_free": max(total - used, 0),
            "gpu_types": types, "status": status(nodes)}


def pool_jobs(cache: ClusterCache, pool: str) -> list[str]:
    """``namespace/name`` of every gpuctl controller placed in the pool (and not being
    deleted)."""
    return sorted(
        f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        for informer in cache.controllers()
        for obj in informer.items()
        if (obj["metadata"].get("labels") or {}).get(labels.POOL) == pool
        and not obj["metadata"].get("deletionTimestamp")
    )
