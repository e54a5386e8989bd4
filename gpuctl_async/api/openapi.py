"""OpenAPI 3 document and the offline Swagger UI page, generated from the marshmallow schemas.

The document is served at :data:`SPEC_PATH` and the UI at :data:`DOCS_PATH` (``docs_page``),
from files inside the installed aiohttp-apigami package. The Base layout is used because the
Standalone layout shows a badge that makes the browser send the spec URL to an online
validator.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import setup_aiohttp_apispec
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
    503: "Kubernetes API server unreachable, or a cache the answer needs has never synced "
         "(writes with a body over 64 KiB also: too many such bodies being handled)",
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
    setup_aiohttp_apispec(
        app,
        title="GPU Control API",
        version=__version__,
        url="",  # served by docs_page, compressed
        swagger_path=None,  # our own page: see docs_page
        openapi_version="3.0.3",
        info={"description": _DESCRIPTION},
    )
    setup_docs_page(app, docs_path=DOCS_PATH, static_path=STATIC_PATH, spec_path=SPEC_PATH)
    app[APISPEC_PARSER] = ApiParser()
    app.on_startup.append(_finish_document)  # runs after apigami builds the document
