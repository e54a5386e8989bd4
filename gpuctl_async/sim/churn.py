"""A churn generator: a steady stream of pod changes, for scale benchmarks.

``POST /_sim/churn`` (JSON, every key optional)::

    {"changesPerSecond": 200, "createsPerSecond": 5, "deletesPerSecond": 5,
     "labelSelector": "runwhere.ai/job-type", "seconds": 60}

starts (or restarts) it: ``changesPerSecond`` status writes to Running pods matching
``labelSelector`` (gpuctl's by default, so each change reaches the job list), each flipping the
first container's ``ready`` (the job list's ``ready`` column changes, so every change is a
row change and a job-feed frame) and stamping the condition ``sim.gpuctl/Churn`` whose
``message`` is the wall-clock time of the write (a watcher's lag is its receive time minus
that); plus ``createsPerSecond`` new Running pods (``churn-<n>`` in namespace ``churn``, bound
round-robin to the nodes) and ``deletesPerSecond`` deletions of the oldest of them. It stops
after ``seconds`` (0: until ``DELETE /_sim/churn``). ``GET /_sim/churn`` reports what it did:
``changes``, ``creates``, ``deletes``, ``running``, ``behindTicks`` (ticks that started late
by more than one tick: the sim could not keep the rate).

Writes go in ticks of 50 ms through the store's normal write path, so watches, the kubelets
and the controllers see ordinary changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gpuctl_async.sim.resources import resource
from gpuctl_async.sim.selectors import parse_label_selector
from gpuctl_async.sim.status import StatusError

if TYPE_CHECKING:
    from gpuctl_async.sim.kubelet import Kubelet
    from gpuctl_async.sim.store import Store

SIM_PREFIX = "/_sim"
TICK_SECONDS = 0.05
_SLICE = 5000  # pods looked at between two yields to the loop when the churn starts
CONDITION = "sim.gpuctl/Churn"
NAMESPACE = "churn"
DEFAULTS: dict[str, Any] = {"changesPerSecond": 200, "createsPerSecond": 0,
                            "deletesPerSecond": 0, "labelSelector": "runwhere.ai/job-type",
                            "seconds": 60}


class Churn:
    def __init__(self, store: Store, kubelet: Kubelet):
        self.store = store
        self.kubelet = kubelet
        self.report: dict[str, Any] = {"running": False}
        self._task: asyncio.Task[None] | None = None
        self._created: deque[str] = deque()
        self._serial = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{SIM_PREFIX}/churn", self._start),
                web.get(f"{SIM_PREFIX}/churn", self._report),
                web.delete(f"{SIM_PREFIX}/churn", self._stop)]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.report["running"] = False

    async def start(self, **options: Any) -> None:
        await self.close()
        settings = {**DEFAULTS, **options}
        self.report = {"running": True, "changes": 0, "creates": 0, "deletes": 0,
                       "behindTicks": 0, "requested": settings}
        self._task = asyncio.get_running_loop().create_task(self._run(settings),
                                                            name="sim churn")

    async def _running_pods(self, selector: str | None) -> list[tuple[str, str]]:
        """The Running pods ``selector`` matches, read from the stored objects (no copies)
        in slices: at 150,000 pods one pass decoding copies held the loop for seconds, and
        the first changes (a benchmark's first probe among them) waited behind it."""
        label = parse_label_selector(selector) if selector else None
        entries = self.store.list_entries(resource("pods")).entries
        keys: list[tuple[str, str]] = []
        for start in range(0, len(entries), _SLICE):
            if start:
                await asyncio.sleep(0)
            for entry in entries[start:start + _SLICE]:
                pod = entry.obj
                if (pod.get("status") or {}).get("phase") == "Running" and (
                        label is None or label.matches(pod)):
                    keys.append((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        return keys

    async def _run(self, settings: dict[str, Any]) -> None:
        keys = await self._running_pods(settings["labelSelector"] or None)
        nodes = [key[1] for key in self.store.sorted_keys(resource("nodes"))]
        if settings["createsPerSecond"] and nodes:
            with contextlib.suppress(StatusError):
                self.store.create("namespaces", {"metadata": {"name": NAMESPACE}})
        loop = asyncio.get_running_loop()
        started = loop.time()
        owed = {"changes": 0.0, "creates": 0.0, "deletes": 0.0}
        rates = {"changes": settings["changesPerSecond"], "creates": settings["createsPerSecond"],
                 "deletes": settings["deletesPerSecond"]}
        tick = 0
        try:
            while not settings["seconds"] or loop.time() - started < settings["seconds"]:
                tick += 1
                due = started + tick * TICK_SECONDS
                for what in owed:
                    owed[what] += rates[what] * TICK_SECONDS
                while owed["changes"] >= 1 and keys:
                    owed["changes"] -= 1
                    self._change(random.choice(keys))
                while owed["creates"] >= 1 and nodes:
                    owed["creates"] -= 1
                    self._create(nodes)
                while owed["deletes"] >= 1 and self._created:
                    owed["deletes"] -= 1
                    self._delete()
                # What the changes leave alive (the new objects, the watch history) is out
                # of the cyclic collector's sight, as seeding leaves its objects: otherwise
                # its full passes grow with every tick (55 to 300 ms within one minute at the
                # envelope) and hold every answer of the sim meanwhile.
                gc.freeze()
                delay = due - loop.time()
                if delay < -TICK_SECONDS:
                    self.report["behindTicks"] += 1
                await asyncio.sleep(max(0.0, delay))
        finally:
            self.report["running"] = False
            self.report["seconds"] = round(loop.time() - started, 2)

    def _change(self, key: tuple[str, str]) -> None:
        namespace, name = key
        try:
            pod = self.store.get("pods", name, namespace=namespace)
        except StatusError:
            return  # deleted meanwhile
        status = pod.setdefault("status", {})
        containers = status.get("containerStatuses") or []
        if containers:
            containers[0]["ready"] = not containers[0].get("ready")
        conditions = [c for c in status.get("conditions") or () if c.get("type") != CONDITION]
        conditions.append({"type": CONDITION, "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": None, "message": f"{time.time():.6f}"})
        status["conditions"] = conditions
        with contextlib.suppress(StatusError):
            self.store.update("pods", pod, subresource="status")
            self.report["changes"] += 1

    def _create(self, nodes: list[str]) -> None:
        self._serial += 1
        name = f"churn-{self._serial:07d}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": {"app": "churn"}},
               "spec": {"nodeName": nodes[self._serial % len(nodes)], "containers": [{
                   "name": "main", "image": "busybox:1.36",
                   "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
        with contextlib.suppress(StatusError):
            pod = self.store.create("pods", pod, namespace=NAMESPACE)
            pod["status"] = self.kubelet.running_status(pod)
            self.store.update("pods", pod, subresource="status")
            self._created.append(name)
            self.report["creates"] += 1

    def _delete(self) -> None:
        name = self._created.popleft()
        with contextlib.suppress(StatusError):
            self.store.delete("pods", name, namespace=NAMESPACE, grace_period_seconds=0)
            self.report["deletes"] += 1

    async def _start(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
            unknown = set(body) - set(DEFAULTS)
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            options: dict[str, Any] = {}
            for key, default in DEFAULTS.items():
                if key in body:
                    options[key] = type(default)(body[key])
                    if isinstance(default, (int, float)) and options[key] < 0:
                        raise ValueError(f"{key} must be >= 0")
            parse_label_selector(options.get("labelSelector", DEFAULTS["labelSelector"]) or None)
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError, StatusError) as exc:
            raise web.HTTPBadRequest(text=f"bad churn request: {exc}") from None
        await self.start(**options)
        return web.Response(status=202, body=orjson.dumps(self.report),
                            content_type="application/json")

    async def _report(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.report), content_type="application/json")

    async def _stop(self, request: web.Request) -> web.Response:
        await self.close()
        return web.Response(body=orjson.dumps(self.report), content_type="application/json")
