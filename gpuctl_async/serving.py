"""Serving the app: aiohttp's runner, with JSON answers for requests its parser refuses.

A request aiohttp cannot parse (a URL or header over 8,190 bytes, a NUL in a header, garbage
instead of HTTP) never reaches the app or its middlewares: aiohttp answers it with text/plain
and logs an ERROR traceback per request (aiohttp issue #3287 asks for a hook; there is none).
Checked against aiohttp 3.14: such a request is answered by ``RequestHandler.handle_error``
through an error handler the protocol makes itself, so middlewares, ``on_response_prepare``
(headers only) and the access logger cannot change its body or its log line, and the
keyword arguments ``web.AppRunner``/``web.Server`` pass on only reach ``RequestHandler``'s
constructor (no handler class, no error callback). Hence the one private step below:
the class swap, pinned by ``tests/test_hostile_input.py``'s parser-refusal tests.
:class:`JsonErrorRunner` gives those connections a request handler whose ``handle_error``
answers ``{"error": ...}`` and logs one line; anything else is left to aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from gpuctl_async.api.responses import json_response

log = logging.getLogger(__name__)


def refusal_reason(exc: HttpProcessingError) -> str:
    """What was wrong, never the offending bytes (they may hold a token)."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long (limit 8190 bytes)"
    # llhttp's messages are "<fixed reason>:\n<the offending bytes>": keep the reason only.
    reason = str(exc.message or "").split("\n", 1)[0].split(":", 1)[0].strip()
    return reason or "malformed request"


class JsonErrorRequestHandler(RequestHandler):
    """aiohttp's handler, except for parser refusals (status < 500)."""

    __slots__ = ()  # same layout as RequestHandler, so a handler can be switched to this class

    def handle_error(self, request, status=500, exc=None, message=None) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, HttpProcessingError) or \
                request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        reason = refusal_reason(exc)
        log.warning("Refused a malformed HTTP request from %s: %s", request.remote, reason)
        response = json_response({"error": f"Malformed HTTP request: {reason}"}, status=status)
        response.force_close()
        return response


class _Handlers:
    """The protocol factory the sites listen with: aiohttp's, with the handler class above."""

    def __init__(self, server: web.Server):
        self._server = server

    def __call__(self) -> RequestHandler:
        handler = self._server()
        handler.__class__ = JsonErrorRequestHandler
        return handler


class JsonErrorRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser refusals in JSON."""

    @property
    def server(self):  # sites only call it, as the protocol factory
        server = super().server
        return None if server is None else _Handlers(server)


def run(app: web.Application, *, host: str, port: int, backlog: int,
        access_log: logging.Logger | None,
        access_log_class: type[AbstractAccessLogger], on_listening: Callable[[], None],
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """What ``web.run_app`` does for us, with :class:`JsonErrorRunner`: serve until SIGINT or
    SIGTERM, then shut down gracefully; on a loop from ``loop_factory`` (e.g. uvloop's)."""

    async def serve() -> None:
        runner = JsonErrorRunner(app, handle_signals=True, access_log=access_log,
                                 access_log_class=access_log_class)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=backlog).start()
            on_listening()
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve())
    except (web.GracefulExit, KeyboardInterrupt):
        pass
