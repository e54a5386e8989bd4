"""A live job list for one client: a snapshot, then each job's changes, coalesced.

The first frame is ``{"type": "snapshot", "items": [JobItem...]}``: what ``GET /api/v1/jobs``
would list with the same filters, within the namespaces the caller may list pods in (None:
all). Then ``{"type": "ADDED"|"MODIFIED"|"DELETED", "item": JobItem}`` as jobs change; a job's
changes within one window go out as its latest state, so a client gets at most one frame per
job per window. The transport (the job feed WebSocket, a subscription of the multiplexed
socket) only says how a frame is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Container

from gpuctl_async.jobs.listing import JobListing, Row

COALESCE_SECONDS = 0.2

Send = Callable[[dict], Awaitable[None]]


class JobFeed:
    def __init__(self, listing: JobListing, filters: dict[str, str],
                 within: Container[str] | None, *, window: float = COALESCE_SECONDS):
        self.listing = listing
        self.filters = {key: value for key, value in filters.items() if value}
        self.within = within
        self.window = window
        self._pending: dict[tuple[str, str], tuple[str, Row]] = {}
        self._wake = asyncio.Event()

    def _matches(self, row: Row) -> bool:
        if self.within is not None and row.item["namespace"] not in self.within:
            return False
        return all((row.pool if key == "pool" else row.item.get(key)) == value
                   for key, value in self.filters.items())

    def _on_change(self, event: str, row: Row) -> None:
        if not self._matches(row):
            return
        key = (row.item["namespace"], row.item["jobId"])
        earlier = self._pending.get(key)
        if earlier is not None and earlier[0] == "ADDED" and event != "DELETED":
            event = "ADDED"  # the client has not heard of it yet
        self._pending[key] = (event, row)
        self._wake.set()

    async def run(self, send: Send) -> None:
        """Send the snapshot, then changes, until cancelled."""
        stop_listening = self.listing.listen(self._on_change)  # before the snapshot: no gap
        try:
            await send({"type": "snapshot",
                        "items": self.listing.items(within=self.within, **self.filters)})
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch = list(self._pending.values())
                self._pending.clear()
                now = time.time()
                for event, row in batch:
                    await send({"type": event, "item": row.render(now)})
                await asyncio.sleep(self.window)  # the coalescing window, not a wait
        finally:
            stop_listening()
