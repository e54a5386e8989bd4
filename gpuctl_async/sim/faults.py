"""Fault injection and request counters, on ``/_sim/...`` (a path Kubernetes never uses).

Tests and benchmarks use these to make the simulated cluster misbehave and to prove what a
client did. ``/_sim`` is exempt from the bearer token and from the faults themselves.

==========================================  ===============================================
``GET  /_sim/counters``                     ``{"requests": {verb: {resource: n}},
                                            "watches": {"open": {resource: n}}}``; verbs are
                                            get, list, watch, create, update, patch, delete,
                                            deletecollection; subresources count as
                                            ``pods/status``, ``pods/log``...
``POST /_sim/counters/reset``               zero the request counters
``POST /_sim/watches/close``                end every open watch stream now
                                            (``{"closed": n}``)
``POST /_sim/history/compact``              forget all history: the next watch or continue
                                            token from an older resourceVersion gets 410
``POST /_sim/faults/unavailable``           ``?seconds=N[&mode=503|429|disconnect]``: for
                                            N seconds answer every API request with 503
                                            ServiceUnavailable (a Status, ``Retry-After``),
                                            with 429 as kube-apiserver's max-in-flight
                                            filter throttles (plain text, ``Retry-After``),
                                            or drop the connection without an answer;
                                            ``seconds=0`` ends it
``POST /_sim/faults/latency``               ``?seconds=S``: delay every API request by S
                                            (``0`` removes it)
``POST /_sim/faults/forbid``                ``?subresource=log``: answer 403 Forbidden, worded
                                            as RBAC does, to every request for that
                                            subresource (no ``subresource``: lift it)
``POST /_sim/faults/watch-delay``           ``?seconds=S``: hold back every watch event by S,
                                            as a lagging watch cache would (``0`` removes it)
``POST /_sim/faults/watch-silence``         ``?seconds=N``: open watches (and new ones) send
                                            nothing for N seconds, not even their end: a
                                            stalled connection (``0`` ends it)
``POST /_sim/faults/refuse``                ``?verb=list&resource=nodes``: answer 403
                                            Forbidden, worded as RBAC does, to that verb on
                                            that resource (a ClusterRole missing a verb);
                                            no ``verb``: lift it
``POST /_sim/logs/close``                   ``?mode=eof|reset``: end every open ``follow``
                                            log stream (cleanly, or by dropping the
                                            connection); ``/_sim/counters`` shows open ones
                                            per pod under ``logs.open`` (``sim.logs``)
``POST /_sim/seed``                         JSON ``{"resource": "pods", "count": N,
                                            "namespace": "default", "template": {...},
                                            "namePrefix": "..."}``: bulk-create N objects
                                            (``{"created": N, "resourceVersion": "..."}``)
==========================================  ===============================================

``testing.SimCluster`` exposes the same operations as Python methods.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import orjson
from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.watch import WatchRegistry

SIM_PREFIX = "/_sim"


class Faults:
    """The fault switches and counters of one simulated API server."""

    def __init__(self, store: Store, watches: WatchRegistry):
        self.store = store
        self.watches = watches
        self.latency = 0.0
        self.forbidden_subresource: str | None = None
        self.refused: tuple[str, str] | None = None
        """(verb, resource plural) answered 403, as a ClusterRole missing that verb."""
        self._unavailable_until = 0.0
        self._unavailable_mode = "503"
        self._requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int))
        # More sections of /_sim/counters, e.g. "logs" from sim.logs (open log streams).
        self.counter_sections: dict[str, Callable[[], dict]] = {}

    # -- counters -------------------------------------------------------------------------

    def count(self, verb: str, resource: str) -> None:
        self._requests[verb][resource] += 1

    def counters(self) -> dict:
        return {"requests": {verb: dict(by) for verb, by in self._requests.items()},
                "watches": {"open": self.watches.counts()},
                **{name: section() for name, section in self.counter_sections.items()}}

    def reset_counters(self) -> None:
        self._requests.clear()

    # -- faults ---------------------------------------------------------------------------

    def set_unavailable(self, seconds: float, mode: str = "503") -> None:
        if mode not in ("503", "429", "disconnect"):
            raise ValueError(f"unknown unavailability mode {mode!r}")
        self._unavailable_mode = mode
        self._unavailable_until = asyncio.get_running_loop().time() + seconds if seconds else 0

    def unavailable_mode(self) -> str | None:
        """The current outage mode, or None when the server is answering."""
        if self._unavailable_until and asyncio.get_running_loop().time() < self._unavailable_until:
            return self._unavailable_mode
        return None

    def close_watches(self) -> int:
        return self.watches.close_all()

    def set_refused(self, verb: str | None, resource: str | None) -> None:
        if verb and not resource:
            raise ValueError("refusing a verb needs a resource")
        self.refused = (verb, resource) if verb and resource else None

    def compact(self) -> int:
        return self.store.compact()

    # -- HTTP ------------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith(SIM_PREFIX):
            return await handler(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        mode = self.unavailable_mode()
        if mode == "disconnect":
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()  # never delivered: the connection is gone
        if mode == "503":
            error = st.unavailable("the simulated API server is unavailable (fault injection)")
            return web.Response(body=error.encode(), status=503, content_type="application/json",
                                headers={"Retry-After": "1"})
        if mode == "429":  # the words and form of the apiserver's http.Error, not a Status
            return web.Response(text="Too many requests, please try again later.\n", status=429,
                                headers={"Retry-After": "1"})
        if self.forbidden_subresource and request.path.endswith("/" + self.forbidden_subresource):
            return self._rbac_refusal(request.path)
        if self.refused is not None:
            refusal = self._verb_refusal(request)
            if refusal is not None:
                return refusal
        return await handler(request)

    def _verb_refusal(self, request: web.Request) -> web.Response | None:
        """403 for the refused (verb, resource), in the RBAC authorizer's words."""
        assert self.refused is not None
        verb, plural = self.refused
        parts = request.path.strip("/").split("/")
        if parts[:1] == ["api"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"]:
            group, rest = parts[1] if len(parts) > 1 else "", parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] != plural or len(rest) > 2:
            return None
        name = rest[1] if len(rest) > 1 else None
        watching = request.query.get("watch", "").lower() in ("1", "t", "true")
        asked = {"GET": "get" if name else ("watch" if watching else "list"), "POST": "create",
                 "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete" if name else "deletecollection"}.get(request.method)
        if asked != verb:
            return None
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        subject = f'{plural} "{name}"' if name else plural
        message = (f'{subject} is forbidden: User "system:serviceaccount:gpuctl-system:'
                   f'gpuctl-async" cannot {verb} resource "{plural}" in API group "{group}" '
                   f'{scope}')
        body = orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Failure", "message": message, "reason": "Forbidden",
                             "details": {"kind": plural, **({"name": name} if name else {})},
                             "code": 403})
        return web.Response(body=body, status=403, content_type="application/json")

    def _rbac_refusal(self, path: str) -> web.Response:
        parts = path.strip("/").split("/")  # api/v1/namespaces/<ns>/<plural>/<name>/<sub>
        namespace, plural, name = parts[-4], parts[-3], parts[-2]
        message = (f'{plural} "{name}" is forbidden: User "system:serviceaccount:gpuctl-system:'
                   f'gpuctl-async" cannot get resource "{plural}/{self.forbidden_subresource}" '
                   f'in API group "" in the namespace "{namespace}"')
        body = orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Failure", "message": message, "reason": "Forbidden",
                             "details": {"name": name, "kind": plural}, "code": 403})
        return web.Response(body=body, status=403, content_type="application/json")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{SIM_PREFIX}/counters", self._get_counters),
            web.post(f"{SIM_PREFIX}/counters/reset", self._reset_counters),
            web.post(f"{SIM_PREFIX}/watches/close", self._close_watches),
            web.post(f"{SIM_PREFIX}/history/compact", self._compact),
            web.post(f"{SIM_PREFIX}/faults/unavailable", self._unavailable),
            web.post(f"{SIM_PREFIX}/faults/latency", self._latency),
            web.post(f"{SIM_PREFIX}/faults/watch-delay", self._watch_delay),
            web.post(f"{SIM_PREFIX}/faults/forbid", self._forbid),
            web.post(f"{SIM_PREFIX}/faults/refuse", self._refuse),
            web.post(f"{SIM_PREFIX}/faults/watch-silence", self._watch_silence),
            web.post(f"{SIM_PREFIX}/seed", self._seed),
        ]

    @staticmethod
    def _json(data: object, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status,
                            content_type="application/json")

    @staticmethod
    def _seconds(request: web.Request) -> float:
        try:
            return max(0.0, float(request.query.get("seconds", "0")))
        except ValueError:
            raise web.HTTPBadRequest(text="seconds must be a number") from None

    async def _get_counters(self, request: web.Request) -> web.Response:
        return self._json(self.counters())

    async def _reset_counters(self, request: web.Request) -> web.Response:
        self.reset_counters()
        return self._json(self.counters())

    async def _close_watches(self, request: web.Request) -> web.Response:
        return self._json({"closed": self.close_watches()})

    async def _compact(self, request: web.Request) -> web.Response:
        return self._json({"compactedResourceVersion": str(self.compact())})

    async def _unavailable(self, request: web.Request) -> web.Response:
        seconds = self._seconds(request)
        try:
            self.set_unavailable(seconds, request.query.get("mode", "503"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return self._json({"seconds": seconds, "mode": self._unavailable_mode})

    async def _latency(self, request: web.Request) -> web.Response:
        self.latency = self._seconds(request)
        return self._json({"seconds": self.latency})

    async def _forbid(self, request: web.Request) -> web.Response:
        self.forbidden_subresource = request.query.get("subresource") or None
        return self._json({"subresource": self.forbidden_subresource})

    async def _refuse(self, request: web.Request) -> web.Response:
        try:
            self.set_refused(request.query.get("verb"), request.query.get("resource"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        verb, resource = self.refused or (None, None)
        return self._json({"verb": verb, "resource": resource})

    async def _watch_silence(self, request: web.Request) -> web.Response:
        seconds = self._seconds(request)
        self.watches.silence(seconds)
        return self._json({"seconds": seconds})

    async def _watch_delay(self, request: web.Request) -> web.Response:
        self.watches.delay = self._seconds(request)
        return self._json({"seconds": self.watches.delay})

    async def _seed(self, request: web.Request) -> web.Response:
        try:
            spec = orjson.loads(await request.read())
            created = self.store.seed(spec["resource"], int(spec["count"]),
                                      namespace=spec.get("namespace", "default"),
                                      template=spec.get("template"),
                                      name_prefix=spec.get("namePrefix"))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad seed request: {exc!r}") from None
        except StatusError as exc:
            return web.Response(body=exc.encode(), status=exc.code,
                                content_type="application/json")
        return self._json({"created": created,
                           "resourceVersion": str(self.store.resource_version)})
