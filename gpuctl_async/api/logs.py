"""Job logs: ``GET /api/v1/jobs/{jobId}/logs`` (a tail) and ``WS .../logs/ws`` (live)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp_apigami import docs, querystring_schema
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gpuctl_async import requestids
from gpuctl_async.api.heartbeat import HEARTBEAT
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.params import RFC3339, CursorField, QueryBoolean
from gpuctl_async.api.responses import json_response, require_websocket
from gpuctl_async.api.sockets import close_at_shutdown
from gpuctl_async.appkeys import CACHE, KUBE, LOG_HUB, SETTINGS
from gpuctl_async.auth import SUBPROTOCOL
from gpuctl_async.auth.guard import CLOSE_FORBIDDEN, read_scope
from gpuctl_async.auth.permissions import GET_LOGS
from gpuctl_async.errors import BadRequest, Conflict, Forbidden, GpuctlError, NotFound
from gpuctl_async.jobs.lookup import find_job
from gpuctl_async.logs.hub import TooManyStreams
from gpuctl_async.logs.session import FollowOptions, JobLogSession, SessionFailed
from gpuctl_async.logs.sink import Sink
from gpuctl_async.logs.tail import job_tail

log = logging.getLogger(__name__)

TAGS = ["jobs"]
LOG_SOCKETS = web.AppKey("log_sockets", set)
"""Open log WebSockets (closed with 1001 at shutdown)."""
CLOSE_NOT_FOUND = 4404
CLOSE_AMBIGUOUS = 4409
_CLOSE_CODES = {NotFound: CLOSE_NOT_FOUND, Conflict: CLOSE_AMBIGUOUS, Forbidden: CLOSE_FORBIDDEN}

WS_DESCRIPTION = """\
Streams the job's logs: the tail first (`tail` lines of the running pods merged in time order,
or with `since` every line after that timestamp), then live lines as they are written. Pods
that start later (a restart, a new replica, a retried Job pod) join the stream.

This is a WebSocket: Swagger UI's "Try it out" cannot open one, and a plain GET answers 400.
Connect with a WebSocket client, e.g.
`websocat 'ws://localhost:8000/api/v1/jobs/<jobId>/logs/ws?tail=50'`.

Frames are JSON text:

- `{"type": "log", "data": "<line>", "pod": "<pod>", "ts": "<RFC3339Nano>", "cursor":
  "<token>"}`: one line (`data` starts with the timestamp unless `timestamps=false`);
- `{"type": "logs", "lines": [{"data", "pod", "ts"}, ...], "cursor": "<token>"}`:
  consecutive lines batched together when they arrive faster than the client reads;
- `{"type": "dropped", "count": N}`: the client read too slowly and N lines were skipped;
- `{"type": "pod-ended", "pod": "<pod>"}`: that pod's stream ended;
- `{"type": "end"}`: every container of the job has terminated and the job will start no
  more; the server then closes normally (1000);
- `{"type": "error", "data": "<message>"}`, then a close: 1011 for a failure, 4404 for an
  unknown job or pod, 4409 for a name found in several namespaces, 4403 when the caller may
  not read the logs (`get pods/log`) in the namespace named, 1013 when the server follows too
  many log streams already (try again later).

