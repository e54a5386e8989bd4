"""Token buckets, one per client key, in bounded memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# Hard cap on remembered clients, whatever their traffic: ~100 bytes each.
MAX_CLIENTS = 65_536


class TokenBuckets:
    """Each key may take ``burst`` tokens at once and ``rate`` more per second.

    A bucket untouched for ``burst / rate`` seconds is full again, which is the same as having
    none, so it is forgotten; buckets are kept oldest-touched first and the forgetting is done
    from the front on every call (amortised O(1)). Memory is then bounded by the clients seen
    within that window, and never more than ``max_clients`` (the least recently seen are
    dropped first: they get a full bucket back, the worst an overflow can do).
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.idle_after = burst / rate
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, touched

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if there was one, else the seconds until there is."""
        now = self._clock()
        self._forget_idle(now)
        entry = self._buckets.pop(key, None)
        tokens = self.burst if entry is None else min(
            self.burst, entry[0] + (now - entry[1]) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            _, touched = next(iter(self._buckets.values()))
            if now - touched < self.idle_after:
                return
            self._buckets.popitem(last=False)
