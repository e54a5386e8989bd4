"""Keeping the cyclic garbage collector off the caches.

After the first list the caches hold millions of small dicts and lists (50,000 pods are some
two million objects). CPython's cyclic collector walks every tracked object on a full
collection, which then holds the event loop for hundreds of milliseconds, for nothing: cached
objects are plain JSON trees, freed by reference counting when replaced. Once every cache
has synced, :func:`freeze_when_synced` moves everything alive to the collector's permanent
generation (``gc.freeze()``, what CPython's documentation recommends for a pre-loaded heap);
objects made later are collected as usual. :func:`thaw` gives them back on shutdown (an app
in a test process must not leave the process's heap frozen).
"""

from __future__ import annotations

import gc
import logging

from gpuctl_async.k8s.cache import ClusterCache

log = logging.getLogger(__name__)


async def freeze_when_synced(cache: ClusterCache, timeout: float = 3600.0) -> None:
    if not await cache.wait_synced(timeout):
        return
    gc.collect()  # the garbage of the initial lists goes first, not into the frozen heap
    gc.freeze()
    log.info("Caches synced: their objects are out of the garbage collector's passes")


def thaw() -> None:
    gc.unfreeze()
