"""Helpers for the simulated cluster's authentication and RBAC tests."""

from __future__ import annotations

import aiohttp
import orjson

from gpuctl_async.sim.testing import SimCluster

ADMIN = "admin-token"


class Caller:
    """Raw HTTP to the sim as one bearer token (None: no Authorization header)."""

    def __init__(self, sim: SimCluster, session: aiohttp.ClientSession, token: str | None,
                 headers: dict | None = None):
        self.sim, self.session = sim, session
        self.headers = dict(headers or {})
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    async def call(self, method: str, path: str, body: object = None,
                   headers: dict | None = None, **params: str) -> tuple[int, dict]:
        merged = {**self.headers, **(headers or {})}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            merged.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.sim.url + path, data=data,
                                        headers=merged, params=params or None) as response:
            raw = await response.read()
        try:
            return response.status, orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return response.status, {"text": raw.decode()}

    async def get(self, path: str, **params: str) -> tuple[int, dict]:
        return await self.call("GET", path, **params)

    async def post(self, path: str, body: object, **params: str) -> tuple[int, dict]:
        return await self.call("POST", path, body, **params)


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}


def role(name: str, rules: list[dict], namespace: str | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role" if namespace else "ClusterRole", "metadata": meta, "rules": rules}
