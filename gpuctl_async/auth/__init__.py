"""Identity and access: the caller's own Kubernetes identity and RBAC decide each request.

- ``reviews``: TokenReview (who) and SubjectAccessReview (may they), cached (``cache``).
- ``permissions``: the one route → permission table.
- ``middleware``: authentication and the route-level checks; ``guard``: the checks views
  make where only they know the namespace.
- Writes impersonate the caller: ``gpuctl_async.k8s.impersonation``.
- ``openapi``: each operation's description names its permission; a bearer security scheme.

``auth: none`` (setting) turns all of it off: every caller acts with the service's rights.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gpuctl_async.appkeys import KUBE, SETTINGS
from gpuctl_async.auth.guard import ACCESS, Access
from gpuctl_async.auth.middleware import SUBPROTOCOL, auth_middleware, is_open_path
from gpuctl_async.auth.openapi import document_permissions
from gpuctl_async.auth.permissions import ROUTES
from gpuctl_async.auth.reviews import AccessReviewer, TokenReviewer

__all__ = ["SUBPROTOCOL", "auth_middleware", "setup_auth"]

log = logging.getLogger(__name__)


async def _access_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the Kubernetes client exists (later in ``cleanup_ctx``)."""
    settings = app[SETTINGS]
    if settings.auth == "kubernetes":
        kube = app[KUBE]
        app[ACCESS] = Access(
            TokenReviewer(kube, ttl=settings.auth_token_ttl,
                          failure_ttl=settings.auth_failure_ttl,
                          max_size=settings.auth_cache_size),
            AccessReviewer(kube, ttl=settings.authz_ttl, max_size=settings.auth_cache_size))
        log.info("Authentication on: callers' Kubernetes tokens and RBAC decide every request")
    elif not settings.simulate:
        log.warning("Authentication is off (auth: none): every caller acts with the "
                    "service's own Kubernetes rights")
    yield


def _check_routes(app: web.Application) -> None:
    """Every route needs a rule: a route added without one would be open by accident."""
    missing = sorted(
        f"{route.method} {route.resource.canonical}" for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
        and not is_open_path(route.resource.canonical)
        and (route.method, route.resource.canonical) not in ROUTES)
    if missing:
        raise RuntimeError("routes without a permission rule in auth/permissions.py: "
                           + ", ".join(missing))


async def _on_startup(app: web.Application) -> None:
    if app[SETTINGS].auth == "kubernetes":
        _check_routes(app)
    document_permissions(app)


def setup_auth(app: web.Application) -> None:
    """Call after every route and ``setup_openapi``; ``auth_middleware`` goes in the app's
    middleware list (after the error and rate-limit middlewares, before validation)."""
    app.cleanup_ctx.append(_access_ctx)
    app.on_startup.append(_on_startup)