The server closes with 1001 when it shuts down, and disconnects a client that accepts
nothing for a while. Pings go out every `log_heartbeat` seconds (25 by default); a client
that has answered none by the next one is disconnected. To resume after a disconnect,
reconnect with `since=<cursor of the last frame received>`: nothing is missed and nothing
repeated, in any pod of the job. The cursor is opaque; it holds each pod's last timestamp
and how many of its lines carry that timestamp, so a line that arrives late from one pod
is not skipped (a plain timestamp, still accepted, would skip it). The same logs come as Server-Sent Events
from `GET /api/v1/jobs/{jobId}/logs/stream`, and beside other streams on `WS /api/v1/stream`.
"""


class LogQuerySchema(Schema):
    namespace = fields.String(metadata={
        "description": "Namespace of the job; without it every namespace is searched"})
    pod = fields.String(metadata={"description": "Only this pod of the job"})
    container = fields.String(metadata={
        "description": "Container name; default: the pod's default (first) container"})
    tail = fields.Integer(load_default=100, validate=validate.Range(min=1, max=10000),
                          metadata={"description": "How many of the last lines"})
    sinceSeconds = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "Only lines of the last N seconds"})
    sinceTime = RFC3339(metadata={"description": "Only lines at or after this RFC3339 time"})
    timestamps = QueryBoolean(load_default=True, metadata={
        "description": "Start each line with its RFC3339Nano timestamp"})

    @validates_schema
    def _one_since(self, data: dict, **kwargs) -> None:
        if "sinceSeconds" in data and "sinceTime" in data:
            raise ValidationError("give sinceSeconds or sinceTime, not both", "sinceTime")


class TailQuerySchema(LogQuerySchema):
    follow = QueryBoolean(load_default=False, metadata={
        "description": "Not supported here: use the WebSocket route to follow"})


class StreamQuerySchema(LogQuerySchema):
    since = CursorField(metadata={
        "description": "Resume: the `cursor` of the last frame seen (exact per pod: no gap, "
                       "no repeat), or an RFC3339 timestamp (every line after it), instead "
                       "of the tail"})


class LogsResponseSchema(Schema):
    logs = fields.List(fields.String(), required=True, metadata={
        "example": ["2024-01-01T12:00:00.000000000Z epoch 1 loss 0.42"]})
    lastTimestamp = fields.String(required=True, allow_none=True, metadata={
        "description": "Timestamp of the last line, or null without lines"})
    pods = fields.List(fields.String(), required=True, metadata={
        "description": "The pods whose logs were read"})


class LogFrameSchema(Schema):
    type = fields.String(required=True, metadata={
        "description": "log, logs, dropped, pod-ended, end or error"})
    data = fields.String(metadata={"description": "log: the line; error: the message"})
    pod = fields.String()
    ts = fields.String(metadata={"description": "RFC3339Nano timestamp of the line"})
    lines = fields.List(fields.Dict(), metadata={"description": "logs: [{data, pod, ts}]"})
    count = fields.Integer(metadata={"description": "dropped: lines skipped"})
    cursor = fields.String(metadata={
        "description": "log, logs: where the client is after this frame; `since` resumes "
                       "from it"})


@docs(tags=TAGS, summary="Get a job's logs",
      description="The last `tail` lines of the job's pods, merged in time order (or of one "
                  "`pod`). `jobId` is a job name or one of its pod names. A container that "
                  "has not started yet answers 409 with Kubernetes' reason. To follow the "
                  "logs use the WebSocket route; `follow=true` here is a 400.",
      responses={200: json_content(LogsResponseSchema, "The lines"),
                 **error_responses(400, 403, 404, 409, 503)})
@querystring_schema(TailQuerySchema)
async def get_logs(request: web.Request) -> web.Response:
    query = request["querystring"]
    if query["follow"]:
        raise BadRequest("Use WebSocket for follow mode")
    namespace = query.get("namespace")
    within = await read_scope(request, GET_LOGS, namespace)
    job = find_job(request.app[CACHE], request.match_info["jobId"], namespace, within=within)
    pod = query.get("pod")
    tail = await job_tail(request.app[KUBE], job, pod=pod, container=query.get("container"),
                          tail=query["tail"], since_ns=query.get("sinceTime"),
                          since_seconds=query.get("sinceSeconds"))
    timestamps = query["timestamps"]
    return json_response({"logs": [line.data(timestamps) for line in tail.lines],
                          "lastTimestamp": tail.lines[-1].ts if tail.lines else None,
                          "pods": tail.pods})


@docs(tags=TAGS, summary="Stream a job's logs (WebSocket)", description=WS_DESCRIPTION,
      responses={101: json_content(LogFrameSchema, "WebSocket; each frame is JSON"),
                 **error_responses(400)})
@querystring_schema(StreamQuerySchema)
async def stream_logs(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    query = request["querystring"]
    # autoping off: the app's one heartbeat pings and sees the pongs (api.heartbeat).
    ws = web.WebSocketResponse(autoping=False, compress=False, protocols=(SUBPROTOCOL,))
    require_websocket(ws, request)
    await requestids.prepare(ws, request)
    sockets = request.app[LOG_SOCKETS]
    sockets.add(ws)
    heartbeat = request.app[HEARTBEAT]
    heartbeat.add(ws, request)
    sink = Sink(ws, request, timestamps=query["timestamps"],
                max_lines=settings.log_queue_lines, stall_timeout=settings.log_stall_timeout,
                stats=request.app[LOG_HUB].stats)
    session: JobLogSession | None = None
    ending: list[asyncio.Task[None]] = []
    leaving = False  # the handler is past its loop: an end now needs no closing task
    try:
        try:
            namespace = query.get("namespace")
            within = await read_scope(request, GET_LOGS, namespace)
            job = find_job(request.app[CACHE], request.match_info["jobId"], namespace,
                           within=within)
            pod = query.get("pod")
            if pod is not None and all(p["metadata"]["name"] != pod for p in job.pods):
                raise NotFound(f"Pod '{pod}' not found in job '{job.name}'")
        except GpuctlError as exc:  # after the upgrade: an error frame, not an HTTP answer
            code = next((code for kind, code in _CLOSE_CODES.items() if isinstance(exc, kind)),
                        WSCloseCode.INTERNAL_ERROR)
            await _close_with_error(ws, sink, exc.message, code)
            return ws
        session = JobLogSession(request.app[LOG_HUB], job, sink, FollowOptions.from_params(query))
        try:
            await session.start()  # the tail; the client's messages wait meanwhile
        except Exception as exc:
            await _end(ws, sink, session, exc)
            return ws

        def ended(done: asyncio.Future[None], session: JobLogSession = session) -> None:
            if done.cancelled():
                return
            exc = done.exception()  # retrieved either way
            if not leaving:
                ending.append(asyncio.create_task(_end(ws, sink, session, exc),
                                                  name="log session end"))

        # Following takes no task of its own (~1 KiB a client): the session's end closes.
        session.done.add_done_callback(ended)
        async for message in ws:
            if heartbeat.consumed(ws, message):
                continue
            if message.type == WSMsgType.ERROR:
                break
    finally:
        heartbeat.discard(ws)
        leaving = True
        for task in ending:
            task.cancel()
        await asyncio.gather(*ending, return_exceptions=True)
        if session is not None:
            await session.close()
        await sink.close()
        sockets.discard(ws)
    return ws


async def _end(ws: web.WebSocketResponse, sink: Sink, session: JobLogSession,
               exc: BaseException | None) -> None:
    """Close the socket once its session is over: normally after ``end``, or with the error
    frame and code of what ended it."""
    if exc is None:
        await sink.flush()
        await ws.close()
    elif isinstance(exc, TooManyStreams):
        await _close_with_error(ws, sink, exc.message, WSCloseCode.TRY_AGAIN_LATER)
    elif isinstance(exc, (SessionFailed, GpuctlError)):
        await _close_with_error(ws, sink, str(exc), WSCloseCode.INTERNAL_ERROR)
    else:
        log.error("log stream of %s failed", session.job.name, exc_info=exc)
        await _close_with_error(ws, sink, "internal error while streaming logs",
                                WSCloseCode.INTERNAL_ERROR)


async def _close_with_error(ws: web.WebSocketResponse, sink: Sink, message: str,
                            code: int) -> None:
    sink.control("error", data=message)
    await sink.flush()
    await ws.close(code=code, message=message.encode()[:120])


def setup_log_routes(app: web.Application) -> None:
    app[LOG_SOCKETS] = set()
    close_at_shutdown(app, LOG_SOCKETS)
    app.router.add_get("/api/v1/jobs/{jobId}/logs", get_logs)
    app.router.add_get("/api/v1/jobs/{jobId}/logs/ws", stream_logs)
