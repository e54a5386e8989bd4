"""What views call to check the caller's permission where only they know the namespace.

With ``auth: none`` there is no identity on the request and every check passes: the service's
own rights decide, as before this package existed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiohttp import web

from gpuctl_async.appkeys import CACHE, SETTINGS
from gpuctl_async.auth.permissions import Permission
from gpuctl_async.auth.reviews import AccessReviewer, TokenReviewer
from gpuctl_async.errors import Forbidden
from gpuctl_async.k8s.impersonation import Identity

CLOSE_FORBIDDEN = 4403
"""WebSocket close code for a caller without the permission (403's WebSocket twin)."""

IDENTITY = "gpuctl_identity"
"""Request key of the caller's :class:`Identity` (absent with ``auth: none``)."""

# Per-namespace checks of one request run concurrently, but not unboundedly (cold cache,
# many namespaces).
_NAMESPACE_CHECKS = 16


class Access:
    """The app's token and access reviewers (``auth: kubernetes``)."""

    def __init__(self, tokens: TokenReviewer, decisions: AccessReviewer):
        self.tokens = tokens
        self.decisions = decisions


ACCESS = web.AppKey("access", Access)


def forbidden(identity: Identity, permission: Permission, namespace: str | None) -> Forbidden:
    """Worded as kube-apiserver words an RBAC refusal, naming the permission."""
    if permission.path:
        return Forbidden(f'Forbidden: User "{identity.user}" cannot {permission.verb} path '
                         f'"{permission.path}"')
    what = f'{permission.verb} resource "{permission.resource}' + (
        f'/{permission.subresource}' if permission.subresource else "") + '"'
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return Forbidden(f'Forbidden: User "{identity.user}" cannot {what} in API group '
                     f'"{permission.group}"{where}')


def caller(request: web.Request) -> Identity | None:
    """The authenticated caller; None with authentication off (asked first: ``request.get``
    of a missing key raises and catches a KeyError inside, on every read)."""
    if request.app[SETTINGS].auth == "none":
        return None
    return request.get(IDENTITY)


async def allowed(request: web.Request, permission: Permission,
                  namespace: str | None = None) -> bool:
    identity = caller(request)
    if identity is None:
        return True
    return await request.app[ACCESS].decisions.allowed(identity, permission, namespace)


async def authorize(request: web.Request, permission: Permission,
                    namespace: str | None = None) -> None:
    """Raise Forbidden (403 naming the permission) unless the caller holds ``permission``
    in ``namespace`` (None: cluster-wide)."""
    if not await allowed(request, permission, namespace):
        raise forbidden(request[IDENTITY], permission, namespace)


async def namespaces_allowed(request: web.Request, permission: Permission,
                             candidates: Iterable[str]) -> frozenset[str] | None:
    """Where the caller holds ``permission``: None for everywhere (one cluster-wide check
    first), else the subset of ``candidates`` checked one by one."""
    if await allowed(request, permission):
        return None
    identity = request[IDENTITY]
    decisions = request.app[ACCESS].decisions
    granted, unknown = set(), []
    for namespace in candidates:  # warm decisions: no task, no await
        decision = decisions.cached(identity, permission, namespace)
        if decision is None:
            unknown.append(namespace)
        elif decision:
            granted.add(namespace)
    if unknown:
        limit = asyncio.Semaphore(_NAMESPACE_CHECKS)

        async def check(namespace: str) -> tuple[str, bool]:
            async with limit:
                return namespace, await decisions.allowed(identity, permission, namespace)

        for namespace, ok in await asyncio.gather(*(check(ns) for ns in unknown)):
            if ok:
                granted.add(namespace)
    return frozenset(granted)


async def read_scope(request: web.Request, permission: Permission,
                     namespace: str | None = None) -> frozenset[str] | None:
    """Where a read of ``permission`` may look: the named namespace (403 when denied), else
    every namespace of the cluster (from the cache) where the caller holds it. None:
    everywhere (or auth off)."""
    identity = caller(request)
    if identity is None:
        return None
    if namespace is not None:
        await authorize(request, permission, namespace)
        return None
    # The answer over all namespaces, reused for the decision TTL while the namespaces stay
    # the same: a warm tenant list is one lookup, not one per namespace.
    namespaces = request.app[CACHE].namespaces
    decisions = request.app[ACCESS].decisions
    key = (identity.key, permission, namespaces.resource_version)

    async def compute() -> tuple[frozenset[str] | None, float]:
        names = [ns["metadata"]["name"] for ns in namespaces.items()]
        return await namespaces_allowed(request, permission, names), decisions.ttl
    return await decisions.scopes.get(key, compute)
