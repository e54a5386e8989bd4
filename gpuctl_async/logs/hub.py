"""The log hub: one upstream ``follow=true`` stream per (namespace, pod, container), shared.

A :class:`Stream` starts with its first listener and is closed ``linger`` seconds after its
last one leaves (a listener coming back meanwhile keeps it). It follows the container
through its runs: when the upstream ends or drops while the pod goes on (a restart, a cut
connection, an API outage) it reopens it with ``sinceTime`` set to the last line it has
(the API rounds that down to whole seconds) and drops what it already passed on, so
listeners see every line once, in order. Lines sharing a timestamp are numbered
(``Line.seq``), so a resume in the middle of such a group drops exactly the ones passed on.
It ends when the pod is over (Succeeded, Failed or deleted) and its last run is read to the
end.

Lines are handed to listeners in batches: a line arriving after a quiet spell goes out at
once, later ones are gathered for at most ``batch_window`` seconds, so a burst becomes one
frame. The hub also routes the cache's pod and controller changes to streams and to job
sessions, so neither subscribes to the caches on its own (thousands of sockets would mean
thousands of callbacks per change).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from typing import Protocol

import aiohttp

from gpuctl_async.errors import GpuctlError
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeApiError, KubeClient, KubeUnavailable
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.resources import PODS
from gpuctl_async.logs import pods as podinfo
from gpuctl_async.logs.frames import Batch
from gpuctl_async.logs.lines import Line, LineSplitter, format_seconds, parse_line
from gpuctl_async.logs.stats import LogStats

log = logging.getLogger(__name__)

StreamKey = tuple[str, str, str]  # namespace, pod, container
BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 5.0
MAX_CONCURRENT_READS = 32
"""Clients' own log reads (tails, resumes, pods joining) in flight at once, over all clients.
A burst of subscriptions (a dashboard reconnecting 500 sockets) would otherwise send that
many log requests to the API server at once, and the service's memory would grow to hold
them all in flight: freed afterwards, but the process keeps that high-water mark."""


class TooManyStreams(GpuctlError):
    """The cap on concurrent upstream log streams is reached (503)."""

    status = 503


class StreamListener(Protocol):
    def on_lines(self, stream: Stream, batch: Batch) -> None: ...

    def on_end(self, stream: Stream) -> None: ...

    def on_error(self, stream: Stream, message: str) -> None: ...


class JobWatcher(Protocol):
    def on_job_change(self) -> None: ...

    def on_pod(self, pod: Obj) -> None: ...


class Stream:
    """One shared upstream log stream and its listeners."""

    def __init__(self, hub: LogHub, key: StreamKey):
        self.hub = hub
        self.key = key
        self.listeners: set[StreamListener] = set()
        self.ready = asyncio.Event()
        """Set once the upstream has been open (listeners may then read their own tail
        without missing a line), or once the stream is over."""
        self.over = False
        self.last_ns: int | None = None
        self.last_count = 0
        """How many lines passed on carry the timestamp ``last_ns``."""
        self._changed = asyncio.Event()
        self._pending: list[Line] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self._linger: asyncio.TimerHandle | None = None
        # A context of its own: the stream is shared and outlives the request that started
        # it, so it must not log under that request's id (or act as its caller).
        self._task = asyncio.create_task(self._run(), name=f"log stream {'/'.join(key)}",
                                         context=contextvars.Context())

    @property
    def pod(self) -> str:
        return self.key[1]

    # -- listeners ------------------------------------------------------------------------

    def add(self, listener: StreamListener) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.listeners.add(listener)

    def remove(self, listener: StreamListener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and not self.over and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(
                self.hub.linger, self.hub._expire, self)

    @property
    def lingering(self) -> bool:
        return self._linger is not None

    def poke(self) -> None:
        """The pod changed in the cache."""
        self._changed.set()

    async def close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # -- the upstream ---------------------------------------------------------------------

    def _pod(self) -> Obj | None:
        return self.hub.cache.pods.get(self.key[0], self.key[1])

    async def _run(self) -> None:
        container = self.key[2]
        backoff = BACKOFF_INITIAL
        drained: tuple | None = None  # the run signature last read to its end
        opened = False
        try:
            while True:
                self._changed.clear()  # before reading the pod: no change goes unnoticed
                pod = self._pod()
                state = podinfo.container_state(pod, container)
                signature = podinfo.run_signature(pod, container)
                if state == podinfo.RUNNING or (state == podinfo.TERMINATED
                                                and signature != drained):
                    try:
                        got = await self._follow(first=not opened)
                        opened = True
                        if got:
                            backoff = BACKOFF_INITIAL
                        drained = signature
                    except KubeApiError as exc:
                        if exc.code == 404:
                            break  # the pod is gone
                        if exc.code not in (400, 429) and exc.code < 500:
                            self._fail(exc.message)
                            return
                        # 400: not started after all (the cache was ahead); 5xx: retry
                    except (KubeUnavailable, aiohttp.ClientError, asyncio.TimeoutError,
                            ConnectionError) as exc:
                        log.debug("log stream %s dropped: %r", "/".join(self.key), exc)
                    pod = self._pod()
                    state = podinfo.container_state(pod, container)
                unread = state == podinfo.RUNNING or (
                    state == podinfo.TERMINATED
                    and podinfo.run_signature(pod, container) != drained)
                if podinfo.pod_over(pod) and (pod is None or not unread):
                    break
                # Lines may be left (a drop, an outage, or the cache has not seen the end
                # yet): retry soon; otherwise wait for the container's next run.
                timeout = backoff if unread else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._changed.wait()
                backoff = min(backoff * 2, BACKOFF_MAX)
        except asyncio.CancelledError:
            self.over = True
            raise
        except Exception:
            log.exception("log stream %s failed", "/".join(self.key))
            self._fail("internal error while streaming logs")
            return
        self._finish()

    async def _follow(self, first: bool) -> bool:
        """Read one upstream connection to its end; returns whether it brought new lines."""
        namespace, pod, container = self.key
        query: dict[str, object] = {"container": container, "follow": True, "timestamps": True}
        if self.last_ns is not None:
            query["sinceTime"] = format_seconds(self.last_ns)
        elif first:
            query["tailLines"] = 0  # listeners read their own tails
        response = await self.hub.kube.open("GET", PODS.path(namespace, pod, "log"),
                                            query=query, accept="*/*")
        got = False
        # A resumed read starts at a whole second, so the lines of each timestamp come
        # complete and numbering them again here matches the numbers given before.
        group_ns, group_seq = None, -1
        seam = (self.last_ns, self.last_count) if self.last_ns is not None else None
        if self.ready.is_set():  # it has been open before: this reopens it
            self.hub.stats.resumes += 1
        try:
            self.ready.set()
            splitter = LineSplitter()
            while chunk := await response.content.readany():
                for raw in splitter.feed(chunk):
                    line = parse_line(raw, pod)
                    if line is None:
                        continue
                    group_seq = group_seq + 1 if line.ns == group_ns else 0
                    group_ns = line.ns
                    line.seq = group_seq
                    if seam is not None and (line.ns, line.seq) < seam:
                        continue  # the seam of a resumed stream: already passed on
                    self.last_ns, self.last_count = line.ns, line.seq + 1
                    self._pending.append(line)
                    got = True
                self._schedule_flush()
        finally:
            response.close()
        return got

    # -- handing lines out ----------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._pending or self._flush_handle is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_flush + self.hub.batch_window
        if loop.time() >= due:
            self._flush()
        else:
            self._flush_handle = loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._pending:
            return
        batch = Batch(self._pending)
        self._pending = []
        self._last_flush = asyncio.get_running_loop().time()
        for listener in list(self.listeners):
            listener.on_lines(self, batch)

    def _finish(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self.over = True
        self.ready.set()
        self.hub._forget(self)
        for listener in list(self.listeners):
            listener.on_end(self)

    def _fail(self, message: str) -> None:
        self.over = True
        self.ready.set()
        self.hub._forget(self)
        for listener in list(self.listeners):
            listener.on_error(self, message)


class LogHub:
    """Every shared upstream log stream of the app, and the routing of cache changes."""

    def __init__(self, kube: KubeClient, cache: ClusterCache, *, max_streams: int = 1000,
                 linger: float = 1.0, batch_window: float = 0.02):
        self.kube = kube
        self.cache = cache
        self.max_streams = max_streams
        self.linger = linger
        self.batch_window = batch_window
        self._streams: dict[StreamKey, Stream] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._jobs: dict[str, set[JobWatcher]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self.stats = LogStats()
        """Counted by streams and clients' sinks; read by the metrics collector."""
        self.reads = asyncio.Semaphore(MAX_CONCURRENT_READS)
        """Taken by sessions for each of their own reads (:data:`MAX_CONCURRENT_READS`)."""

    def start(self) -> None:
        self._unsubscribe = [self.cache.pods.subscribe(self._on_pod)]
        self._unsubscribe += [informer.subscribe(self._on_controller)
                              for informer in self.cache.controllers()]

    async def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        streams = list(self._streams.values())
        self._streams.clear()
        await asyncio.gather(*(stream.close() for stream in streams), *self._closing,
                             return_exceptions=True)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def subscribers(self) -> int:
        """Listeners over all streams (one per pod followed by each client)."""
        return sum(len(stream.listeners) for stream in self._streams.values())

    @property
    def watched_jobs(self) -> int:
        return len(self._jobs)

    # -- streams --------------------------------------------------------------------------

    def subscribe(self, key: StreamKey, listener: StreamListener) -> Stream:
        """Listen to the stream of ``key``, starting it if needed; TooManyStreams at the cap."""
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= self.max_streams:
                self._evict_lingering()
            if len(self._streams) >= self.max_streams:
                raise TooManyStreams(f"Too many log streams are open ({self.max_streams}); "
                                     f"try again later")
            stream = self._streams[key] = Stream(self, key)
        stream.add(listener)
        return stream

    def _evict_lingering(self) -> None:
        for stream in [s for s in self._streams.values() if s.lingering]:
            self._expire(stream)
            if len(self._streams) < self.max_streams:
                return

    def _expire(self, stream: Stream) -> None:
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]
        task = asyncio.create_task(stream.close(), name=f"close log stream {stream.pod}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _forget(self, stream: Stream) -> None:
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]

    # -- routing cache changes ------------------------------------------------------------

    def watch_job(self, job_key: str, watcher: JobWatcher) -> None:
        """Tell ``watcher`` of changes to the job's pods and controller (``<ns>/<job>``)
        until :meth:`unwatch_job`."""
        self._jobs.setdefault(job_key, set()).add(watcher)

    def unwatch_job(self, job_key: str, watcher: JobWatcher) -> None:
        watchers = self._jobs.get(job_key)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._jobs[job_key]

    def _on_pod(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        pod = new or old or {}
        meta = pod.get("metadata", {})
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        for container in pod.get("spec", {}).get("containers") or ():
            stream = self._streams.get((namespace, name, container.get("name", "")))
            if stream is not None:
                stream.poke()
        job = meta.get("labels", {}).get(labels.JOB_NAME)
        for watcher in list(self._jobs.get(f"{namespace}/{job}", ())) if job else ():
            watcher.on_pod(pod)

    def _on_controller(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        meta = (new or old or {}).get("metadata", {})
        job = meta.get("labels", {}).get(labels.JOB_NAME, meta.get("name"))
        for watcher in list(self._jobs.get(f"{meta.get('namespace', '')}/{job}", ())):
            watcher.on_job_change()
