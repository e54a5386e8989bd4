"""Request ids: every request has one, so a user's bug report can be found in the logs.

The id is kept from an incoming ``X-Request-ID`` header when it looks like an id (letters,
digits, ``.``, ``_``, ``:``, ``-``; at most 128 characters: a hostile value must not reach the
logs), else made up. It is

- in every response's ``X-Request-ID`` header (WebSocket upgrades and streams included:
  their handlers prepare them with :func:`prepare`);
- in every log line the request causes: the middleware sets :data:`CURRENT` for the handler,
  and tasks the handler starts inherit it (asyncio copies the context); shared work a
  request merely starts (an upstream log stream) runs in a context of its own;
- in JSON error bodies as ``requestId``, added here to whatever envelope the error
  middleware built, so that no error path has to remember it.

The same middleware tells ``app[REQUEST_OBSERVER]`` (the metrics, when on) of each request's
start and end.

``gpuctl_async.logsetup`` reads :data:`CURRENT` into each log record.
"""

from __future__ import annotations

from aiohttp import web

from gpuctl_async.requestids.context import CURRENT, HEADER, RequestContext, current
from gpuctl_async.requestids.middleware import (REQUEST_CONTEXT, REQUEST_OBSERVER,
                                                RequestObserver, prepare,
                                                request_id_middleware)

__all__ = ["CURRENT", "HEADER", "REQUEST_CONTEXT", "REQUEST_OBSERVER", "RequestContext",
           "RequestObserver", "current", "prepare", "setup_request_ids"]


def setup_request_ids(app: web.Application) -> None:
    """Call first in ``create_app``: the middleware must be the outermost one, so that the
    other middlewares' log lines and answers (429, 401, CORS refusals) carry the id."""
    app.middlewares.insert(0, request_id_middleware)
