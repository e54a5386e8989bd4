"""Node label writes, one at a time per app.

Pool membership and label writes check the node cache, then patch: two requests interleaving
between the check and the patch could both pass it (two pools taking one node, two values for
one new label). Holding one lock per app across check, patch and the wait for the cache to
show the patch closes that window within a process.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from gpuctl_async.k8s.cache import ClusterCache

P = ParamSpec("P")
R = TypeVar("R")
_locks: weakref.WeakKeyDictionary[ClusterCache, asyncio.Lock] = weakref.WeakKeyDictionary()


def one_at_a_time(write: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run ``write(writer, cache, ...)`` holding the node-write lock of ``cache``."""
    @functools.wraps(write)
    async def serialized(*args: P.args, **kwargs: P.kwargs) -> R:
        cache = args[1]
        async with _locks.setdefault(cache, asyncio.Lock()):  # type: ignore[arg-type]
            return await write(*args, **kwargs)
    return serialized
