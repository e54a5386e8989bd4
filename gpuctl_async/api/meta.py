"""Service information, liveness and readiness."""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone

from aiohttp import web
from aiohttp_apigami import docs
from marshmallow import Schema, fields

from gpuctl_async import __version__
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.responses import dumps, json_bytes_response, json_response
from gpuctl_async.appkeys import READINESS
from gpuctl_async.probes import probe


class ServiceInfoSchema(Schema):
    message = fields.String(required=True, metadata={"example": "GPU Control API"})
    version = fields.String(required=True, metadata={"example": __version__})


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "healthy"})
    timestamp = fields.String(required=True, metadata={"example": "2026-01-01T00:00:00+00:00"})


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"example": "ready"})


class NotReadySchema(Schema):
    error = fields.String(required=True, metadata={
        "description": "Every reason, `; `-separated",
        "example": "cache of pods has not synced yet: Kubernetes API server is unreachable"})
    reasons = fields.List(fields.String(), required=True, metadata={
        "description": "Each reason: the API server check that failed and why, each cache "
                       "that has not synced or has lost its watch and why"})
    requestId = fields.String(metadata={"description": "The request's id (`X-Request-ID`)"})


@docs(tags=["meta"], summary="Service information",
      description="The service's name and version.",
      responses={200: json_content(ServiceInfoSchema, "Name and version"), **error_responses()})
async def service_info(request: web.Request) -> web.Response:
    return json_response({"message": "GPU Control API", "version": __version__})


@docs(tags=["meta"], summary="Liveness check",
      description="Answers as long as the process serves HTTP; never contacts Kubernetes.",
      responses={200: json_content(HealthSchema, "Alive"),
                 **error_responses(rate_limited=False)})
@probe
async def health(request: web.Request) -> web.Response:
    return json_bytes_response(_health_body(int(time.time())))


@functools.lru_cache(maxsize=2)
def _health_body(second: int) -> bytes:
    """The answer of one second (the timestamp shows whole seconds): probes and load
    balancers ask often, and each answer cost a clock read, formatting and encoding."""
    now = datetime.fromtimestamp(second, timezone.utc).isoformat(timespec="seconds")
    return dumps({"status": "healthy", "timestamp": now})


@docs(tags=["meta"], summary="Readiness check",
      description="200 once the Kubernetes API server answers and every cache has synced; a "
                  "synced cache whose watch is reconnecting stays ready until it has been "
                  "down for `watch_outage_grace` seconds. 503 lists every reason it is not "
                  "ready.",
      responses={200: json_content(ReadySchema, "Ready to serve"),
                 **error_responses(rate_limited=False),
                 503: json_content(NotReadySchema, "Not ready, with every reason")})
@probe
async def ready(request: web.Request) -> web.Response:
    reasons = await request.app[READINESS].not_ready_reasons()
    if reasons:
        # Answered here rather than raised: not being ready yet is routine, not worth a
        # warning in the log at every probe.
        return json_response({"error": "; ".join(reasons), "reasons": reasons}, status=503)
    return json_response({"status": "ready"})


def setup_meta(app: web.Application) -> None:
    app.router.add_get("/", service_info)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
