"""Logging: one line per event on stderr, as text (default) or JSON, with request ids.

Every record passes :class:`RequestContextFilter`, which stamps it with the current request's
id and route template (``gpuctl_async.requestids``), so a line logged anywhere while serving
a request (or in a task the request started) can be found by the id the client got back.

The access log (:class:`AccessLogger`) writes method, path without its query string (a
query could carry anything a user typed), status and duration; never headers or bodies.
JSON lines carry ``time``, ``level``, ``logger``, ``message``, and when known ``requestId``,
``route``, ``status``, ``durationMs``, ``exception``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO

import orjson
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from gpuctl_async.requestids import REQUEST_CONTEXT, current

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``route`` to every record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):  # the access log passes its own
            context = current()
            record.request_id = context.id if context else "-"
            record.route = context.route if context else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            line["requestId"] = request_id
        for key, name in (("route", "route"), ("status", "status"),
                          ("durationMs", "duration_ms")):
            value = getattr(record, name, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(level: str, log_format: str = "text",
                      stream: IO[str] | None = None) -> logging.Handler:
    """Install the one handler on the root logger; returns it (tests remove it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kubernetes_asyncio logs request bodies at DEBUG (job env values): keep it quieter.
    logging.getLogger("kubernetes_asyncio").setLevel(max(logging.INFO, logging.getLevelName(level)))
    return handler


class AccessLogger(AbstractAccessLogger):
    """One INFO line per request, with its id, route template, status and duration."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        context = request.get(REQUEST_CONTEXT)
        duration_ms = round(time * 1000, 3)
        # The path as sent (percent-encoded): a decoded %0A could forge a text log line.
        self.logger.info(
            "%s %s %s %.1fms", request.method, request.rel_url.raw_path, response.status,
            duration_ms,
            extra={"request_id": context.id if context else "-",
                   "route": context.route if context else None,
                   "status": response.status, "duration_ms": duration_ms})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
