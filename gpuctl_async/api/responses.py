"""The app's one JSON encoder (orjson) for responses, and small response helpers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

from gpuctl_async.errors import BadRequest

_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # A string that is not valid Unicode (a lone surrogate that came in through a query
        # string or path and is echoed in an error message): answer with U+FFFD in its place
        # rather than fail the response.
        return orjson.dumps(_scrub(data), option=orjson.OPT_NON_STR_KEYS)


def _scrub(data: Any) -> Any:
    if isinstance(data, str):
        return _SURROGATE.sub("\ufffd", data)
    if isinstance(data, Mapping):
        return {_scrub(key): _scrub(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_scrub(item) for item in data]
    return data


def require_websocket(ws: web.WebSocketResponse, request: web.Request) -> None:
    """A plain HTTP request to a WebSocket route is a 400 that says how to connect."""
    if not ws.can_prepare(request).ok:
        raise BadRequest(f"{request.path} is a WebSocket endpoint: a WebSocket upgrade is "
                         f"required (e.g. websocat 'ws://<host>{request.path}')")


_JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: "application/json"})


def json_bytes_response(body: bytes) -> web.Response:
    """A 200 of JSON already encoded (a cached page). Its headers are copied from one
    template: ``content_type=`` builds the header anew for every answer, ~1 % of a cached
    page's cost."""
    return web.Response(body=body, headers=_JSON_HEADERS)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(body=dumps(data), status=status, headers=headers,
                        content_type="application/json")
