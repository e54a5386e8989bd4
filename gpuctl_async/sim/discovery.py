"""Discovery and OpenAPI documents: what kubectl and client libraries read before acting.

- ``/version``; ``/api`` (APIVersions), ``/api/v1`` and ``/apis/{group}/{version}``
  (APIResourceList: kinds, namespaced flags, verbs, short names, categories, and the
  subresources registered on the app), ``/apis`` and ``/apis/{group}`` (APIGroupList,
  APIGroup). kubectl first asks for aggregated discovery; answering with plain
  ``application/json`` makes it fall back to these legacy documents, as for older servers.
- ``/openapi/v3`` and ``/openapi/v3/{api/v1 | apis/<group>/<version>}``: one document per
  group-version whose PATCH operations carry ``x-kubernetes-group-version-kind`` and the
  ``fieldValidation`` query parameter. kubectl's ``create -f`` (default, strict validation)
  checks exactly that, then leaves validation to the server (``fieldValidation=Strict``)
  instead of refusing with "failed to download openapi". Schemas are deliberately loose
  objects: the server, not kubectl, is the validator here.
- ``/healthz``, ``/livez``, ``/readyz``: ``ok``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from gpuctl_async.sim.resources import BY_GROUP_VERSION, ResourceType

if TYPE_CHECKING:
    from gpuctl_async.sim.rest import Subresource

KUBERNETES_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-gpuctl-sim",
                      "gitCommit": "0000000000000000000000000000000000000000",
                      "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                      "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"}
_WRITE_PARAMS = [{"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                 {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                 {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]


def _json(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _group_versions() -> list[tuple[str, str]]:
    return sorted(BY_GROUP_VERSION)


def resource_list(group: str, version: str, subresources: Iterable[Subresource]) -> dict:
    """The APIResourceList of one group-version, with the subresources registered on the
    app (a kind from another group-version, such as ``autoscaling/v1`` ``Scale``, says so:
    kubectl's scale client reads it)."""
    resources = []
    by_type: dict[str, list[Subresource]] = {}
    for sub in subresources:
        by_type.setdefault(sub.rt.key, []).append(sub)
    for rt in sorted(BY_GROUP_VERSION[(group, version)].values(), key=lambda r: r.plural):
        entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                 "kind": rt.kind, "verbs": list(rt.verbs)}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in sorted(by_type.get(rt.key, []), key=lambda s: s.name):
            entry = {"name": f"{rt.plural}/{sub.name}", "singularName": "",
                     "namespaced": rt.namespaced, "kind": sub.kind, "verbs": list(sub.verbs)}
            if sub.group_version:
                entry["group"], entry["version"] = sub.group_version
            resources.append(entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def _api_group(group: str) -> dict:
    versions = [{"groupVersion": f"{group}/{v}", "version": v}
                for g, v in _group_versions() if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def _gvk(rt: ResourceType) -> dict:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _schema_name(rt: ResourceType) -> str:
    group = rt.group.split(".")[0] if rt.group else "core"  # rbac.authorization.k8s.io: rbac
    return f"io.k8s.api.{group}.{rt.version}.{rt.kind}"


def openapi_document(group: str, version: str) -> dict:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {}
    for rt in BY_GROUP_VERSION[(group, version)].values():
        ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
        body = {"content": {"application/json": {"schema": ref}}, "required": True}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced \
            else f"{prefix}/{rt.plural}"

        def op(action: str, **extra: object) -> dict:
            return {"operationId": f"{action}{rt.kind}", "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": _gvk(rt), "responses": ok, **extra}

        paths[base] = {"get": op("list"), "post": op("post", parameters=_WRITE_PARAMS,
                                                     requestBody=body)}
        paths[f"{base}/{{name}}"] = {
            "get": op("get"), "put": op("put", parameters=_WRITE_PARAMS, requestBody=body),
            "patch": op("patch", parameters=_WRITE_PARAMS, requestBody=body),
            "delete": op("delete")}
        schemas[_schema_name(rt)] = {
            "type": "object", "x-kubernetes-group-version-kind": [_gvk(rt)],
            "description": f"{rt.kind} (served by the gpuctl-async simulated cluster)",
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object"}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes",
                                         "version": KUBERNETES_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


class Discovery:
    """Route handlers; ``subresources`` is read at request time so late registrations show."""

    def __init__(self, subresources) -> None:
        self._subresources = subresources
        self._openapi = {}
        for group, version in _group_versions():
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            raw = orjson.dumps(openapi_document(group, version))
            self._openapi[key] = (raw, hashlib.sha512(raw).hexdigest().upper()[:128])

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/version", self._version), web.get("/api", self._api),
                web.get("/api/v1", self._core), web.get("/apis", self._apis),
                web.get("/apis/{group}", self._group),
                web.get("/apis/{group}/{version}", self._group_version),
                web.get("/openapi/v3", self._openapi_root),
                web.get("/openapi/v3/{path:.+}", self._openapi_doc),
                web.get("/healthz", self._ok), web.get("/livez", self._ok),
                web.get("/readyz", self._ok)]

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, request: web.Request) -> web.Response:
        return _json(KUBERNETES_VERSION)

    async def _api(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIVersions", "versions": ["v1"],
                      "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                      "serverAddress": request.host}]})

    async def _core(self, request: web.Request) -> web.Response:
        return _json(resource_list("", "v1", self._subresources()))

    async def _apis(self, request: web.Request) -> web.Response:
        groups = sorted({g for g, _ in _group_versions() if g})
        return _json({"kind": "APIGroupList", "apiVersion": "v1",
                      "groups": [_api_group(g) for g in groups]})

    async def _group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if not any(g == group for g, _ in _group_versions()):
            raise web.HTTPNotFound()
        return _json({"kind": "APIGroup", "apiVersion": "v1", **_api_group(group)})

    async def _group_version(self, request: web.Request) -> web.Response:
        key = (request.match_info["group"], request.match_info["version"])
        if key not in BY_GROUP_VERSION:
            raise web.HTTPNotFound()
        return _json(resource_list(*key, self._subresources()))

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return _json({"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
                                for key, (_, digest) in self._openapi.items()}})

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        found = self._openapi.get(request.match_info["path"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type="application/json")
