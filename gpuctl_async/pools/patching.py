"""Writing node labels and annotations: all-or-nothing across nodes, read-your-writes.

Each write is a JSON merge patch of exactly the keys it changes (``null`` removes one), so a
concurrent change to any other label or annotation of the node is never lost. It also carries
the resourceVersion of the node the caller's checks saw: if the node changed since (another
replica of this service, kubectl), the API server answers 409 and :class:`StaleNode` tells the
caller to look again (``serialize.one_at_a_time`` re-runs the whole check-and-write). A change that
spans several nodes is validated by the caller first; if a patch still fails midway, the nodes
already patched get their previous values back. After the patches, the call waits (bounded)
until the node cache shows them, so the client's next read sees its write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpuctl_async.errors import NotFound
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.resources import NODES

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
PATCH_CONCURRENCY = 8

Values = dict[str, str | None]


def node_not_found(name: str) -> NotFound:
    return NotFound(f"Node '{name}' not found")


class StaleNode(Exception):
    """The node changed after the checks were made against the cache."""

    def __init__(self, node: str, version: str | None):
        super().__init__(f"node {node} changed since resourceVersion {version}")
        self.node = node
        self.version = version


@dataclass
class NodeChange:
    """New values (``None``: remove) for some labels and annotations of one node."""

    node: str
    labels: Values = field(default_factory=dict)
    annotations: Values = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.labels or self.annotations)

    def patch(self, version: str | None = None) -> dict:
        metadata: dict = {"resourceVersion": version} if version else {}
        if self.labels:
            metadata["labels"] = self.labels
        if self.annotations:
            metadata["annotations"] = self.annotations
        return {"metadata": metadata}

    def undo(self, before: Obj) -> NodeChange:
        """The change that puts back what ``before`` (the node as it was) had for these keys."""
        meta = before.get("metadata", {})
        old_labels, old_annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        return NodeChange(self.node, {k: old_labels.get(k) for k in self.labels},
                          {k: old_annotations.get(k) for k in self.annotations})

    def shown_by(self, node: Obj | None) -> bool:
        if node is None:
            return False
        meta = node.get("metadata", {})
        return (_holds(meta.get("labels") or {}, self.labels)
                and _holds(meta.get("annotations") or {}, self.annotations))


def _holds(current: Mapping[str, str], wanted: Values) -> bool:
    return all(current.get(key) == value for key, value in wanted.items())


class NodeWriter:
    def __init__(self, kube: KubeClient, cache: ClusterCache, *, settle_timeout: float):
        self.kube = kube
        self.cache = cache
        self.settle_timeout = settle_timeout

    async def apply(self, changes: Sequence[NodeChange]) -> None:
        """Patch every node, or none: on a failure, undo the patches that succeeded and raise."""
        changes = [change for change in changes if change]
        if not changes:
            return
        before = {c.node: self.cache.nodes.get("", c.node) or {} for c in changes}
        limit = asyncio.Semaphore(PATCH_CONCURRENCY)

        async def one(change: NodeChange) -> Obj:
            version = before[change.node].get("metadata", {}).get("resourceVersion")
            async with limit:
                return await self._patch(change, version)

        results = await asyncio.gather(*(one(c) for c in changes), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            done = [c for c, r in zip(changes, results) if not isinstance(r, BaseException)]
            await self._undo([c.undo(before[c.node]) for c in done])
            raise failures[0]
        await self._settle(changes, [r for r in results if isinstance(r, dict)])

    async def _patch(self, change: NodeChange, version: str | None = None) -> Obj:
        try:
            return await self.kube.request("PATCH", NODES.path(name=change.node),
                                           body=change.patch(version), content_type=MERGE_PATCH)
        except KubeApiError as exc:
            if exc.is_not_found:
                raise node_not_found(change.node) from exc
            if exc.code == 409 and version:
                raise StaleNode(change.node, version) from exc
            raise

    async def _undo(self, changes: list[NodeChange]) -> None:
        for change in changes:
            try:
                await self._patch(change)
            except Exception:  # keep undoing the others; the original failure is raised
                log.exception("Could not undo the change to node %s: %s", change.node,
                              change.patch())
            else:
                log.info("Undid the change to node %s", change.node)

    async def _settle(self, changes: list[NodeChange], written: list[Obj]) -> None:
        """Wait until the cache shows each node at the version written, or with its values."""
        versions = {n["metadata"]["name"]: n["metadata"].get("resourceVersion") for n in written}

        def shown() -> bool:
            for change in changes:
                cached = self.cache.nodes.get("", change.node)
                version = (cached or {}).get("metadata", {}).get("resourceVersion")
                if version != versions.get(change.node) and not change.shown_by(cached):
                    return False
            return True

        if not await self.cache.nodes.wait_for(shown, self.settle_timeout):
            log.warning("Node cache did not show the write to %s within %.1fs",
                        ", ".join(c.node for c in changes), self.settle_timeout)
