"""What ``/ready`` reports: the API server answers and every cache has synced.

Components (caches, later) register a check that returns why they are not ready, or None.
Reachability is probed with ``GET /version`` and a success is remembered for a few seconds,
so a readiness probe every few seconds costs the API server at most one tiny request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gpuctl_async.errors import GpuctlError
from gpuctl_async.k8s.client import KubeApiError

Check = Callable[[], str | None]

_PROBE_TIMEOUT = 3.0


class Readiness:
    def __init__(self, kube, *, probe_interval: float = 5.0):
        self._kube = kube
        self._probe_interval = probe_interval
        self._checks: dict[str, Check] = {}
        self._last_success = float("-inf")
        self._probe: asyncio.Task[str | None] | None = None

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def not_ready_reason(self) -> str | None:
        """Why the service is not ready, or None when it is."""
        reason = await self._api_reason()
        if reason:
            return reason
        for check in self._checks.values():
            reason = check()
            if reason:
                return reason
        return None

    async def _api_reason(self) -> str | None:
        if time.monotonic() - self._last_success < self._probe_interval:
            return None
        # Concurrent /ready calls share one probe instead of each sending their own.
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_api())
        return await asyncio.shield(self._probe)

    async def _probe_api(self) -> str | None:
        try:
            await self._kube.request("GET", "/version", timeout=_PROBE_TIMEOUT)
        except KubeApiError as exc:
            # It answered, with a refusal (e.g. 401): say that, not "not answering".
            return exc.message
        except GpuctlError as exc:
            return f"Kubernetes API server is not answering: {exc.message}"
        self._last_success = time.monotonic()
        return None

    async def close(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
