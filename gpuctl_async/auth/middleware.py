"""The authentication middleware: who is calling (TokenReview), and the route's permission
when the route alone says where it applies (SubjectAccessReview).

Runs after the error and rate-limit middlewares and before request validation, so an
unauthenticated caller learns nothing about a request's shape. The token comes from
``Authorization: Bearer <token>``, or, for browsers' WebSockets (which cannot set headers),
from the subprotocol ``base64url.bearer.authorization.k8s.io.<base64url(token)>`` offered
beside :data:`SUBPROTOCOL`, Kubernetes' own convention. That subprotocol is removed from the
request before the handler sees it, so it is never selected, echoed or logged (aiohttp logs
the offered subprotocols when none matches). Tokens in the URL are not read.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gpuctl_async.api.openapi import DOCS_PATH, SPEC_PATH, STATIC_PATH
from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.auth.guard import ACCESS, IDENTITY, authorize
from gpuctl_async.auth.permissions import Rule, rule_for
from gpuctl_async.k8s.impersonation import acting_as
from gpuctl_async.passthrough import PassThrough

SUBPROTOCOL = "gpuctl.v1"
"""The WebSocket subprotocol the server selects (the routes' frames are JSON text)."""

TOKEN_PROTOCOL_PREFIX = "base64url.bearer.authorization.k8s.io."
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gpuctl"'}


def is_open_path(path: str) -> bool:
    """The API docs and their assets need no token."""
    return path in (DOCS_PATH, SPEC_PATH, STATIC_PATH) or path.startswith(STATIC_PATH + "/")


def route_rule(request: web.Request) -> Rule | None:
    route = request.match_info.route
    method = "GET" if request.method == hdrs.METH_HEAD else request.method
    return rule_for(method, route.resource.canonical) if route.resource is not None else None


def _unauthorized(message: str) -> web.Response:
    return json_response({"error": message}, status=401, headers=CHALLENGE)


def _token_from_subprotocols(request: web.Request) -> tuple[str | None, web.Request]:
    """(token, request without the token subprotocol); (None, request) when there is none.
    An undecodable token subprotocol gives ``""``: present, and rejected."""
    offered = [p.strip() for value in request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ())
               for p in value.split(",") if p.strip()]
    tokens = [p for p in offered if p.startswith(TOKEN_PROTOCOL_PREFIX)]
    if not tokens:
        return None, request
    encoded = tokens[0][len(TOKEN_PROTOCOL_PREFIX):]
    try:
        token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        token = ""
    headers = request.headers.copy()
    headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL)
    rest = [p for p in offered if not p.startswith(TOKEN_PROTOCOL_PREFIX)]
    if rest:
        headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = ", ".join(rest)
    return token, request.clone(headers=headers)


def bearer_token(request: web.Request) -> tuple[str | None, web.Request]:
    token, request = _token_from_subprotocols(request)
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        token = credentials.strip()
    return token, request


@web.middleware
def auth_middleware(request: web.Request, handler: Handler) -> PassThrough:
    # A pass-through (gpuctl_async.passthrough) unless there is a caller to check.
    if request.app[SETTINGS].auth == "none":
        return handler(request)
    if request.match_info.http_exception is not None or is_open_path(request.path):
        return handler(request)  # unknown path or method: the 404/405 as usual
    rule = route_rule(request)
    if rule is None or rule.where == "open":
        # No rule: setup_auth refuses to start with an unlisted route, so only open ones.
        return handler(request)
    return _authenticated(request, handler, rule)


async def _authenticated(request: web.Request, handler: Handler,
                         rule: Rule) -> web.StreamResponse:
    """The caller's identity (and the route's permission) checked, then the handler as
    that caller (its frame stays: it scopes the identity)."""
    token, request = bearer_token(request)
    if token is None:
        return _unauthorized("Authentication required: send 'Authorization: Bearer <token>' "
                             "with a token the Kubernetes cluster accepts")
    identity = await request.app[ACCESS].tokens.identity(token) if token else None
    if identity is None:
        return _unauthorized("The token was not accepted by Kubernetes (invalid or expired)")
    request[IDENTITY] = identity
    if rule.where == "cluster":
        await authorize(request, rule.permission)
    elif rule.where == "path":
        await authorize(request, rule.permission, request.match_info[rule.path_key])
    with acting_as(identity):
        return await handler(request)
