"""A controller's work queue: deduplicated keys, one worker task, delayed retries.

Change notifications (store listeners, which must not write) only ``add`` keys; the worker
task then calls the synchronous ``handler(key)``, which reads and writes the store directly
(every store call is atomic on the loop). A handler returning a number asks for the key
again after that many seconds. ``stop()`` cancels the worker and pending retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

# Keys handled before the worker lets the loop serve requests again.
_BATCH = 200


class WorkQueue:
    def __init__(self, name: str, handler: Callable[[Hashable], float | None]):
        self.name = name
        self._handler = handler
        self._pending: dict[Hashable, None] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work(),
                                                           name=f"sim-{self.name}")

    async def stop(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def add(self, key: Hashable) -> None:
        if self._closed:
            return
        self._pending[key] = None
        self._wakeup.set()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (an earlier pending retry wins)."""
        if self._closed or key in self._timers:
            return

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = asyncio.get_running_loop().call_later(delay, fire)

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            handled = 0
            while self._pending:
                key = next(iter(self._pending))
                del self._pending[key]
                try:
                    retry = self._handler(key)
                except Exception:
                    log.exception("simulated %s failed on %r", self.name, key)
                    retry = 1.0
                if retry is not None:
                    self.add_after(key, retry)
                handled += 1
                if handled % _BATCH == 0:
                    await asyncio.sleep(0)
