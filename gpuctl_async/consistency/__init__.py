"""Read-your-writes across replicas: the ``X-Consistency-Token`` header.

- Every successful write answer carries ``X-Consistency-Token``: for each cached resource type
  the request wrote, the newest resourceVersion it produced (merged with the token the request
  brought, so a client can simply keep the last token it was given).
- A request that sends the header back first waits, at most ``read_your_writes_timeout``
  seconds, until this replica's caches have seen those versions; if they do not in time the
  answer is 503 with ``Retry-After`` (never a silently stale answer). A malformed token is 400.

Which replica the write went to does not matter: all of them watch the same API server, so
each reaches a version at its own pace. Mechanics (recording, comparing) are in
:mod:`gpuctl_async.k8s.consistency`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_apigami.constants import SWAGGER_DICT

from gpuctl_async.appkeys import CACHE, KUBE, SETTINGS
from gpuctl_async.auth import auth_middleware
from gpuctl_async.errors import ValidationFailed
from gpuctl_async.k8s import consistency
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.k8s.informer import Informer
from gpuctl_async.k8s.resources import NAMESPACES
from gpuctl_async.passthrough import PassThrough

HEADER = "X-Consistency-Token"
RETRY_AFTER_SECONDS = "1"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _informers_by_type(cache: ClusterCache) -> dict[str, list[Informer]]:
    by_type: dict[str, list[Informer]] = {}
    for informer in cache.all:
        kind = consistency.resource_type(informer.resource.group, informer.resource.plural)
        by_type.setdefault(kind, []).append(informer)
    return by_type


async def catch_up(cache: ClusterCache, versions: consistency.Versions, timeout: float) -> bool:
    """Wait until every cache of a type in ``versions`` has reached its version; types this
    replica does not cache are ignored. False when ``timeout`` ran out first."""
    by_type = _informers_by_type(cache)
    pending = [(informer, version) for kind, version in versions.items()
               for informer in by_type.get(kind, ())]
    # One deadline for the whole request, however many caches it waits for.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for informer, version in pending:
        if not await informer.wait_for(lambda i=informer, v=version: i.reached(v),
                                       max(0.0, deadline - loop.time())):
            return False
    return True


def _reached(cache: ClusterCache, versions: consistency.Versions) -> bool:
    by_type = _informers_by_type(cache)
    return all(informer.reached(version) for kind, version in versions.items()
               for informer in by_type.get(kind, ()))


async def _cluster_revision(kube: KubeClient) -> int | None:
    """The API server's current revision (a one-item list's resourceVersion)."""
    page = await kube.request("GET", NAMESPACES.path(), query={"limit": 1})
    version = (page.get("metadata") or {}).get("resourceVersion")
    return int(version) if isinstance(version, str) and version.isdigit() else None


def _cached_only(cache: ClusterCache, versions: consistency.Versions) -> consistency.Versions:
    known = _informers_by_type(cache)
    return {kind: version for kind, version in versions.items() if kind in known}


@web.middleware
def consistency_middleware(request: web.Request, handler: Handler) -> PassThrough:
    raw = request.headers.get(HEADER)
    if raw is None and request.method in ("GET", "HEAD"):
        # Nothing to wait for, no token to give back: a pass-through (gpuctl_async.passthrough).
        return handler(request)
    return _consistent(request, handler, raw)


async def _consistent(request: web.Request, handler: Handler,
                      raw: str | None) -> web.StreamResponse:
    wanted: consistency.Versions = {}
    if raw is not None:
        try:
            wanted = consistency.decode(raw)
        except consistency.BadToken as exc:
            raise ValidationFailed(f"Header {HEADER} is malformed: {exc}",
                                   details={HEADER: [str(exc)]}) from None
        cache = request.app[CACHE]
        if not _reached(cache, wanted):
            # A version the cluster has not produced is no write of this cluster's (as
            # kube-apiserver refuses a "too large resource version"): 400 at once, no wait.
            revision = await _cluster_revision(request.app[KUBE])
            if revision is not None and max(_cached_only(cache, wanted).values(),
                                            default=0) > revision:
                message = (f"it names resourceVersion beyond the cluster's current "
                           f"{revision}: not a token of this cluster's writes")
                raise ValidationFailed(f"Header {HEADER} is not valid: {message}",
                                       details={HEADER: [message]})
        if not await catch_up(cache, wanted, request.app[SETTINGS].read_your_writes_timeout):
            raise web.HTTPServiceUnavailable(
                reason=f"This replica's caches have not reached the {HEADER} yet; retry",
                headers={"Retry-After": RETRY_AFTER_SECONDS})
    if request.method in ("GET", "HEAD"):
        return await handler(request)  # a read writes nothing: no token to give back
    with consistency.recording() as written:
        response = await handler(request)
    if written and not response.prepared and response.status < 400:
        produced = _cached_only(request.app[CACHE], written)
        if produced:
            response.headers[HEADER] = consistency.encode(consistency.merge(wanted, produced))
    return response


_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "A token from an earlier write answer: the answer waits (bounded) until "
                   "this replica's caches have seen that write, so a client spread over "
                   "replicas reads its own writes. Opaque; 503 with `Retry-After` if the "
                   "caches do not catch up in time, 400 if malformed.",
    "schema": {"type": "string", "example": "jobs.batch=812,services=813"},
}
_RESPONSE_HEADER = {
    "description": "Consistency token of this write (resourceVersions it produced, per type): "
                   f"send it back as `{HEADER}` on later requests to any replica.",
    "schema": {"type": "string"},
}


_CLIENTS = f"""
Several replicas serve the API, each from its own caches. Every successful write answer
carries an `{HEADER}` header; send the last one you were given on later requests (to any
replica) and the answer waits, bounded, until that replica has seen your writes (503 with
`Retry-After` if it cannot in time). Without it, a read right after a write may come from a
replica that has not seen the write yet.
"""


_BAD = "each part must be <type>=<resourceVersion>, e.g. jobs.batch=812"
_ERRORS = (
    ("400", "Invalid request, or a malformed X-Consistency-Token",
     {"error": f"Header {HEADER} is malformed: {_BAD}", "details": {HEADER: [_BAD]}}),
    ("503", "A cache has not synced, or has not reached the X-Consistency-Token in time "
            "(retry after Retry-After)",
     {"error": f"This replica's caches have not reached the {HEADER} yet; retry"}),
)


def _document(app: web.Application) -> None:
    """Every operation of the API takes the header; every write answer may carry it."""
    document = app.get(SWAGGER_DICT)
    if document is None:
        return
    info = document.setdefault("info", {})
    info["description"] = info.get("description", "") + _CLIENTS
    components = document.setdefault("components", {})
    components.setdefault("parameters", {})["ConsistencyToken"] = _PARAMETER
    components.setdefault("headers", {})["ConsistencyToken"] = _RESPONSE_HEADER
    for path, operations in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            operation.setdefault("parameters", []).append(dict(_PARAMETER))
            answers = operation.setdefault("responses", {})
            for code, text, example in _ERRORS:
                answers.setdefault(code, {"description": text, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                         "example": example}}})
            if method.upper() not in WRITE_METHODS:
                continue
            for code, answer in operation.get("responses", {}).items():
                if str(code).startswith("2") and isinstance(answer, dict):
                    answer.setdefault("headers", {})[HEADER] = {
                        "$ref": "#/components/headers/ConsistencyToken"}


async def _document_on_startup(app: web.Application) -> None:
    _document(app)


def setup_consistency(app: web.Application) -> None:
    """Add the middleware right after authentication (an unauthenticated request never
    waits) and document the header; call after ``setup_openapi``, whose start-up hook
    builds the document this one completes."""
    app.middlewares.insert(app.middlewares.index(auth_middleware) + 1, consistency_middleware)
    app.on_startup.append(_document_on_startup)
