"""``GET /api/v1/jobs/{jobId}/logs/stream``: a job's logs as Server-Sent Events."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema

from gpuctl_async import requestids
from gpuctl_async.api.logs import StreamQuerySchema
from gpuctl_async.api.openapi import error_responses
from gpuctl_async.appkeys import CACHE, LOG_HUB, SETTINGS
from gpuctl_async.auth.guard import read_scope
from gpuctl_async.auth.permissions import GET_LOGS
from gpuctl_async.errors import NotFound, ValidationFailed
from gpuctl_async.jobs.lookup import find_job
from gpuctl_async.logs.cursor import Cursor, CursorError
from gpuctl_async.logs.session import FollowOptions, JobLogSession
from gpuctl_async.logs.sse import HEADERS, SseChannel, SseOutbox, follow_as_events

TAGS = ["jobs"]
STOPPING = web.AppKey("log_events_stopping", asyncio.Event)

DESCRIPTION = """\
The job's logs as Server-Sent Events (`text/event-stream`), for clients that speak only HTTP
(`curl -N`, a browser's `EventSource`): the tail (as the WebSocket route), then live lines.
Same parameters as `WS /api/v1/jobs/{jobId}/logs/ws`, and the same shared upstream streams.

Each line is one event: `id:` is its cursor, `data:` the line as JSON
`{"data", "pod", "ts"}`. A reconnect with the header `Last-Event-ID: <id of the last event
received>` (what `EventSource` sends by itself) resumes after it, exactly, across every pod
of the job; it overrides `since`. Other events are named: `event: pod-ended` (data
`{"pod"}`), `event: dropped` (`{"count"}`: the client read too slowly), `event: error`
(`{"data": "<message>"}`), and `event: end` when every container of the job has terminated
and the job will start no more; the response then ends (an `EventSource` should `close()` on
`end`, or it reconnects). A comment line (`: keep-alive`) goes out after
`log_sse_keepalive` seconds (15 by default) of silence. An unknown job or pod is a 404, a name in several namespaces a 409, a caller who may not
`get pods/log` there a 403, all before the stream starts.

```
$ curl -N http://gpuctl/api/v1/jobs/train-1/logs/stream?tail=2
id: 1~.x7k2p_17f0c2a1b3c4d5e6
data: {"data":"2024-01-01T12:00:00.100000000Z step 41","pod":"train-1-x7k2p","ts":"..."}

id: 1~.x7k2p_17f0c2a1b3d00000
data: {"data":"2024-01-01T12:00:00.200000000Z step 42","pod":"train-1-x7k2p","ts":"..."}

event: end
data: {}
```
"""


def _resume(request: web.Request, query: dict) -> dict:
    """``Last-Event-ID`` (a reconnect) takes the place of ``since``."""
    last = request.headers.get("Last-Event-ID", "").strip()
    if not last:
        return query
    try:
        return {**query, "since": Cursor.parse(last)}
    except CursorError as exc:
        raise ValidationFailed(f"Header 'Last-Event-ID' {exc}",
                         details={"Last-Event-ID": [str(exc)]}) from None


@docs(tags=TAGS, summary="Follow a job's logs (Server-Sent Events)", description=DESCRIPTION,
      responses={200: {"description": "An event stream",
                       "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                 **error_responses(400, 403, 404, 409)})
@querystring_schema(StreamQuerySchema)
async def log_events(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    query = _resume(request, request["querystring"])
    namespace = query.get("namespace")
    within = await read_scope(request, GET_LOGS, namespace)
    job = find_job(request.app[CACHE], request.match_info["jobId"], namespace, within=within)
    pod = query.get("pod")
    if pod is not None and all(p["metadata"]["name"] != pod for p in job.pods):
        raise NotFound(f"Pod '{pod}' not found in job '{job.name}'")
    response = web.StreamResponse(headers=HEADERS)
    await requestids.prepare(response, request)
    if request.method == "HEAD":
        return response  # the headers say what a GET would stream
    hub = request.app[LOG_HUB]
    channel = SseChannel(response, request, stall_timeout=settings.log_stall_timeout,
                         stats=hub.stats)
    outbox = SseOutbox(channel, timestamps=query["timestamps"],
                       max_lines=settings.log_queue_lines)
    session = JobLogSession(hub, job, outbox, FollowOptions.from_params(query))
    await follow_as_events(session, outbox, keepalive=settings.log_sse_keepalive,
                           stopping=request.app[STOPPING])
    return response


async def _stop_streams(app: web.Application) -> None:
    app[STOPPING].set()


def setup_log_event_routes(app: web.Application) -> None:
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/api/v1/jobs/{jobId}/logs/stream", log_events)
