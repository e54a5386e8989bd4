"""Following one job's logs for one WebSocket client.

The session listens to the shared stream of each pod's container (the hub's), and reads the
tail itself once that stream is open, so the tail and the live lines meet without a gap: a
live line is passed on only if it is newer than the last line this client got from that pod.
The tail of the pods running when the client connects is merged in time order and cut to
``tail`` lines (or, when resuming, is every line after the cursor's position for that pod);
a pod that starts later (a restart, a new replica, a retried Job pod) joins with all its
lines. Every delivery carries the client's cursor after it (``logs.cursor``). When a pod's stream
ends the client gets ``pod-ended``; when every pod is over and the job will start no more
(a Job that completed or failed, a controller that is gone, or the one pod asked for), it
gets ``end``.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from dataclasses import dataclass
from typing import Protocol

from gpuctl_async.errors import GpuctlError
from gpuctl_async.jobs.lookup import JobRef, job_pods
from gpuctl_async.k8s.client import KubeApiError
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.logs import pods as podinfo
from gpuctl_async.logs.cursor import ALL, Cursor, Position, after
from gpuctl_async.logs.frames import Batch
from gpuctl_async.logs.hub import LogHub, Stream
from gpuctl_async.logs.lines import NS, Line
from gpuctl_async.logs.reader import read_log
from gpuctl_async.logs.sink import MAX_FRAME_LINES

# How long the first tail waits for a running container's stream to open before going on
# without it (it then joins like a new pod).
READY_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)  # one per client: no instance dict
class FollowOptions:
    pod: str | None = None
    container: str | None = None
    tail: int = 100
    resume: Cursor | None = None
    """Resume: every line after the cursor's position for its pod, instead of the tail."""
    since_time_ns: int | None = None
    since_seconds: int | None = None

    @classmethod
    def from_params(cls, params: dict) -> FollowOptions:
        """From loaded parameters (``pod``, ``container``, ``tail``, ``since``, ``sinceTime``,
        ``sinceSeconds``): a log route's query string or a subscription's ``logs``."""
        return cls(pod=params.get("pod"), container=params.get("container"),
                   tail=params["tail"], resume=params.get("since"),
                   since_time_ns=params.get("sinceTime"),
                   since_seconds=params.get("sinceSeconds"))


class SessionFailed(Exception):
    """The session cannot go on; the message is for the client."""


class LogSink(Protocol):
    """Where a session's output goes (``logs.sink.Outbox``, ``logs.sse.SseOutbox``)."""

    per_line_cursor: bool

    def batch(self, batch: Batch, cursors: str | list[str]) -> None: ...

    def lines(self, lines: list[Line], cursors: str | list[str]) -> None: ...

    def control(self, kind: str, **fields: object) -> None: ...


class _Subscription:
    """One pod's stream as seen by one session."""

    __slots__ = ("session", "pod", "stream", "live", "pending", "ended", "announced")

    def __init__(self, session: JobLogSession, pod: str):
        self.session = session
        self.pod = pod
        self.stream: Stream | None = None
        self.live = False
        self.pending: list[Line] = []
        self.ended = False
        self.announced = False

    @property
    def position(self) -> Position | None:
        """Where this pod's lines are taken up: after the last one delivered (or skipped by
        the tail's cut), else where the resume cursor says; None: from its first line."""
        return self.session.cursor.position(self.pod)

    def on_lines(self, stream: Stream, batch: Batch) -> None:
        if not self.live:
            self.pending.extend(batch.lines)
            return
        if not after(batch.lines[0], self.position):
            self.deliver(batch.lines)
        else:
            self.session._send_batch(batch)

    def deliver(self, lines: list[Line]) -> None:
        position = self.position
        if position is not None:
            lines = [line for line in lines if after(line, position)]
        self.session._send(lines)

    def on_end(self, stream: Stream) -> None:
        self.ended = True
        self.session._ended(self)

    def on_error(self, stream: Stream, message: str) -> None:
        self.session._fail(message)


