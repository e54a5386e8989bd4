"""Answers computed from the caches, reused until a cache they read changes.

An informer's ``resource_version`` moves with every change it applies, so the versions of the
caches an answer reads say whether it can still be given as it is. At 5,000 nodes, sorting
them and summing pools on every request held the loop for milliseconds per request; with
this a quiet cluster's pool list is a dictionary lookup, and a job detail asked for again
within the same second (ages count whole seconds) is its bytes from the last time (job pages
are kept by the listing itself: ``JobListing.page_json``). Answers are shared: never mutate
one. The memos are kept on the :class:`ClusterCache` they are computed from.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.informer import Informer

T = TypeVar("T")

MAX_ENTRIES = 2048  # per kind of answer (the first part of a tuple key)


def memoized(cache: ClusterCache, key: Hashable, reads: Sequence[Informer],
             compute: Callable[[], T], *, also: Hashable = None) -> T:
    """``compute()``, or its earlier result if none of ``reads`` changed since, nor ``also``
    (the version of some other state the answer reads, e.g. a ledger's)."""
    versions = (*((informer.synced, informer.resource_version) for informer in reads), also)
    kind = key[0] if isinstance(key, tuple) else key
    memo = cache.memos.get(kind)
    if memo is None:
        memo = cache.memos[kind] = {}
    known = memo.get(key)
    if known is not None and known[0] == versions:
        return known[1]
    value = compute()
    if len(memo) >= MAX_ENTRIES:
        memo.clear()  # e.g. last second's pages: start again rather than grow
    memo[key] = (versions, value)
    return value
