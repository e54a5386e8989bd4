"""Pass-through middlewares: no coroutine frame held while the handler runs.

A middleware with nothing to do once the handler has answered (the Origin check, the rate
limit, authentication when it is off or the route is open, consistency on a read, the
large-body gate on a GET) is a plain function returning ``handler(request)``, the handler's
awaitable, instead of a coroutine awaiting it; its own answers go through :func:`answered`,
and what has to wait (a TokenReview, a catch-up) goes to a coroutine of its own. aiohttp
awaits whatever a middleware returns, so the behaviour is the same, but a coroutine that
only awaits the handler stays suspended for as long as the handler runs: for a WebSocket,
the socket's whole life, ~300 bytes per middleware, times every open log socket.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

PassThrough = Awaitable[web.StreamResponse]
"""What a pass-through middleware returns: the handler's awaitable, or :func:`answered`."""


async def answered(response: web.StreamResponse) -> web.StreamResponse:
    """``response`` as the awaitable a pass-through middleware returns instead of the
    handler's."""
    return response
