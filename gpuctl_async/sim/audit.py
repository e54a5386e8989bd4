"""An audit log of the simulated API server: one record per authorized mutating request.

Recorded when authentication is on (``sim.access``), after the handler answered: verbs
create, update, patch, delete, deletecollection (incl. subresources and the review types).
A record is flat, for easy filtering::

    {"verb": "create", "apiGroup": "batch", "resource": "jobs", "subresource": "",
     "namespace": "team-a", "name": "train-1", "user": "alice", "uid": "...",
     "groups": ["devs", "system:authenticated"], "impersonatedBy": "system:serviceaccount:
     gpuctl-system:gpuctl-async" | None, "code": 201, "requestURI": "/apis/...",
     "authorizationReason": "RBAC: allowed by RoleBinding ...", "stageTimestamp": "...Z"}

``user``/``groups`` are the identity the request was authorized as (the impersonated one when
impersonation headers were honoured; ``impersonatedBy`` then names the real requester, what a
real audit event calls ``user`` beside ``impersonatedUser``). For a create, ``name`` is the
created object's. ``GET /_sim/audit?verb=create&resource=jobs&user=alice`` filters on any
string field (``group=`` matches membership); ``POST /_sim/audit/reset`` empties the log. The
log keeps the most recent ``limit`` records.
"""

from __future__ import annotations

from collections import deque

import orjson
from aiohttp import web

from gpuctl_async.sim.authn import UserInfo
from gpuctl_async.sim.faults import SIM_PREFIX
from gpuctl_async.sim.rest import RequestInfo
from gpuctl_async.sim.store import timestamp

MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class AuditLog:
    def __init__(self, limit: int = 100_000):
        self._records: deque[dict] = deque(maxlen=limit)

    def record(self, attrs: RequestInfo, user: UserInfo, impersonator: UserInfo | None,
               response: web.StreamResponse, request_uri: str, reason: str = "") -> None:
        name = attrs.name
        if attrs.verb == "create" and not name and response.status == 201 and \
                isinstance(response, web.Response) and isinstance(response.body, bytes):
            try:
                name = orjson.loads(response.body).get("metadata", {}).get("name") or ""
            except (orjson.JSONDecodeError, AttributeError):
                name = ""
        self._records.append({
            "verb": attrs.verb, "apiGroup": attrs.api_group, "resource": attrs.resource,
            "subresource": attrs.subresource, "namespace": attrs.namespace, "name": name,
            "user": user.name, "uid": user.uid, "groups": list(user.groups),
            "impersonatedBy": impersonator.name if impersonator else None,
            "code": response.status, "requestURI": request_uri,
            "authorizationReason": reason, "stageTimestamp": timestamp()})

    def records(self, **filters: str) -> list[dict]:
        """Records matching every filter (``group=`` is membership; others are equality
        on the string form, so ``code="201"`` works)."""
        out = []
        for record in self._records:
            for key, wanted in filters.items():
                if key == "group":
                    if wanted not in record["groups"]:
                        break
                elif str(record.get(key) if record.get(key) is not None else "") != str(wanted):
                    break
            else:
                out.append(record)
        return out

    def reset(self) -> None:
        self._records.clear()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(f"{SIM_PREFIX}/audit", self._get),
                web.post(f"{SIM_PREFIX}/audit/reset", self._reset)]

    async def _get(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"items": self.records(**dict(request.query))}),
                            content_type="application/json")

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.Response(body=b'{"items":[]}', content_type="application/json")
