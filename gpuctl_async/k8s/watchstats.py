"""What an informer counts about itself, read by the metrics collector when it is scraped.

Plain numbers, no Prometheus types: the informer only adds to them; how they are exposed is
``gpuctl_async.metrics.collectors``' business.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

# Seconds from a write's answer until the cache holds it (see observe_write_lag).
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class WatchStats:
    lists: int = 0
    """Complete lists: the first, then one per relist after ``410 Gone``."""
    watches: int = 0
    """Watch requests sent: the first after each list, then one per restart."""
    inactivity_restarts: int = 0
    """Watches given up for silence (``inactivity_timeout``)."""
    events: int = 0
    """Watch events handled (bookmarks included)."""
    last_event: float | None = None
    """``time.time()`` of the last watch event or completed list."""
    lag_counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    lag_sum: float = 0.0

    def listed(self) -> None:
        self.lists += 1
        self.last_event = time.time()

    def event(self) -> None:
        self.events += 1
        self.last_event = time.time()

    def observe_write_lag(self, seconds: float) -> None:
        """How long after the API server answered a write of ours the cache showed it: the
        one cache lag that can be measured without trusting clocks (creation and
        managedFields timestamps have one-second resolution and another machine's clock)."""
        self.lag_counts[bisect.bisect_left(LAG_BUCKETS, seconds)] += 1
        self.lag_sum += seconds
