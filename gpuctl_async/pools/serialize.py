"""Node label writes, one at a time per app, re-run when the node changed under them.

Pool membership and label writes check the node cache, then patch: two requests interleaving
between the check and the patch could both pass it (two pools taking one node, two values for
one new label). Holding one lock per app across check, patch and the wait for the cache to
show the patch closes that window within a process; across processes (replicas, kubectl) the
patches carry the node's resourceVersion, and a write refused as stale is re-run, checks and
all, once the cache has caught up.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from gpuctl_async.errors import Conflict
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.pools.patching import StaleNode

P = ParamSpec("P")
R = TypeVar("R")
_locks: weakref.WeakKeyDictionary[ClusterCache, asyncio.Lock] = weakref.WeakKeyDictionary()
ATTEMPTS = 3
CATCH_UP_SECONDS = 5.0


def one_at_a_time(write: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run ``write(writer, cache, ...)`` holding the node-write lock of ``cache``."""
    @functools.wraps(write)
    async def serialized(*args: P.args, **kwargs: P.kwargs) -> R:
        cache: ClusterCache = args[1]  # type: ignore[assignment]
        async with _locks.setdefault(cache, asyncio.Lock()):
            node = ""
            for _ in range(ATTEMPTS):
                try:
                    return await write(*args, **kwargs)
                except StaleNode as stale:
                    node, seen = stale.node, stale.version
                await cache.nodes.wait_for(lambda: _version(cache, node) != seen,
                                           CATCH_UP_SECONDS)
            raise Conflict(f"Node '{node}' kept changing while it was being updated; try again")
    return serialized


def _version(cache: ClusterCache, node: str) -> str | None:
    return (cache.nodes.get("", node) or {}).get("metadata", {}).get("resourceVersion")
