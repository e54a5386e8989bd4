"""What ``/ready`` reports: the API server answers and every cache has synced.

Components (the caches) register a check that returns why they are not ready (a list of
reasons; empty when ready).
Reachability is probed with ``GET /version`` and a success is remembered for a few seconds,
so a readiness probe every few seconds costs the API server at most one tiny request.
Every reason is reported, not only the first: an operator sees the whole picture at once.
The last probe's outcome stays readable (:attr:`Readiness.api_error`) for metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from gpuctl_async.errors import GpuctlError
from gpuctl_async.k8s.client import KubeApiError

Check = Callable[[], Iterable[str]]

_PROBE_TIMEOUT = 3.0


class Readiness:
    def __init__(self, kube, *, probe_interval: float = 5.0):
        self._kube = kube
        self._probe_interval = probe_interval
        self._checks: dict[str, Check] = {}
        self._last_success = float("-inf")
        self._probe: asyncio.Task[str | None] | None = None
        self.api_error: str | None = None
        """Why the last reachability probe failed; None: it succeeded (or none ran yet)."""
        self.api_probed = False

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def not_ready_reasons(self) -> list[str]:
        """Every reason the service is not ready; empty when it is."""
        reason = await self._api_reason()
        return ([reason] if reason else []) + self.check_reasons()

    def check_reasons(self) -> list[str]:
        """The registered checks' reasons (no probe: cheap enough for a metrics scrape)."""
        return [reason for check in self._checks.values() for reason in check()]

    async def _api_reason(self) -> str | None:
        if time.monotonic() - self._last_success < self._probe_interval:
            return None
        # Concurrent /ready calls share one probe instead of each sending their own.
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_api())
        self.api_error = await asyncio.shield(self._probe)
        self.api_probed = True
        return self.api_error

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
