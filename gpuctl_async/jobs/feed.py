"""A live job list for one client: a snapshot, then each job's changes, coalesced.

The first frame is ``{"type": "snapshot", "items": [JobItem...]}``: what ``GET /api/v1/jobs``
would list with the same filters, within the namespaces the caller may list pods in. Then
``{"type": "ADDED"|"MODIFIED"|"DELETED", "item": JobItem}`` as jobs change; a job's changes
within one window go out as its latest state, so a client gets at most one frame per job per
window. Where the caller may look (``scope``) is asked again before every batch, so a removed
binding applies within the decision TTL (cached decisions make it free); a refusal or a
failed check ends the feed with that error. The transport (the job feed WebSocket, a
subscription of the multiplexed socket) says how a frame is sent and how an error ends it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass

from gpuctl_async.jobs.listing import JobListing, Row

COALESCE_SECONDS = 0.2

Send = Callable[[str, bytes], Awaitable[None]]
"""``send(type, frame)``: a frame's ``type`` and the frame as JSON. Frames are assembled from
each row's cached JSON (``Row.encode``), so a change is encoded once for all the feeds that
send it, not once per socket."""
Scope = Callable[[], Awaitable[Container[str] | None]]
"""Where the caller may list pods now (None: everywhere); raises GpuctlError (Forbidden...)."""


@dataclass
class FeedStats:
    """Read by the metrics collector at scrape time (every feed of the app counts here)."""

    frames_sent: int = 0
    coalesced: int = 0
    """Changes folded into a later one for the same job within a window (not sent)."""


class JobFeed:
    def __init__(self, listing: JobListing, filters: dict[str, str], scope: Scope, *,
                 stats: FeedStats, window: float = COALESCE_SECONDS):
        self.listing = listing
        self.stats = stats
        self.filters = {key: value for key, value in filters.items() if value}
        self.scope = scope
        self.window = window
        self._pending: dict[tuple[str, str], tuple[str, Row]] = {}
        self._wake = asyncio.Event()

    def _matches(self, row: Row) -> bool:
        return all((row.pool if key == "pool" else row.item.get(key)) == value
                   for key, value in self.filters.items())

    def _on_change(self, event: str, row: Row) -> None:
        if not self._matches(row):
            return
        key = (row.item["namespace"], row.item["jobId"])
        earlier = self._pending.get(key)
        if earlier is not None:
            self.stats.coalesced += 1
            if earlier[0] == "ADDED" and event != "DELETED":
                event = "ADDED"  # the client has not heard of it yet
        self._pending[key] = (event, row)
        self._wake.set()

    async def run(self, send: Send) -> None:
        """Send the snapshot, then changes, until cancelled or refused (GpuctlError)."""
        within = await self.scope()
        # Before the snapshot: no gap. A namespace filter is applied by the listing itself.
        stop_listening = self.listing.listen(self._on_change, self.filters.get("namespace"))
        try:
            await send("snapshot", b'{"type":"snapshot","items":%s}'
                       % self.listing.items_json(within=within, **self.filters))
            self.stats.frames_sent += 1
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch = list(self._pending.values())
                self._pending.clear()
                within = await self.scope()
                now = time.time()
                for event, row in batch:
                    if within is None or row.item["namespace"] in within:
                        await send(event, b'{"type":"%s","item":%s}'
                                   % (event.encode(), row.encode(now)))
                        self.stats.frames_sent += 1
                await asyncio.sleep(self.window)  # the coalescing window, not a wait
        finally:
            stop_listening()