class JobLogSession:
    """Streams one job's logs into one client's sink until the job ends or fails."""

    __slots__ = ("hub", "job", "sink", "options", "cursor", "_subs", "_joins",
                 "_started", "_done", "_watching")

    def __init__(self, hub: LogHub, job: JobRef, sink: LogSink, options: FollowOptions):
        self.hub = hub
        self.job = job
        self.sink = sink
        self.options = options
        self._subs: dict[str, _Subscription] = {}
        # Made when first needed: an empty set is 216 bytes, times every connected client.
        self._joins: set[asyncio.Task[None]] | None = None
        self._started = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watching: str | None = None
        self.cursor = self._first_cursor()

    def _first_cursor(self) -> Cursor:
        options = self.options
        if options.resume is not None:
            return options.resume.rebind(self.job.name)
        # A fresh session's bounds hold for pods it has not delivered from yet, too.
        if options.since_time_ns is not None:
            return Cursor(self.job.name, floor=(options.since_time_ns - 1, ALL))
        if options.since_seconds is not None:
            return Cursor(self.job.name,
                          floor=(time.time_ns() - options.since_seconds * NS, ALL))
        return Cursor(self.job.name)

    # -- delivering -------------------------------------------------------------------------

    def _send(self, lines: list[Line]) -> None:
        """Lines newer than their pods' positions, in the order the client gets them; a long
        run (a tail, a resume) in pieces of at most a frame, each with its own cursor."""
        cursor = self.cursor
        for start in range(0, len(lines), MAX_FRAME_LINES):
            piece = lines[start:start + MAX_FRAME_LINES]
            if self.sink.per_line_cursor:
                tokens = []
                for line in piece:
                    cursor.advance(line)
                    tokens.append(cursor.token())
                self.sink.lines(piece, tokens)
                continue
            for line in piece:
                cursor.advance(line)
            self.sink.lines(piece, cursor.token())

    def _send_batch(self, batch: Batch) -> None:
        """A shared batch, every line of it newer than its pod's position."""
        cursor = self.cursor
        if self.sink.per_line_cursor:
            tokens = []
            for line in batch.lines:
                cursor.advance(line)
                tokens.append(cursor.token())
            self.sink.batch(batch, tokens)
            return
        position, segment = batch.end(cursor.job)  # one pod: its last line is its position
        cursor.set(batch.lines[-1].pod, position, segment)
        self.sink.batch(batch, cursor.token())

    async def run(self) -> None:
        """Send the tail, follow, and return at the job's end; SessionFailed on failure."""
        try:
            await self.start()
            await self._done
        finally:
            await self.close()

    async def start(self) -> None:
        """Send the tail and go live; from then on the session follows without a task of its
        own (the hub's callbacks drive it: a task and its frames are ~1 KiB, times every
        client) until :attr:`done`. The caller calls :meth:`close` in every case."""
        self._watching = f"{self.job.namespace}/{self.job.name}"
        self.hub.watch_job(self._watching, self)
        await self._start()
        self._check_end()

    @property
    def done(self) -> asyncio.Future[None]:
        """Resolved at the job's end (``end`` was sent); SessionFailed on failure."""
        return self._done

    async def close(self) -> None:
        if self._watching is not None:
            self.hub.unwatch_job(self._watching, self)
            self._watching = None
        if self._done.done() and not self._done.cancelled():
            # A failure may arrive here after run() already failed another way (the first
            # tail): it has been reported, so mark it retrieved rather than let asyncio warn.
            self._done.exception()
        joins = list(self._joins or ())
        for task in joins:
            task.cancel()
        await asyncio.gather(*joins, return_exceptions=True)
        for sub in self._subs.values():
            if sub.stream is not None:
                sub.stream.remove(sub)
        self._subs.clear()

    # -- the first tail ---------------------------------------------------------------------

    def _pods(self) -> list[Obj]:
        if self.options.pod:
            pod = self.hub.cache.pods.get(self.job.namespace, self.options.pod)
            return [pod] if pod is not None else []
        return job_pods(self.hub.cache, self.job.namespace, self.job.name)

    def _container(self, pod: Obj) -> str | None:
        return self.options.container or podinfo.default_container(pod)

    async def _start(self) -> None:
        first: list[tuple[_Subscription, Obj]] = []
        for pod in sorted(self._pods(), key=lambda p: p["metadata"]["name"]):
            sub = self._add(pod, join=False)
            if sub is not None and (sub.stream is None or podinfo.container_state(
                    pod, self._container(pod) or "") in (podinfo.RUNNING, podinfo.TERMINATED)):
                first.append((sub, pod))
            elif sub is not None:
                self._join_later(sub, pod)
        ready = [s.stream.ready.wait() for s, _ in first if s.stream is not None]
        if ready:
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    await asyncio.gather(*ready)
            except TimeoutError:
                pass  # whoever is not open yet joins later
        tails = await asyncio.gather(*(self._read(sub, pod, first=True) for sub, pod in first))
        merged = list(heapq.merge(*tails, key=lambda line: line.ns))
        if self.options.resume is None and len(merged) > self.options.tail:
            # Lines cut from the merged tail count as seen: a resume skips them too.
            cut = {line.pod: line for line in merged[:-self.options.tail]}
            for line in cut.values():
                self.cursor.advance(line)
            merged = merged[-self.options.tail:]
        self._send(merged)
        self._started = True
        self._go_live([sub for sub, _ in first])

    def _add(self, pod: Obj, *, join: bool) -> _Subscription | None:
        name = pod["metadata"]["name"]
        container = self._container(pod)
        if name in self._subs or container is None:
            return None
        sub = self._subs[name] = _Subscription(self, name)
        if podinfo.pod_over(pod):
            sub.ended = sub.announced = True  # over before we came: its tail is all there is
        else:
            sub.stream = self.hub.subscribe((self.job.namespace, name, container), sub)
        if join:
            self._join_later(sub, pod)
        return sub

    def _join_later(self, sub: _Subscription, pod: Obj) -> None:
        task = asyncio.create_task(self._join(sub, pod), name=f"log join {sub.pod}")
        if self._joins is None:
            self._joins = set()
        self._joins.add(task)
        task.add_done_callback(self._join_done)

    def _join_done(self, task: asyncio.Task[None]) -> None:
        if self._joins is not None:
            self._joins.discard(task)
            if not self._joins:
                self._joins = None

    async def _join(self, sub: _Subscription, pod: Obj) -> None:
        try:
            if sub.stream is not None:
                await sub.stream.ready.wait()
            lines = await self._read(sub, pod, first=False)
        except SessionFailed as exc:
            self._fail(str(exc))
            return
        sub.deliver(lines)
        self._go_live([sub])
        self._join_done(asyncio.current_task())  # so that the end check counts it done
        self._check_end()

    async def _read(self, sub: _Subscription, pod: Obj, *, first: bool) -> list[Line]:
        pod = self.hub.cache.pods.get(self.job.namespace, sub.pod) or pod  # now on a node?
        container = self._container(pod)
        if container is None or not podinfo.on_node(pod):
            return []
        options = self.options
        async with self.hub.reads:
            try:
                position = sub.position
                if options.resume is not None and position is not None:
                    lines = await read_log(self.hub.kube, self.job.namespace, sub.pod,
                                           container, since_ns=position[0])
                    return [line for line in lines if after(line, position)]
                if not first or options.resume is not None:
                    return await read_log(self.hub.kube, self.job.namespace, sub.pod,
                                          container)
                return await read_log(self.hub.kube, self.job.namespace, sub.pod, container,
                                      tail=options.tail, since_ns=options.since_time_ns,
                                      since_seconds=options.since_seconds)
            except KubeApiError as exc:
                if exc.code in (400, 404):
                    return []  # not started yet, or gone: its stream tells the rest
                raise SessionFailed(exc.message) from None
            except GpuctlError as exc:
                raise SessionFailed(exc.message) from None

    def _go_live(self, subs: list[_Subscription]) -> None:
        backlog = []
        for sub in subs:
            pending, sub.pending, sub.live = sub.pending, [], True
            position = sub.position
            if position is not None:
                pending = [line for line in pending if after(line, position)]
            if pending:
                backlog.append(pending)
        self._send(list(heapq.merge(*backlog, key=lambda line: line.ns)))
        for sub in subs:
            if sub.ended and not sub.announced:
                self._announce(sub)

    # -- following --------------------------------------------------------------------------

    def on_pod(self, pod: Obj) -> None:
        """A pod of the job changed in the cache (the hub calls this)."""
        name = pod["metadata"]["name"]
        known = self._subs.get(name)
        current = self.hub.cache.pods.get(self.job.namespace, name)
        if known is not None and known.ended and known.announced and current is not None \
                and not podinfo.pod_over(current) and not self.options.pod:
            del self._subs[name]  # a new pod with an old name (a StatefulSet's ordinal)
            known = None
        if not self._started or known is not None or self.options.pod:
            self._check_end()
            return
        if current is not None:
            try:
                self._add(current, join=True)
            except GpuctlError as exc:
                self._fail(exc.message)
                return
        self._check_end()

    def on_job_change(self) -> None:
        self._check_end()

    def _ended(self, sub: _Subscription) -> None:
        if sub.live:
            self._announce(sub)
        self._check_end()

    def _announce(self, sub: _Subscription) -> None:
        sub.announced = True
        self.sink.control("pod-ended", pod=sub.pod)

    def _check_end(self) -> None:
        if not self._started or self._done.done() or self._joins:
            return
        if any(not (sub.ended and sub.announced) for sub in self._subs.values()):
            return
        if not self.options.pod:
            if not self._will_not_start_more():
                return
            if any(not podinfo.pod_over(pod) for pod in self._pods()):
                return
        self.sink.control("end")
        self._done.set_result(None)

    def _will_not_start_more(self) -> bool:
        if self.job.controller is None:
            return True
        kind = self.job.controller["kind"]
        controller = self.hub.cache.controller_informer(kind).get(
            self.job.namespace, self.job.controller["metadata"]["name"])
        if controller is None:
            return True
        if kind != "Job":
            return False
        return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in controller.get("status", {}).get("conditions") or ())

    def _fail(self, message: str) -> None:
        if not self._done.done():
            self._done.set_exception(SessionFailed(message))
