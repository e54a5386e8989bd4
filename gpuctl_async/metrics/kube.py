"""Kubernetes API requests: by verb, resource and code, how long until the answer's headers,
how often the API server pushed back, and which writes impersonated a caller.

``KubeClient`` calls :meth:`KubeRequestMetrics.observe` once per request it opens; the
labels come from the method and the path, never from names in the path, so they are bounded
by the code's own set of requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

_SEGMENT = re.compile(r"[a-z][a-z0-9.-]{0,62}")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def verb_and_resource(method: str, path: str, query: Mapping[str, Any] | None) -> tuple[str, str]:
    """kube-apiserver's verb (get, list, watch, create...) and ``resource[/subresource]``;
    ``nonresource`` for paths outside the resource APIs (``/version``)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        rest = parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        rest = parts[3:]
    else:
        return method.lower(), "nonresource"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # namespaced: .../namespaces/{ns}/{resource}[/{name}[/{sub}]]
    resource = rest[0] if _SEGMENT.fullmatch(rest[0]) else "other"
    named = len(rest) >= 2
    if len(rest) >= 3:
        resource += "/" + (rest[2] if _SEGMENT.fullmatch(rest[2]) else "other")
    if method == "GET":
        if str((query or {}).get("watch", "")).lower() in ("true", "1"):
            return "watch", resource
        return ("get" if named else "list"), resource
    if method == "DELETE":
        return ("delete" if named else "deletecollection"), resource
    return _VERBS.get(method, method.lower()), resource


class KubeRequestMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "gpuctl_kubernetes_requests", "Kubernetes API requests, by verb, resource and "
            "HTTP code (\"error\": no answer: unreachable, timed out)",
            ("verb", "resource", "code"), registry=registry)
        # By verb only, as client-go's rest_client_request_duration_seconds: per resource it
        # would be most of a scrape's lines for little more insight.
        self.duration = Histogram(
            "gpuctl_kubernetes_request_duration_seconds", "Time until the Kubernetes API "
            "server's answer started (for watches and log streams: until the stream opened)",
            ("verb",), registry=registry)
        self.pushback = Counter(
            "gpuctl_kubernetes_pushback", "Kubernetes API requests the server refused for "
            "load or failure: throttled (429), server_error (5xx), unreachable (no answer)",
            ("reason",), registry=registry)
        self.impersonated = Counter(
            "gpuctl_kubernetes_impersonated_requests", "Kubernetes API writes sent "
            "impersonating the caller, by verb", ("verb",), registry=registry)

    def observe(self, method: str, path: str, query: Mapping[str, Any] | None, code: int,
                seconds: float, impersonated: bool) -> None:
        """``code`` 0: no answer."""
        verb, resource = verb_and_resource(method, path, query)
        self.requests.labels(verb, resource, str(code) if code else "error").inc()
        self.duration.labels(verb).observe(seconds)
        if code == 429:
            self.pushback.labels("throttled").inc()
        elif code >= 500:
            self.pushback.labels("server_error").inc()
        elif code == 0:
            self.pushback.labels("unreachable").inc()
        if impersonated:
            self.impersonated.labels(verb).inc()
