"""Container logs: ``GET /api/v1/namespaces/{ns}/pods/{name}/log``, as kubelet and API server.

Driven only by what a kubelet publishes in pod status (``status.containerStatuses[]`` and
``initContainerStatuses[]``: ``state.running.startedAt``, ``state.terminated``,
``lastState.terminated``, ``restartCount``), observed through the store's pod listener, so it
works with any kubelet (the simulated one, or a test writing statuses itself).

Every run of a container ("instance": one per restart) writes deterministic lines
``<pod> <container> run <restart> line <n>``, line ``n`` stamped ``start + (n+1)/rate``; the
rate is ``lines_per_second`` or the pod's annotation ``sim.runwhere.ai/log-lines-per-second``.
Two more pod annotations shape the timestamps as real nodes do:
``sim.runwhere.ai/log-lines-per-write: "N"`` writes lines N at a time, all N with one
timestamp (a multi-line write: the runtime stamps what one read returned), at ``rate``
writes a second; ``sim.runwhere.ai/log-clock-lag-seconds: "S"`` puts the node's clock S
seconds behind: each line is readable when written but stamped S seconds earlier, so next to
other pods' lines it arrives late for its timestamp.
Lines are a pure function of the instance, so the "buffer" is virtual: nothing is generated
until read, idle pods cost nothing, and only the last ``buffer_lines`` lines of a run are
kept (older ones are gone, as after log rotation). A run ends when its container is seen
terminated (or waiting again, or the pod deleted); a restarted container keeps its previous
run for ``previous=true``.

Query parameters as the API server takes them (booleans in any case, as kubernetes_asyncio
sends ``True``): ``container`` (required when the pod has several), ``follow``, ``previous``,
``timestamps`` (RFC3339 with 9 fractional digits, as the kubelet writes them), ``tailLines``
(the last N lines, then ``since*`` filters them), ``sinceSeconds``, ``sinceTime`` (the API
server forwards it to the kubelet with whole-second precision, so a resume repeats up to a
second of lines: clients must de-duplicate), ``limitBytes`` (cuts anywhere, even mid-line).
Errors are the real ones: 422 for invalid options, 400 for a missing or unknown container,
and the kubelet's 400s (``container "main" in pod "p" is waiting to start:
ContainerCreating``, ``previous terminated container "main" in pod "p" not found``...). A pod
not bound to a node has an empty log. A ``follow`` stream ends when its run ends.

``/_sim/logs/close?mode=eof|reset`` cuts every open follow stream (``eof``: a clean end of
the body; ``reset``: the connection is dropped), and ``/_sim/counters`` reports open follow
streams per pod under ``logs.open`` (``{"<ns>/<pod>": n}``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from datetime import datetime, timezone

from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.faults import SIM_PREFIX
from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.rest import Target, _flag, _int
from gpuctl_async.sim.store import Store

RATE_ANNOTATION = "sim.runwhere.ai/log-lines-per-second"
BURST_ANNOTATION = "sim.runwhere.ai/log-lines-per-write"
LAG_ANNOTATION = "sim.runwhere.ai/log-clock-lag-seconds"
_NS = 1_000_000_000
# How long a follower may wait before looking again (a cut or an end wakes it earlier).
_MAX_WAIT = 1.0

Key = tuple[str, str]


def format_ts(ns: int) -> str:
    """RFC3339 with fixed nanoseconds in UTC, the kubelet's ``RFC3339NanoFixed``."""
    seconds, fraction = divmod(ns, _NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def _parse_time(text: str | None) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000


class Follower:
    """One open ``follow`` stream; ``wake`` is set when its run ends or a fault cuts it."""

    __slots__ = ("key", "wake", "cut")

    def __init__(self, key: Key):
        self.key = key
        self.wake = asyncio.Event()
        self.cut: str | None = None


class Instance:
    """One run of one container."""

    __slots__ = ("pod", "container", "restart", "start", "end", "period", "capacity",
                 "followers", "burst", "lag")

    def __init__(self, pod: str, container: str, restart: int, start: int, rate: float,
                 capacity: int, burst: int = 1, lag: int = 0):
        self.pod, self.container, self.restart = pod, container, restart
        self.start = start
        self.end: int | None = None
        self.period = int(_NS / rate) if rate > 0 else 0
        self.capacity = capacity
        self.followers: set[Follower] = set()
        self.burst = max(1, burst)
        """Lines per write: they share one timestamp."""
        self.lag = lag
        """How far (ns) the node's clock is behind: lines are stamped that much early."""

    def finish(self, at: int) -> None:
        if self.end is None:
            self.end = max(self.start, at)
            for follower in self.followers:
                follower.wake.set()

    def written(self, now: int) -> int:
        """How many lines exist at ``now``."""
        if not self.period:
            return 0
        upto = now if self.end is None else min(now, self.end)
        return max(0, (upto - self.start) // self.period) * self.burst

    def oldest(self, now: int) -> int:
        return max(0, self.written(now) - self.capacity)

    def due(self, index: int) -> int:
        """When (real time) line ``index`` is written."""
        return self.start + (index // self.burst + 1) * self.period

    def stamp(self, index: int) -> int:
        return self.due(index) - self.lag

    def first_since(self, since: int) -> int:
        """The index of the first line stamped at or after ``since``."""
        if not self.period:
            return 0
        writes = math.ceil((since + self.lag - self.start) / self.period) - 1
        return max(0, writes) * self.burst

    def line(self, index: int, timestamps: bool) -> bytes:
        text = f"{self.pod} {self.container} run {self.restart} line {index}\n"
        if timestamps:
            text = f"{format_ts(self.stamp(index))} {text}"
        return text.encode()


class _Container:
    __slots__ = ("current", "previous")

    def __init__(self) -> None:
        self.current: Instance | None = None
        self.previous: Instance | None = None


class _Pod:
    __slots__ = ("uid", "containers")

    def __init__(self, uid: str):
        self.uid = uid
        self.containers: dict[str, _Container] = {}

    def finish_all(self, at: int) -> None:
        for container in self.containers.values():
            for run in (container.current, container.previous):
                if run is not None:
                    run.finish(at)


class _Options:
    def __init__(self, request: web.Request):
        self.container = request.query.get("container") or ""
        self.follow = _flag(request, "follow")
        self.previous = _flag(request, "previous")
        self.timestamps = _flag(request, "timestamps")
        self.tail = _int(request, "tailLines")
        self.limit = _int(request, "limitBytes")
        self.since_seconds = _int(request, "sinceSeconds")
        since_time = request.query.get("sinceTime")
        self.since_time = None
        if since_time:
            self.since_time = _parse_time(since_time)
            if self.since_time is None:
                raise st.bad_request(f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00"'
                                     f": cannot parse as RFC3339")
            # The API server re-encodes sinceTime for the kubelet as RFC3339: whole seconds.
            self.since_time -= self.since_time % _NS

    def errors(self) -> list[st.FieldError]:
        errors = []
        if self.tail is not None and self.tail < 0:
            errors.append(st.FieldError.invalid("tailLines", self.tail,
                                                "must be greater than or equal to 0"))
        if self.limit is not None and self.limit < 1:
            errors.append(st.FieldError.invalid("limitBytes", self.limit,
                                                "must be greater than 0"))
        if self.since_seconds is not None and self.since_time is not None:
            errors.append(st.FieldError.forbidden(
                "", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
        elif self.since_seconds is not None and self.since_seconds < 1:
            errors.append(st.FieldError.invalid("sinceSeconds", self.since_seconds,
                                                "must be greater than 0"))
        return errors


def _invalid_options(name: str, errors: list[st.FieldError]) -> st.StatusError:
    rendered = [str(e) for e in errors]
    summary = rendered[0] if len(rendered) == 1 else f"[{', '.join(rendered)}]"
    return st.StatusError(422, "Invalid", f'PodLogOptions "{name}" is invalid: {summary}',
                          {"name": name, "kind": "PodLogOptions",
                           "causes": [{"reason": e.reason, "message": e.message(),
                                       "field": e.field} for e in errors]})


class PodLogs:
    """The logs of every container in one simulated cluster, and the ``pods/log`` handler."""

    def __init__(self, store: Store, *, lines_per_second: float = 2.0,
                 buffer_lines: int = 10_000):
        self.store = store
        self.lines_per_second = lines_per_second
        self.buffer_lines = buffer_lines
        self._pods: dict[Key, _Pod] = {}
        self._followers: set[Follower] = set()
        for entry in list(store.table(BY_KEY["pods"]).values()):
            self._observe_pod(entry.obj, time.time_ns())
        store.add_listener("pods", self._on_event)

    # -- following pod status -------------------------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        now = time.time_ns()
        if event.type == DELETED:
            record = self._pods.pop(event.key, None)
            if record is not None:
                record.finish_all(now)
            return
        self._observe_pod(event.entry.obj, now)

    def _observe_pod(self, pod: dict, now: int) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        key = (meta.get("namespace", ""), meta["name"])
        record = self._pods.get(key)
        if record is None or record.uid != meta.get("uid"):
            if record is not None:
                record.finish_all(now)
            record = self._pods[key] = _Pod(meta.get("uid", ""))
        shape = (self._number(meta, RATE_ANNOTATION, self.lines_per_second),
                 int(self._number(meta, BURST_ANNOTATION, 1)),
                 int(self._number(meta, LAG_ANNOTATION, 0) * _NS))
        for field in ("initContainerStatuses", "containerStatuses"):
            for container_status in status.get(field) or ():
                name = container_status.get("name")
                if name:
                    container = record.containers.setdefault(name, _Container())
                    self._observe_container(meta["name"], name, container, container_status,
                                            shape, now)

    @staticmethod
    def _number(meta: dict, annotation: str, default: float) -> float:
        value = (meta.get("annotations") or {}).get(annotation)
        try:
            return max(0.0, float(value)) if value is not None else default
        except ValueError:
            return default

    def _observe_container(self, pod: str, name: str, container: _Container, status: dict,
                           shape: tuple[float, int, int], now: int) -> None:
        """``shape``: lines (writes) per second, lines per write, clock lag (ns)."""
        rate, burst, lag = shape
        state = status.get("state") or {}
        restart = status.get("restartCount") or 0
        last = (status.get("lastState") or {}).get("terminated")
        current = container.current
        run_state = state.get("running") or state.get("terminated")
        if run_state is not None:
            if current is None or restart > current.restart:
                if current is not None:
                    current.finish(now)
                    container.previous = current
                start = min(_parse_time(run_state.get("startedAt")) or now, now)
                if container.previous is not None and container.previous.end is not None:
                    start = max(start, container.previous.end)  # a new run logs after the old
                current = container.current = Instance(pod, name, restart, start, rate,
                                                       self.buffer_lines, burst, lag)
                if "terminated" in state and current is not None:
                    current.finish(_parse_time(run_state.get("finishedAt")) or now)
            if "terminated" in state:
                current.finish(now)
        elif current is not None:
            current.finish(now)  # waiting again: the run is over (e.g. CrashLoopBackOff)
        elif last is not None and last.get("startedAt"):
            # First seen crash-looping: only the terminated run is known.
            start = min(_parse_time(last["startedAt"]) or now, now)
            current = container.current = Instance(pod, name, max(0, restart - 1), start,
                                                   rate, self.buffer_lines, burst, lag)
            current.finish(_parse_time(last.get("finishedAt")) or now)

    # -- choosing the run a request reads -------------------------------------------------

    def _instance(self, pod: dict, container: str, previous: bool) -> Instance:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        statuses = [s for field in ("containerStatuses", "initContainerStatuses")
                    for s in status.get(field) or () if s.get("name") == container]
        if not statuses:
            raise st.bad_request(f'container "{container}" in pod "{name}" is not available')
        cs = statuses[0]
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated")
        record = self._pods.get((pod["metadata"].get("namespace", ""), name))
        runs = record.containers.get(container) if record else None
        if previous:
            # lastState is the run before the current one, or the current one while waiting.
            run = None
            if last is not None and runs is not None:
                run = runs.previous if ("running" in state or "terminated" in state) \
                    else runs.current
            if run is None:
                raise st.bad_request(f'previous terminated container "{container}" in pod '
                                     f'"{name}" not found')
            return run
        if ("running" in state or "terminated" in state or last is not None) and runs \
                and runs.current is not None:
            return runs.current
        waiting = state.get("waiting")
        if waiting is not None:
            reason = waiting.get("reason", "")
            if reason == "ErrImagePull":
                reason = "image can't be pulled"
            elif reason == "ImagePullBackOff":
                reason = "trying and failing to pull image"
            raise st.bad_request(f'container "{container}" in pod "{name}" is waiting to '
                                 f'start: {reason}')
        raise st.bad_request(f'container "{container}" in pod "{name}" is waiting to start - '
                             f'no logs yet')

    @staticmethod
    def _container(pod: dict, wanted: str) -> str:
        spec = pod.get("spec") or {}
        name = pod["metadata"]["name"]
        containers = [c["name"] for c in spec.get("containers") or ()]
        every = [c["name"] for field in ("initContainers", "containers", "ephemeralContainers")
                 for c in spec.get(field) or ()]
        if not wanted:
            if len(containers) == 1:
                return containers[0]
            if not containers:
                raise st.bad_request(f"a container name must be specified for pod {name}")
            raise st.bad_request(f"a container name must be specified for pod {name}, choose "
                                 f"one of: [{' '.join(every)}]")
        if wanted not in every:
            raise st.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted

    # -- HTTP -----------------------------------------------------------------------------

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = _Options(request)
        errors = options.errors()
        if errors:
            raise _invalid_options(target.name or "", errors)
        pod = self.store.get(target.rt, target.name, target.namespace)
        container = self._container(pod, options.container)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if not (pod.get("spec") or {}).get("nodeName"):
            await response.prepare(request)  # not on a node yet: the API server has no log
            await response.write_eof()
            return response
        run = self._instance(pod, container, options.previous)
        now = time.time_ns()
        first, end = run.oldest(now), run.written(now)
        if options.tail is not None:
            first = max(first, end - options.tail)
        since = options.since_time
        if options.since_seconds is not None:
            since = now - options.since_seconds * _NS
        if since is not None:
            first = max(first, run.first_since(since))
        budget = options.limit
        response.enable_chunked_encoding()
        await response.prepare(request)
        budget = await self._write(response, run, first, end, options.timestamps, budget)
        if options.follow and run.end is None and budget != 0:
            await self._follow(request, response, (target.namespace or "", run.pod), run, end,
                               options.timestamps, budget)
        else:
            await response.write_eof()
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, run: Instance, first: int, end: int,
                     timestamps: bool, budget: int | None) -> int | None:
        """Write lines ``first..end-1``; returns the bytes still allowed (None: no limit)."""
        if first >= end:
            return budget
        data = b"".join(run.line(i, timestamps) for i in range(first, end))
        if budget is not None:
            data = data[:budget]
            budget -= len(data)
        await response.write(data)
        return budget

    async def _follow(self, request: web.Request, response: web.StreamResponse, key: Key,
                      run: Instance, position: int, timestamps: bool,
                      budget: int | None) -> None:
        follower = Follower(key)
        run.followers.add(follower)
        self._followers.add(follower)
        try:
            while budget != 0:
                now = time.time_ns()
                written = run.written(now)
                position = max(position, run.oldest(now))  # fell behind the buffer: lost
                budget = await self._write(response, run, position, written, timestamps,
                                           budget)
                position = written
                if run.end is not None and position >= run.written(run.end):
                    break
                if follower.cut:
                    break
                wait = min(_MAX_WAIT, max(0.001, (run.due(position) - now) / _NS))
                try:
                    async with asyncio.timeout(wait):
                        await follower.wake.wait()
                except TimeoutError:
                    pass
                follower.wake.clear()
                if follower.cut:
                    break
        finally:
            run.followers.discard(follower)
            self._followers.discard(follower)
        if follower.cut == "reset" and request.transport is not None:
            request.transport.abort()
            return
        await response.write_eof()

    # -- faults and counters --------------------------------------------------------------

    def open_streams(self) -> dict[str, int]:
        return dict(Counter(f"{ns}/{pod}" for ns, pod in (f.key for f in self._followers)))

    def cut(self, mode: str = "eof") -> int:
        if mode not in ("eof", "reset"):
            raise ValueError(f"unknown cut mode {mode!r}")
        for follower in self._followers:
            follower.cut = mode
            follower.wake.set()
        return len(self._followers)

    async def on_shutdown(self, app: web.Application) -> None:
        self.cut("eof")

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{SIM_PREFIX}/logs/close", self._close)]

    async def _close(self, request: web.Request) -> web.Response:
        try:
            closed = self.cut(request.query.get("mode", "eof"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"closed": closed})
