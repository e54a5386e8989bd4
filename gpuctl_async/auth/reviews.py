"""Asking Kubernetes who a token belongs to (TokenReview) and what they may do
(SubjectAccessReview), with the answers cached.

Both reviews are sent with the service's own rights (``as_service``), never impersonating:
they are the service's questions about the caller. Tokens are kept only as SHA-256 digests in
the cache and never go into a log line or an error message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from gpuctl_async.auth.cache import ReviewCache
from gpuctl_async.auth.permissions import Permission
from gpuctl_async.errors import Unavailable
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.impersonation import Identity, as_service

log = logging.getLogger(__name__)

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def identity_from_review(user: Mapping[str, Any]) -> Identity:
    extra = user.get("extra") or {}
    return Identity(user=user.get("username", ""), uid=user.get("uid") or "",
                    groups=tuple(user.get("groups") or ()),
                    extra={key: tuple(values or ()) for key, values in extra.items()})


async def _post_review(kube: KubeClient, path: str, body: dict, failure: str) -> dict:
    """POST a review with the service's own rights. A failure is a 503 saying ``failure``:
    the service's rights are missing (create tokenreviews / subjectaccessreviews) or the API
    server failed; not the caller's fault, and not a verdict on the caller."""
    try:
        with as_service():
            return await kube.request("POST", path, body=body)
    except KubeApiError as exc:
        raise Unavailable(f"{failure}: {exc.message}") from None

class TokenReviewer:
    """Token → Identity (None: not authenticated), cached by the token's SHA-256."""

    def __init__(self, kube: KubeClient, *, ttl: float, failure_ttl: float, max_size: int):
        self.kube = kube
        self.ttl, self.failure_ttl = ttl, failure_ttl
        self.cache: ReviewCache[Identity | None] = ReviewCache(max_size=max_size)
        self.reviews = 0
        """TokenReviews sent, for tests, diagnostics and metrics."""
        self.rejected = 0
        """TokenReviews that did not authenticate the token."""

    async def identity(self, token: str) -> Identity | None:
        digest = hashlib.sha256(token.encode()).digest()
        return await self.cache.get(digest, lambda: self._review(token))

    async def _review(self, token: str) -> tuple[Identity | None, float]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token}}
        self.reviews += 1
        answer = await _post_review(self.kube, TOKEN_REVIEWS, body,
                                    "Cannot check the token with Kubernetes")
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            self.rejected += 1
            return None, self.failure_ttl
        return identity_from_review(status.get("user") or {}), self.ttl


class AccessReviewer:
    """(Identity, permission, namespace) → allowed?, cached per decision."""

    def __init__(self, kube: KubeClient, *, ttl: float, max_size: int):
        self.kube = kube
        self.ttl = ttl
        self.cache: ReviewCache[bool] = ReviewCache(max_size=max_size)
        self.scopes: ReviewCache[frozenset[str] | None] = ReviewCache(max_size=max_size)
        """Where a caller holds a permission, over all namespaces (``guard.read_scope``)."""
        self.reviews = 0
        """SubjectAccessReviews sent, for tests, diagnostics and metrics."""
        self.denied = 0
        """SubjectAccessReviews that answered "not allowed"."""

    @staticmethod
    def _key(identity: Identity, permission: Permission, namespace: str | None) -> tuple:
        return (identity.key, permission.verb, permission.group, permission.resource,
                permission.subresource, permission.path, namespace or "")

    def cached(self, identity: Identity, permission: Permission,
               namespace: str | None = None) -> bool | None:
        """The cached decision, or None when there is no fresh one (no lookup)."""
        fresh, value = self.cache.peek(self._key(identity, permission, namespace))
        return bool(value) if fresh else None

    async def allowed(self, identity: Identity, permission: Permission,
                      namespace: str | None = None) -> bool:
        key = self._key(identity, permission, namespace)
        return await self.cache.get(key, lambda: self._review(identity, permission, namespace))

    async def _review(self, identity: Identity, permission: Permission,
                      namespace: str | None) -> tuple[bool, float]:
        spec: dict[str, Any] = {"user": identity.user, "groups": list(identity.groups)}
        if permission.path:
            spec["nonResourceAttributes"] = {"verb": permission.verb, "path": permission.path}
        else:
            attributes = {"verb": permission.verb, "group": permission.group,
                          "resource": permission.resource}
            if permission.subresource:
                attributes["subresource"] = permission.subresource
            if namespace:
                attributes["namespace"] = namespace
            spec["resourceAttributes"] = attributes
        if identity.uid:
            spec["uid"] = identity.uid
        if identity.extra:
            spec["extra"] = {key: list(values) for key, values in identity.extra.items()}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": spec}
        self.reviews += 1
        answer = await _post_review(self.kube, ACCESS_REVIEWS, body,
                                    "Cannot check permissions with Kubernetes")
        allowed = bool((answer.get("status") or {}).get("allowed"))
        if not allowed:
            self.denied += 1
        return allowed, self.ttl
