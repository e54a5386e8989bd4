"""Timed history compaction, as kube-apiserver drives etcd's.

Every ``interval`` seconds the API server compacts etcd up to the revision it saw one round
earlier (``--etcd-compaction-interval``, 5 minutes by default), so at least one interval of
history stays replayable and anything older answers 410 Expired. A client that resumes a
watch from a resourceVersion it has not refreshed (no event, no bookmark) for longer than
that has to relist: the simulated cluster shows it on the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from gpuctl_async.sim.store import Store


class Compactor:
    def __init__(self, store: Store, interval: float | None):
        self.store = store
        self.interval = interval

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        """A ``cleanup_ctx``: compacts while the app runs (no-op without an interval)."""
        task = asyncio.create_task(self._run(), name="sim compaction") if self.interval else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        assert self.interval
        previous = self.store.resource_version
        while True:
            await asyncio.sleep(self.interval)
            self.store.compact(previous)
            previous = self.store.resource_version
