"""OpenAPI 3 document and the offline Swagger UI page, generated from the marshmallow schemas.

The document is served at :data:`SPEC_PATH` and the UI at :data:`DOCS_PATH` (``docs_page``),
from files inside the installed aiohttp-apigami package. The Base layout is used because the
Standalone layout shows a badge that makes the browser send the spec URL to an online
validator.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp_apigami import AiohttpApiSpec, setup_aiohttp_apispec
from aiohttp_apigami.constants import APISPEC_PARSER, SWAGGER_DICT
from marshmallow import Schema, fields

from gpuctl_async import __version__
from gpuctl_async.api.docs_page import setup_docs_page
from gpuctl_async.api.openapi_document import complete_document
from gpuctl_async.api.validation import ApiParser

SPEC_PATH = "/api/docs/openapi.json"
DOCS_PATH = "/docs"
STATIC_PATH = "/api/docs/static"

_DESCRIPTION = """\
REST API of gpuctl: run GPU training, inference, notebook and compute jobs on Kubernetes from
short YAML documents, group nodes into resource pools, and manage quotas and namespaces.

Every error answer is JSON `{"error": "<message>", "requestId": "<id>"}`; request validation
failures (400) add `details`, an object mapping field paths such as `resources.gpu` to lists
of messages. Every answer carries the request's id in `X-Request-ID` (kept from the request's
own `X-Request-ID` when it is 1-128 letters, digits, `.`, `_`, `:` or `-`; made up otherwise):
quote it in a bug report, it is in every log line the request caused.

Each client address may make `rate_limit_per_second` requests per second on average after a
burst of `rate_limit_burst` (the service's settings); beyond, the answer is 429 with a
`Retry-After` header in whole seconds. `/health` and `/ready` are not limited. A WebSocket
upgrade whose `Origin` is neither the service's own nor listed in `cors_origins` is refused
with 403 before the upgrade.
"""

_ERROR_DESCRIPTIONS = {
    400: "Invalid request (see `details` for the fields)",
    403: "Refused by Kubernetes (quota) or by policy",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    413: "Request body too large",
    429: "Too many requests from this client address; retry after `Retry-After` seconds",
    500: "Internal server error",
    503: "Kubernetes API server unreachable, or a cache the answer needs has never synced",
}


class ErrorSchema(Schema):
    """The body of every non-2xx response."""

    error = fields.String(required=True, metadata={"description": "What went wrong"})
    details = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()),
        metadata={"description": "Field path → messages, on validation errors"},
    )
    requestId = fields.String(metadata={
        "description": "The request's id, as in the `X-Request-ID` header and the logs"})


def error_responses(*codes: int, rate_limited: bool = True) -> dict[int, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, all using ErrorSchema;
    500 always, and 429 unless the route is exempt from the rate limit."""
    always = {500, 429} if rate_limited else {500}
    return {
        code: {"description": _ERROR_DESCRIPTIONS[code], "schema": ErrorSchema}
        for code in sorted({*codes, *always})
    }


def json_content(schema: type[Schema] | Schema, description: str) -> dict[str, Any]:
    """A JSON response entry. The ``schema`` key (not ``content``) makes apigami build a fresh
    entry per app, so building several apps in one process never shares resolved refs."""
    return {"description": description, "schema": schema}


REQUEST_EXAMPLES = "x-request-examples"


def request_examples(examples: dict[str, Any]) -> dict[str, Any]:
    """``@docs(**request_examples({...}))``: named request-body examples for Swagger UI."""
    return {REQUEST_EXAMPLES: {name: {"value": value} for name, value in examples.items()}}


_TITLE = "GPU Control API"
_OPENAPI_VERSION = "3.0.3"

# apigami's document, as JSON, per route table. Building it walks every route and converts
# every schema (~0.15 s); a process that builds many apps with the same routes (the test
# suite builds one per test) builds it once. Handlers are module-level functions, so a
# route's method, path and handler name say everything apigami reads from it.
_BUILT: dict[tuple, bytes] = {}
_MAX_BUILT = 16


def _route_table(app: web.Application) -> tuple:
    return tuple(sorted(
        (route.method, route.resource.canonical if route.resource else "",
         getattr(route.handler, "__module__", ""), getattr(route.handler, "__qualname__", ""))
        for route in app.router.routes()))


async def _build_document(app: web.Application) -> None:
    """apigami's document for this app's routes: built once per route table, copied after."""
    key = _route_table(app)
    built = _BUILT.get(key)
    if built is None:
        parser = app[APISPEC_PARSER]
        AiohttpApiSpec(url="", swagger_path=None, title=_TITLE, version=__version__,
                       openapi_version=_OPENAPI_VERSION,
                       info={"description": _DESCRIPTION}).register(app, in_place=True)
        app[APISPEC_PARSER] = parser  # register() sets apigami's default parser again
        if len(_BUILT) >= _MAX_BUILT:
            _BUILT.clear()
        built = _BUILT[key] = orjson.dumps(app[SWAGGER_DICT])
    app[SWAGGER_DICT] = orjson.loads(built)  # each app edits its own copy below


async def _finish_document(app: web.Application) -> None:
    """apigami writes Swagger 2 ``produces`` into every operation (OpenAPI 3 has no such key),
    lists aiohttp's automatic HEAD routes as operations of their own, and cannot attach
    several named request examples; fix all three once the document is built. (Every GET
    answers HEAD too; README says so.)"""
    for operations in app[SWAGGER_DICT]["paths"].values():
        operations.pop("head", None)
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            operation.pop("produces", None)
            operation.pop("consumes", None)
            examples = operation.pop(REQUEST_EXAMPLES, None)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if examples and body is not None:
                body["examples"] = examples
    complete_document(app, app[SWAGGER_DICT])


def setup_openapi(app: web.Application) -> None:
    """Call after every route is added: the spec is built from the router at startup."""
    # Request validation only here (apigami's app keys); the document is built at startup by
    # _build_document, and served by docs_page, compressed, with our own page.
    setup_aiohttp_apispec(app, url="", swagger_path=None, generate_spec=False)
    setup_docs_page(app, docs_path=DOCS_PATH, static_path=STATIC_PATH, spec_path=SPEC_PATH)
    app[APISPEC_PARSER] = ApiParser()
    app.on_startup.append(_build_document)
    app.on_startup.append(_finish_document)
