"""The OpenAPI document learns authentication: a bearer security scheme, the 401 answer, and
each operation's permission (from ``permissions.ROUTES``) at the end of its description."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami.constants import SWAGGER_DICT

from gpuctl_async.auth.permissions import rule_for

SCHEME = "kubernetesBearer"
_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A token the Kubernetes cluster accepts (service-account, OIDC, static), "
                   "checked with a TokenReview. WebSockets may pass it as the subprotocol "
                   "`base64url.bearer.authorization.k8s.io.<base64url(token)>` beside "
                   "`gpuctl.v1`. Not needed when the server runs with `auth: none`.",
}
_UNAUTHORIZED = {
    "description": "No token, or one Kubernetes does not accept (header "
                   "`WWW-Authenticate: Bearer`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_permissions(app: web.Application) -> None:
    """Runs at start-up after the document is built (apigami builds it on startup first)."""
    document = app.get(SWAGGER_DICT)
    if document is None:
        return
    document.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = _SCHEME
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            rule = rule_for(method.upper(), path)
            if rule is None or rule.where == "open":
                operation["security"] = []
                continue
            operation["security"] = [{SCHEME: []}]
            text = f"**Permission:** {rule.describe()}."
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{text}" if description else text
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", _UNAUTHORIZED)
            if rule.where != "authenticated":
                responses.setdefault("403", {
                    "description": "The caller lacks the permission (the message names it), "
                                   "or Kubernetes refused the write",
                    "content": _UNAUTHORIZED["content"]})
