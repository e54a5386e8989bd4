"""Node labels: reads from the node cache, single-key writes through :class:`NodeWriter`.

Keys and values are checked with Kubernetes' own rules (and messages) before any API call.
Adding a label that exists with another value needs ``overwrite``; updating or deleting one
needs it to exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from gpuctl_async.errors import Conflict, GpuctlError, NotFound, ValidationFailed
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.kuberules.naming import label_key_errors, label_value_errors
from gpuctl_async.pools.accounting import node_labels, node_name, node_pool
from gpuctl_async.pools.patching import NodeChange, NodeWriter, node_not_found
from gpuctl_async.pools.serialize import one_at_a_time

log = logging.getLogger(__name__)

BATCH_CONCURRENCY = 8


def is_gpu_label(key: str) -> bool:
    return key.startswith("nvidia.com/gpu-") or key.endswith(("gpu-type", "gpu-model"))


def check_label(key: str, value: str | None = None) -> None:
    """400 naming the key or value and the Kubernetes rule it breaks."""
    details = {}
    if problems := label_key_errors(key):
        details["key"] = problems
    if value is not None and (problems := label_value_errors(value)):
        details["value"] = problems
    if details:
        given = {"key": key, "value": value}
        raise ValidationFailed("; ".join(f"Invalid label {field} '{given[field]}': "
                                         f"{'; '.join(problems)}"
                                         for field, problems in details.items()),
                               details=details)


def get_node(cache: ClusterCache, name: str) -> Obj:
    node = cache.nodes.get("", name)
    if node is None:
        raise node_not_found(name)
    return node


def _label_not_found(node: str, key: str) -> NotFound:
    return NotFound(f"Label '{key}' not found on node '{node}'")


def _existing_value(node: Obj, key: str) -> str:
    labels = node_labels(node)
    if key not in labels:
        raise _label_not_found(node_name(node), key)
    return labels[key]


def _refuse_conflict(node: Obj, key: str, value: str, overwrite: bool) -> bool:
    """Whether the node needs the write; 409 when it holds another value and not overwriting."""
    current = node_labels(node).get(key)
    if current is not None and current != value and not overwrite:
        raise Conflict(f"Label '{key}' already exists on node '{node_name(node)}' with value "
                       f"'{current}'; set overwrite to replace it")
    return current != value


# -- reads ------------------------------------------------------------------------------

def node_labels_view(cache: ClusterCache, name: str) -> dict:
    return {"node": name, "labels": dict(node_labels(get_node(cache, name)))}


def get_label(cache: ClusterCache, name: str, key: str) -> dict:
    node = get_node(cache, name)
    created = node["metadata"].get("creationTimestamp")
    # Kubernetes keeps no per-label times; both are the node's, as in the original.
    return {"nodeName": name, "label": {"key": key, "value": _existing_value(node, key),
                                        "createdAt": created, "lastUpdatedAt": created}}


def labels_overview(cache: ClusterCache) -> dict[str, list[str]]:
    """Every label key on any node, with its distinct values (both sorted)."""
    values: dict[str, set[str]] = {}
    for node in cache.nodes.items():
        for key, value in node_labels(node).items():
            values.setdefault(key, set()).add(value)
    return {key: sorted(values[key]) for key in sorted(values)}


def _sorted_nodes(cache: ClusterCache) -> list[Obj]:
    return sorted(cache.nodes.items(), key=node_name)


def nodes_with_label(cache: ClusterCache, key: str) -> list[dict]:
    return [{"nodeName": node_name(n), "labelKey": key, "labelValue": node_labels(n)[key]}
            for n in _sorted_nodes(cache) if key in node_labels(n)]


def gpu_labels(cache: ClusterCache) -> list[dict]:
    return [{"nodeName": node_name(n),
             "gpuLabels": [{"key": k, "value": v} for k, v in sorted(node_labels(n).items())
                           if is_gpu_label(k)],
             "boundPools": [node_pool(n)]}
            for n in _sorted_nodes(cache)]


# -- writes -----------------------------------------------------------------------------

@one_at_a_time
async def add_label(writer: NodeWriter, cache: ClusterCache, name: str, key: str, value: str,
                    *, overwrite: bool = False) -> dict:
    check_label(key, value)
    if _refuse_conflict(get_node(cache, name), key, value, overwrite):
        await writer.apply([NodeChange(name, {key: value})])
        log.info("Labelled node %s: %s=%s", name, key, value)
    return {"nodeName": name, "label": {key: value}, "message": "Label added"}


@one_at_a_time
async def update_label(writer: NodeWriter, cache: ClusterCache, name: str, key: str,
                       value: str) -> dict:
    check_label(key, value)
    if _existing_value(get_node(cache, name), key) != value:
        await writer.apply([NodeChange(name, {key: value})])
        log.info("Relabelled node %s: %s=%s", name, key, value)
    return {"node": name, "label": f"{key}={value}", "message": "Label updated"}


@one_at_a_time
async def delete_label(writer: NodeWriter, cache: ClusterCache, name: str, key: str) -> dict:
    _existing_value(get_node(cache, name), key)
    await writer.apply([NodeChange(name, {key: None})])
    log.info("Removed label %s from node %s", key, name)
    return {"node": name, "label": key, "message": "Label deleted"}


async def label_nodes(writer: NodeWriter, cache: ClusterCache, names: Iterable[str], key: str,
                      value: str, *, overwrite: bool = False) -> dict:
    """Label each node on its own: one node's failure is reported, never spreads."""
    check_label(key, value)
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(name: str) -> dict | None:
        async with limit:
            try:
                await add_label(writer, cache, name, key, value, overwrite=overwrite)
            except GpuctlError as exc:
                return {"nodeName": name, "error": exc.message}
        return None

    names = list(dict.fromkeys(names))
    failures = await asyncio.gather(*(one(n) for n in names))
    failed = [f for f in failures if f is not None]
    failed_names = {f["nodeName"] for f in failed}
    return {"success": [n for n in names if n not in failed_names], "failed": failed,
            "message": "Batch labelling finished"}
