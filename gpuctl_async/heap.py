"""Keeping the cyclic garbage collector off the caches.

After the first list the caches hold millions of small dicts and lists (50,000 pods are some
two million objects). CPython's cyclic collector walks every tracked object on a full
collection, which then holds the event loop for hundreds of milliseconds, for nothing: cached
objects are plain JSON trees, freed by reference counting when replaced.

- While the caches fill, automatic collection is paused: the heap grows by millions of
  objects then, and each growth by a quarter triggered another full pass over all of it
  (measured: ~18 % of the start-up time at 20,000 pods, more at 150,000). Nothing of the
  lists is cyclic garbage, so nothing is lost by waiting.
- Once every cache has synced, :func:`freeze_when_synced` moves everything alive to the
  collector's permanent generation (``gc.freeze()``, what CPython's documentation
  recommends for a pre-loaded heap), then lets the collector run again; objects made later
  are collected as usual. :func:`thaw` gives them back on shutdown (an app in a test process
  must not leave the process's heap frozen).

:func:`young_threshold` spaces the collector's young passes (setting
``gc_young_threshold``). Each open log socket holds ~100 tracked objects for its life; with
CPython's default (a young pass every 700 net allocations) the traffic of thousands of sockets
runs young passes many times a second, each promotes the survivors, and every time those
reach a quarter of the old generation a full pass walks every socket's objects: 160-440 ms
with 2,000 log streams on the bench machine, holding every line in flight (issue 18's delay
p99). Spaced passes let short-lived objects die before a pass sees them.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from gpuctl_async.k8s.cache import ClusterCache

log = logging.getLogger(__name__)


async def freeze_when_synced(cache: ClusterCache, timeout: float = 600.0) -> None:
    """Pause automatic collection until every cache has synced, then freeze the heap. Start
    it before the caches; cancelling it (shutdown) lets the collector run again, and so does
    a cluster that keeps the caches from syncing for ``timeout`` seconds (its retries'
    exceptions are cyclic garbage: it must not pile up for good)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if not await cache.wait_synced(timeout):
            return
        # No collection first: it would walk every cached object once (~1 s per 50,000
        # pods, holding the loop just as the service became ready), to find only the few
        # cycles of the initial lists' requests (JSON trees are freed by reference counting);
        # those few stay in the frozen heap for good.
        gc.freeze()
        log.info("Caches synced: their objects are out of the garbage collector's passes")
    finally:
        if was_enabled:
            gc.enable()


def thaw() -> None:
    gc.unfreeze()


def young_threshold(allocations: int) -> tuple[int, int, int]:
    """Run young passes every ``allocations`` net allocations (0: leave it); returns the
    thresholds before, for :func:`restore_thresholds` at shutdown."""
    before = gc.get_threshold()
    if allocations > 0:
        gc.set_threshold(allocations, *before[1:])
    return before


def restore_thresholds(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(*thresholds)


async def pace_young_passes(interval: float) -> None:
    """A young pass every ``interval`` seconds besides CPython's own (none while collection
    is paused, as the caches fill). Only the young generation: CPython still decides when the
    older ones are collected, from its own counts."""
    while True:
        await asyncio.sleep(interval)
        if gc.isenabled():
            gc.collect(0)
