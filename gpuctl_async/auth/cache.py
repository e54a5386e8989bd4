"""A small bounded cache of review answers with per-entry TTLs and coalesced lookups.

A warm hit is one dict lookup and a clock read: reads with auth on must cost no API calls and
next to no time. Concurrent misses for the same key share one lookup, so a burst of requests
with a new token (or a dashboard opening many pages) makes one review, not one each. Failures
of the lookup itself (API server unreachable) are not cached: the next request retries.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ReviewCache(Generic[V]):
    def __init__(self, *, max_size: int, clock: Callable[[], float] = time.monotonic):
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[V]] = {}
        self.hits = 0
        """Fresh answers found (no review needed), for metrics."""

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: Hashable) -> tuple[bool, V | None]:
        """(True, value) for a fresh entry, else (False, None); no lookup."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self.hits += 1
                return True, entry[1]
            del self._entries[key]
        return False, None

    async def get(self, key: Hashable, lookup: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        """The cached value, or ``lookup()``'s ``(value, ttl seconds)``, stored for ttl."""
        fresh, value = self.peek(key)
        if fresh:
            return value  # type: ignore[return-value]
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(self._fill(key, lookup))
            pending.add_done_callback(_retrieve)
        # Shielded: one waiter giving up (client gone) must not cancel the others' lookup.
        return await asyncio.shield(pending)

    async def _fill(self, key: Hashable, lookup: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        try:
            value, ttl = await lookup()
            if ttl > 0:
                self._entries[key] = (self._clock() + ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_size:
                    self._entries.popitem(last=False)
            return value
        finally:
            del self._pending[key]

    def clear(self) -> None:
        self._entries.clear()


def _retrieve(future: asyncio.Future) -> None:
    """Mark the outcome seen even if every waiter left, so asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()
