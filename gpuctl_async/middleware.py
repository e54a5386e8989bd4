"""Request-level error handling: every non-2xx answer is ``{"error": ...}`` JSON.

Domain errors carry their own status (``gpuctl_async.errors``); aiohttp's own HTTP
exceptions (unknown path, wrong method, body too large) are rewritten into the same
envelope; anything else is a 500 whose traceback is logged and never sent.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.errors import GpuctlError

log = logging.getLogger(__name__)

_MESSAGES = {
    404: "Not found: {path}",
    405: "Method {method} not allowed for {path}",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GpuctlError as exc:
        if exc.status >= 500:
            log.warning("%s %s failed: %s", request.method, request.path, exc.message)
        return json_response(exc.to_body(), status=exc.status)
    except web.HTTPRequestEntityTooLarge as exc:
        limit = request.app[SETTINGS].max_body_bytes
        return json_response(
            {"error": f"Request body is larger than the limit of {limit} bytes"},
            status=exc.status,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        template = _MESSAGES.get(exc.status)
        message = (template.format(method=request.method, path=request.path)
                   if template else exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return json_response({"error": message}, status=exc.status, headers=headers)
    except Exception:
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return json_response({"error": "Internal server error"}, status=500)
