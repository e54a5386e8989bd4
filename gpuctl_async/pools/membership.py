"""Pool writes: create, update and delete pools; move one node in or out of a pool.

Every write is checked in full against the cache before any node is patched (missing nodes →
404 naming them all; nodes in another pool → 409 naming them, unless ``overwrite``), and the
patches are all-or-nothing (:class:`NodeWriter`). Joining a pool sets the node's pool label,
its GPU type label when one is given, and the pool's description annotation; leaving removes
the pool label and the description (the GPU type stays: it describes the hardware).

Membership writes run one at a time per app, so each one's checks see what the one before
it wrote (a write returns only once the cache shows it). Several replicas of the service can
still race: Kubernetes has no transaction across nodes.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpuctl_async.errors import BadRequest, Conflict, NotFound
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.pools.accounting import node_labels, node_pool
from gpuctl_async.pools.patching import NodeChange, NodeWriter, node_not_found
from gpuctl_async.pools.serialize import one_at_a_time
from gpuctl_async.pools.pool_views import members, pool_exists, pool_jobs, pool_not_found, \
    stored_description

DEFAULT = labels.DEFAULT_POOL
_DEFAULT_IS_IMPLICIT = ("the default pool is every node without a pool label; "
                        "move nodes out of it by adding them to another pool")


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _nodes(cache: ClusterCache, names: list[str]) -> list[Obj]:
    """The named nodes from the cache; 404 naming every one that does not exist."""
    missing = [n for n in names if cache.nodes.get("", n) is None]
    if missing:
        raise NotFound(f"Nodes not found: {', '.join(missing)}")
    return [cache.nodes.get("", n) for n in names]  # type: ignore[misc]


def _refuse_other_pools(nodes: list[Obj], pool: str, overwrite: bool) -> None:
    """409 naming the nodes that already belong to another named pool, unless overwriting."""
    if overwrite:
        return
    taken = [f"{n['metadata']['name']} (pool {node_pool(n)})" for n in nodes
             if labels.POOL in node_labels(n) and node_pool(n) != pool]
    if taken:
        raise Conflict(f"Nodes already in another pool: {', '.join(taken)}; "
                       "set overwrite to move them")


def _join(node: str, pool: str, description: str | None, gpu_type: str | None) -> NodeChange:
    change = NodeChange(node, {labels.POOL: pool},
                        {labels.POOL_DESCRIPTION_ANNOTATION: description or None})
    if gpu_type:
        change.labels[labels.GPU_TYPE] = gpu_type
    return change


def _leave(node: str) -> NodeChange:
    return NodeChange(node, {labels.POOL: None}, {labels.POOL_DESCRIPTION_ANNOTATION: None})


def _refuse_default(pool: str, action: str) -> None:
    if pool == DEFAULT:
        raise BadRequest(f"Cannot {action} pool '{DEFAULT}': {_DEFAULT_IS_IMPLICIT}")


def _result(pool: str, status: str, message: str, nodes: list[str]) -> dict:
    return {"name": pool, "status": status, "message": message, "nodes": nodes}


@one_at_a_time
async def create_pool(writer: NodeWriter, cache: ClusterCache, name: str, node_names: list[str],
                      *, description: str | None = None, gpu_type: str | None = None,
                      overwrite: bool = False) -> dict:
    """Label ``node_names`` (at least one: a pool without nodes does not exist) into ``name``."""
    _refuse_default(name, "create")
    if pool_exists(cache, name):
        raise Conflict(f"Pool '{name}' already exists; change it with PUT /api/v1/pools/{name}")
    node_names = _unique(node_names)
    _refuse_other_pools(_nodes(cache, node_names), name, overwrite)
    await writer.apply([_join(n, name, description, gpu_type) for n in node_names])
    return _result(name, "created", "Resource pool created", node_names)


@one_at_a_time
async def update_pool(writer: NodeWriter, cache: ClusterCache, name: str, *,
                      node_names: list[str] | None = None, description: str | None = None,
                      gpu_type: str | None = None, overwrite: bool = False) -> dict:
    """Replace the membership (when ``node_names``, at least one, is given), the description
    and the GPU type."""
    _refuse_default(name, "update")
    current = [n["metadata"]["name"] for n in members(cache, name)]
    if not current:
        raise pool_not_found(name)
    wanted = current if node_names is None else _unique(node_names)
    added = [n for n in wanted if n not in current]
    _refuse_other_pools(_nodes(cache, added), name, overwrite)
    if description is None:
        description = stored_description(members(cache, name))
    changes = [_join(n, name, description, gpu_type) for n in wanted]
    changes += [_leave(n) for n in current if n not in wanted]
    await writer.apply(changes)
    return _result(name, "updated", "Resource pool updated", wanted)


@one_at_a_time
async def delete_pool(writer: NodeWriter, cache: ClusterCache, name: str) -> dict:
    _refuse_default(name, "delete")
    nodes = [n["metadata"]["name"] for n in members(cache, name)]
    if not nodes:
        raise pool_not_found(name)
    jobs = pool_jobs(cache, name)
    if jobs:
        raise Conflict(f"Cannot delete pool '{name}' because it has associated jobs: "
                       f"{', '.join(jobs)}. Please delete these jobs first.")
    await writer.apply([_leave(n) for n in nodes])
    return _result(name, "deleted", "Resource pool deleted", nodes)


@one_at_a_time
async def add_node_to_pool(writer: NodeWriter, cache: ClusterCache, node_name: str, pool: str,
                           *, overwrite: bool = False) -> dict:
    """Put the node in ``pool`` (``default``: take it out of its named pool)."""
    node = cache.nodes.get("", node_name)
    if node is None:
        raise node_not_found(node_name)
    _refuse_other_pools([node], pool, overwrite)
    if node_pool(node) != pool:
        change = _leave(node_name) if pool == DEFAULT else \
            _join(node_name, pool, stored_description(members(cache, pool)), None)
        await writer.apply([change])
    return {"node": node_name, "pool": pool, "message": "Node added to resource pool"}


@one_at_a_time
async def remove_node_from_pool(writer: NodeWriter, cache: ClusterCache, node_name: str,
                                pool: str) -> dict:
    _refuse_default(pool, "remove nodes from")
    node = cache.nodes.get("", node_name)
    if node is None:
        raise node_not_found(node_name)
    if node_pool(node) != pool:
        raise NotFound(f"Node '{node_name}' is not in pool '{pool}' "
                       f"(it is in pool '{node_pool(node)}')")
    await writer.apply([_leave(node_name)])
    return {"node": node_name, "pool": pool, "message": "Node removed from resource pool"}
