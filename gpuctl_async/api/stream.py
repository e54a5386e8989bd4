"""``WS /api/v1/stream``: many log subscriptions and job feeds over one socket."""

from __future__ import annotations

from aiohttp import WSMsgType, web
from aiohttp_apigami import docs
from marshmallow import Schema, fields

from gpuctl_async import requestids
from gpuctl_async.api.heartbeat import HEARTBEAT
from gpuctl_async.api.job_feed import FEED_STATS
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.responses import require_websocket
from gpuctl_async.api.sockets import close_at_shutdown
from gpuctl_async.appkeys import CACHE, LISTING, LOG_HUB, SETTINGS
from gpuctl_async.auth import SUBPROTOCOL
from gpuctl_async.streams.multiplex import Multiplexer

STREAM_SOCKETS = web.AppKey("stream_sockets", dict)
"""Open multiplexed sockets and their :class:`Multiplexer`."""
MAX_MESSAGE_BYTES = 1024 * 1024
"""Largest client message (a resume cursor of a job with many pods is long)."""

DESCRIPTION = """\
One WebSocket, many streams: a dashboard follows the logs of many jobs and the job list
without a socket each. The client sends JSON text messages:

- `{"op": "subscribe", "id": "<client id>", "logs": {"jobId", "namespace"?, "pod"?,
  "container"?, "tail"?, "since"?, "sinceSeconds"?, "sinceTime"?, "timestamps"?}}`: a job's
  logs, as `WS /api/v1/jobs/{jobId}/logs/ws` with those query parameters;
- `{"op": "subscribe", "id": "<client id>", "jobs": {"namespace"?, "kind"?, "pool"?}}`: the
  job feed, as `WS /api/v1/jobs-feed/ws`;
- `{"op": "unsubscribe", "id": "<client id>"}`.

The server sends the frames of those routes with the subscription's `id` added (log lines
carry their `cursor`), and:

- `{"type": "subscribed", "id", "logs": {"job", "namespace"}}` or `... "jobs": {filters}}`
  before the subscription's first frame;
- `{"type": "unsubscribed", "id"}` after its last one;
- `{"type": "error", "id", "code", "data": "<message>", "details"?}`: that subscription is
  refused or over (`code` as the plain route's HTTP status: 400 invalid message, with
  `details` per field, `id` null when the message named none; 403 the caller may not `get
  pods/log` (logs) or `list pods` (jobs) in that namespace; 404 unknown job, pod or
  subscription; 409 a name in several namespaces, or an id in use; 429 too many
  subscriptions on this socket, or too many requests from this address (each subscribe
  counts as one); 502 Kubernetes failed the stream; 503 too many upstream log
  streams, or too many bytes waiting for this socket, when the subscription holding the most
  is ended). Every other subscription goes on.

A subscription that gets `end` or `error` is over and its id is free. Each subscription has
its own queue: one that floods drops its own oldest lines (`dropped`), never another's. To
resume after a reconnect, subscribe again with `since` = the `cursor` of the last frame
received for that id: no gap, no repeat, across every pod of the job. The socket closes with
1001 when the server shuts down, and is disconnected when it accepts nothing for a while,
or when it sends messages while reading none of the answers until more than
`stream_max_pending_bytes` of them wait.

This is a WebSocket: Swagger UI's "Try it out" cannot open one, and a plain GET answers 400.
Connect with a WebSocket client, e.g. `websocat 'ws://localhost:8000/api/v1/stream'`, or in a
browser `new WebSocket("ws://" + location.host + "/api/v1/stream")`.

A sample session (`>` client, `<` server):

```
> {"op": "subscribe", "id": "a", "logs": {"jobId": "train-1", "tail": 2}}
> {"op": "subscribe", "id": "jobs", "jobs": {"namespace": "team-a"}}
> {"op": "subscribe", "id": "b", "logs": {"jobId": "theirs", "namespace": "team-b"}}
< {"type": "subscribed", "id": "a", "logs": {"job": "train-1", "namespace": "team-a"}}
< {"id": "a", "type": "logs", "lines": [{"data": "... step 41", "pod": "train-1-x7k2p",
   "ts": "2024-01-01T12:00:00.100000000Z"}, {...step 42...}], "cursor": "1~.x7k2p_17f..."}
< {"type": "subscribed", "id": "jobs", "jobs": {"namespace": "team-a"}}
< {"id": "jobs", "type": "snapshot", "items": [...]}
< {"type": "error", "id": "b", "code": 403, "data": "Forbidden: User \\"alice\\" cannot get
   resource \\"pods/log\\" in API group \\"\\" in the namespace \\"team-b\\""}
< {"id": "a", "type": "log", "data": "... step 43", "pod": "train-1-x7k2p", "ts": "...",
   "cursor": "1~.x7k2p_17f..."}
> {"op": "unsubscribe", "id": "a"}
< {"type": "unsubscribed", "id": "a"}
```

After a reconnect: `{"op": "subscribe", "id": "a", "logs": {"jobId": "train-1", "since":
"<cursor of the last frame of a>"}}`.
"""


class StreamFrameSchema(Schema):
    """A server frame: a log or job feed frame with ``id``, or the socket's own."""

    id = fields.String(allow_none=True, metadata={
        "description": "The subscription (null: an error about a message that named none)"})
    type = fields.String(required=True, metadata={
        "description": "subscribed, unsubscribed, error; log, logs, dropped, pod-ended, end "
                       "(logs); snapshot, ADDED, MODIFIED, DELETED (jobs)"})
    code = fields.Integer(metadata={"description": "error: the HTTP status of the refusal"})
    data = fields.String(metadata={"description": "log: the line; error: the message"})
    details = fields.Dict(metadata={"description": "error 400: field path → problems"})
    cursor = fields.String(metadata={"description": "log, logs: resume after this frame"})
    logs = fields.Dict(metadata={"description": "subscribed: {job, namespace}"})
    jobs = fields.Dict(metadata={"description": "subscribed: the feed's filters"})


@docs(tags=["jobs"], summary="Many log streams and job feeds over one socket (WebSocket)",
      description=DESCRIPTION,
      responses={101: json_content(StreamFrameSchema, "WebSocket; each frame is JSON text"),
                 **error_responses(400)})
async def stream(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[SETTINGS]
    # autoping off: the app's one heartbeat pings and sees the pongs (api.heartbeat).
    ws = web.WebSocketResponse(autoping=False, compress=False, protocols=(SUBPROTOCOL,),
                               max_msg_size=MAX_MESSAGE_BYTES)
    require_websocket(ws, request)
    await requestids.prepare(ws, request)
    heartbeat = app[HEARTBEAT]
    heartbeat.add(ws, request)
    mux = Multiplexer(request, ws, hub=app[LOG_HUB], cache=app[CACHE], listing=app[LISTING],
                      feed_stats=app[FEED_STATS], settings=settings)
    app[STREAM_SOCKETS][ws] = mux
    try:
        async for message in ws:
            if heartbeat.consumed(ws, message):
                continue
            if message.type == WSMsgType.TEXT:
                mux.receive(message.data)
            elif message.type == WSMsgType.BINARY:
                mux.refuse("binary messages are not understood: send JSON text")
            elif message.type == WSMsgType.ERROR:
                break
            if mux.flooding:
                mux.abort()
                break
    finally:
        heartbeat.discard(ws)
        await mux.close()
        app[STREAM_SOCKETS].pop(ws, None)
    return ws


def setup_stream_routes(app: web.Application) -> None:
    app[STREAM_SOCKETS] = {}
    close_at_shutdown(app, STREAM_SOCKETS)
    app.router.add_get("/api/v1/stream", stream)
