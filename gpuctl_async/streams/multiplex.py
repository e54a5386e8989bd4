"""One multiplexed socket: its subscriptions, each on its own.

Every subscription has its own outbox on the socket's channel (``logs.sink``): its own bound
on queued lines (a flooding one drops its own oldest lines and says so), its own share of the
connection when the client reads slowly. Each is authorized on its own, as the route it stands
for would be (``get pods/log`` for logs, ``list pods`` for the job feed): a refusal, an
unknown job, too many upstream streams, is an ``error`` frame for that subscription, and the
others go on; a job feed asks again before each batch of changes (a removed binding ends it
with an error frame within the decision TTL). So are the socket's limits: one subscription
too many is refused with an error frame; when the bytes queued for the socket pass
``max_pending_bytes``, the subscription holding the most is ended with an error frame.

Server frames: the log session's and the job feed's frames with ``"id"``, plus
``{"type": "subscribed", "id", "logs": {"job", "namespace"} | "jobs": {filters}}`` before a
subscription's first frame, ``{"type": "unsubscribed", "id"}`` after its last one, and
``{"type": "error", "id", "code", "data"[, "details"]}`` (``code`` as the HTTP status the
same refusal gets on the plain routes; ``id`` null for a message that named none). A
subscription that ends (``end``, ``error``) frees its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import orjson
from aiohttp import web

from gpuctl_async.auth.guard import read_scope
from gpuctl_async.auth.permissions import GET_LOGS, LIST_PODS
from gpuctl_async.errors import GpuctlError, NotFound
from gpuctl_async.jobs.feed import FeedStats, JobFeed
from gpuctl_async.jobs.listing import JobListing
from gpuctl_async.jobs.lookup import JobRef, find_job
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.logs.frames import compact, control_frame
from gpuctl_async.logs.hub import LogHub
from gpuctl_async.logs.session import FollowOptions, JobLogSession, SessionFailed
from gpuctl_async.logs.sink import Channel, Outbox
from gpuctl_async.ratelimit import RATE_BUCKETS, client_key
from gpuctl_async.settings import Settings
from gpuctl_async.streams.protocol import LOGS, SUBSCRIBE, Message, ProtocolError, parse_message

log = logging.getLogger(__name__)


class Subscription:
    """One subscription: its outbox, and the task that starts it (a job feed's runs on; a
    log subscription's ends once its session follows: the hub's callbacks drive it)."""

    __slots__ = ("mux", "id", "kind", "params", "outbox", "task", "session")

    def __init__(self, mux: Multiplexer, message: Message):
        self.mux = mux
        self.id = message.id
        self.kind = message.kind
        self.params = message.params or {}
        self.outbox = Outbox(mux.channel, timestamps=self.params.get("timestamps", True),
                             max_lines=mux.settings.log_queue_lines, sub_id=message.id)
        self.session: JobLogSession | None = None
        self.task: asyncio.Task[None] | None = asyncio.create_task(
            self._run(), name=f"subscription {message.id}")
        """None once a log subscription follows: a finished task keeps its coroutine (and
        a place in asyncio's task set), ~700 bytes a subscription."""

    async def _run(self) -> None:
        following = False
        try:
            if self.kind == LOGS:
                following = await self._start_logs()
            else:
                await self._follow_jobs()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._report(exc)
        finally:
            if not following:
                self.mux._ended(self)

    def _report(self, exc: BaseException) -> None:
        if isinstance(exc, SessionFailed):
            self.outbox.control("error", code=502, data=str(exc))  # Kubernetes failed it
        elif isinstance(exc, GpuctlError):
            self.outbox.control("error", code=exc.status, data=exc.message)
        else:
            log.error("subscription %s failed", self.id, exc_info=exc)
            self.outbox.control("error", code=500, data="internal error in this subscription")

    async def _start_logs(self) -> bool:
        mux, params = self.mux, self.params
        namespace = params.get("namespace")
        within = await read_scope(mux.request, GET_LOGS, namespace)
        job = mux.find_job(params["jobId"], namespace, within)
        pod = params.get("pod")
        if pod is not None and all(p["metadata"]["name"] != pod for p in job.pods):
            raise NotFound(f"Pod '{pod}' not found in job '{job.name}'")
        self.outbox.control("subscribed", logs={"job": job.name, "namespace": job.namespace})
        session = self.session = JobLogSession(mux.hub, job, self.outbox,
                                               FollowOptions.from_params(params))
        try:
            await session.start()
        except BaseException:
            self.session = None
            await session.close()
            raise
        session.done.add_done_callback(self._logs_done)
        self.task = None  # this task ends now, and is not kept
        return True

    def _logs_done(self, done: asyncio.Future[None]) -> None:
        if done.cancelled():
            return
        if (exc := done.exception()) is not None:
            self._report(exc)
        self.mux._ended(self)

    async def _follow_jobs(self) -> None:
        mux, filters = self.mux, self.params

        async def scope() -> frozenset[str] | None:
            return await read_scope(mux.request, LIST_PODS, filters.get("namespace"))

        head = b'{"id":' + orjson.dumps(self.id) + b","

        async def send(kind: str, frame: bytes) -> None:
            if kind == "snapshot":  # the first check passed
                self.outbox.control("subscribed", jobs=filters)
            self.outbox.frame(head + frame[1:])

        await JobFeed(mux.listing, filters, scope, stats=mux.feed_stats).run(send)


class Multiplexer:
    """The subscriptions of one socket; :meth:`receive` takes each client message."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, *, hub: LogHub,
                 cache: ClusterCache, listing: JobListing, feed_stats: FeedStats,
                 settings: Settings):
        self.request = request
        self.feed_stats = feed_stats
        self.hub, self.cache, self.listing, self.settings = hub, cache, listing, settings
        self.channel = Channel(ws, request, stall_timeout=settings.log_stall_timeout,
                               stats=hub.stats,
                               max_pending_bytes=settings.stream_max_pending_bytes,
                               on_overflow=self._overflow)
        self._control = Outbox(self.channel, timestamps=True, max_lines=1)
        """The socket's own frames: refusals of messages, ``unsubscribed``."""
        self._subs: dict[str, Subscription] = {}
        self._ending: set[asyncio.Task[None]] = set()

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subs)

    def __len__(self) -> int:
        return len(self._subs)

    def find_job(self, job_id: str, namespace: str | None,
                 within: frozenset[str] | None) -> JobRef:
        return find_job(self.cache, job_id, namespace, within=within)

    # -- client messages --------------------------------------------------------------------

    def receive(self, text: str | bytes) -> None:
        try:
            message = parse_message(text)
        except ProtocolError as exc:
            self._refuse(exc.id, 400, exc.message, exc.details)
            return
        if message.op == SUBSCRIBE:
            self._subscribe(message)
        else:
            self._unsubscribe(message.id)

    def refuse(self, message: str) -> None:
        """A message that is not understood at all (a binary frame)."""
        self._refuse(None, 400, message)

    @property
    def flooding(self) -> bool:
        """The client sends messages and reads none of the answers: past the socket's byte
        cap the socket's own frames are not dropped, so the connection is (by the view)."""
        return self._control.pending_bytes > self.settings.stream_max_pending_bytes

    def abort(self) -> None:
        log.info("multiplexed socket: the client reads none of its answers; disconnecting it")
        self.channel.abort()

    def _subscribe(self, message: Message) -> None:
        # A subscription costs what a request for its own socket would: one token of the
        # client address's rate limit (else a socket could churn streams unthrottled).
        buckets = self.request.app.get(RATE_BUCKETS)
        wait = buckets.take(client_key(self.request)) if buckets is not None else 0.0
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            self._refuse(message.id, 429, f"Too many requests from this address; retry in "
                                          f"{retry_after} s")
            return
        if message.id in self._subs:
            self._refuse(message.id, 409, f"Subscription '{message.id}' exists: unsubscribe "
                                          f"it first or use another id")
            return
        limit = self.settings.stream_max_subscriptions
        if len(self._subs) >= limit:
            self._refuse(message.id, 429, f"At most {limit} subscriptions per socket")
            return
        self._subs[message.id] = Subscription(self, message)

    def _unsubscribe(self, sub_id: str) -> None:
        sub = self._subs.get(sub_id)
        if sub is None:
            self._refuse(sub_id, 404, f"No subscription '{sub_id}'")
            return
        self._stop(sub)
        self._control.frame(control_frame("unsubscribed", orjson.dumps(sub_id)))

    def _refuse(self, sub_id: str | None, code: int, message: str,
                details: dict | None = None) -> None:
        fields: dict[str, object] = {"id": sub_id, "code": code, "data": message}
        if details:
            fields["details"] = details
        self._control.frame(compact(orjson.dumps({"type": "error", **fields})))

    # -- ending subscriptions ---------------------------------------------------------------

    def _stop(self, sub: Subscription) -> None:
        """End ``sub`` now: nothing more of it is sent (its queued frames are dropped)."""
        if self._subs.get(sub.id) is sub:
            del self._subs[sub.id]
        sub.outbox.discard()
        if sub.task is not None and not sub.task.done():
            sub.task.cancel()  # a session it was starting is closed by the task
            self._ending.add(sub.task)
            sub.task.add_done_callback(self._ending.discard)
        else:
            self._release(sub)

    def _ended(self, sub: Subscription) -> None:
        """``sub``'s task is over: its last frames (``end``, ``error``) still go out."""
        if self._subs.get(sub.id) is sub:
            del self._subs[sub.id]
        sub.outbox.finish()
        self._release(sub)

    def _release(self, sub: Subscription) -> None:
        """Close ``sub``'s log session (it has no task that would)."""
        session, sub.session = sub.session, None
        if session is not None:
            task = asyncio.create_task(session.close(), name=f"close subscription {sub.id}")
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def _overflow(self, outbox: Outbox) -> None:
        sub = next((s for s in self._subs.values() if s.outbox is outbox), None)
        if sub is None:
            return  # the socket's own frames: small, and never dropped
        self._stop(sub)
        self._refuse(sub.id, 503, f"Subscription ended: more than "
                                  f"{self.settings.stream_max_pending_bytes} bytes are waiting "
                                  f"for this socket and it held the most; read faster or "
                                  f"subscribe to less, then resubscribe with the last cursor")

    async def close(self) -> None:
        for sub in list(self._subs.values()):
            self._stop(sub)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._ending, return_exceptions=True)
        await self.channel.close()
