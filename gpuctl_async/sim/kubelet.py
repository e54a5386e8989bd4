"""The kubelets of every simulated node: pod start-up, running, exits, restarts, shutdown.

Once a pod is bound, its kubelet (source ``kubelet``, host = node name) drives it::

    Pending/ContainerCreating --Pulling, Pulled--> Created --Started--> Running
        --(readiness)--> Ready ... --(run time, if any)--> Succeeded | Failed | restart

keeping ``status`` truthful at each step: ``phase``, ``hostIP``/``hostIPs``, ``podIP``/``podIPs``
(once running), ``startTime``, conditions PodReadyToStartContainers, Initialized,
ContainersReady, Ready (PodScheduled is the scheduler's), and per container
``state`` (``waiting{reason,message}`` / ``running{startedAt}`` / ``terminated{exitCode,
reason, startedAt, finishedAt, containerID}``), ``lastState``, ``restartCount``, ``ready``,
``started``, ``containerID``, ``image``, ``imageID``. Events: Pulling, Pulled ("Successfully
pulled image ..." or "... already present on machine"), Created, Started, Killing, BackOff,
Failed. A container is ready when it runs and its readiness probe's ``initialDelaySeconds``
(times ``Timing.probe_scale``) has passed. Restarts follow ``restartPolicy`` with the
kubelet's doubling back-off (``Timing.backoff``), shown as ``CrashLoopBackOff``.

Deleting a pod is graceful: the kubelet kills its containers (event Killing), which stop
after ``Timing.stop`` seconds (never more than the grace period); running containers end
``terminated`` with exit code 143 (SIGTERM), the pod turns Failed, and the kubelet then
removes it (delete with grace 0). Pods that are already Running when first seen (bulk
seeding) are left running until deleted.

Test-controllable behaviour, chosen by annotations on the pod (template):

===================================  ======================================================
``sim.runwhere.ai/fail: image-pull``  pulls fail: ErrImagePull, then ImagePullBackOff,
                                      retried with back-off; never starts
``sim.runwhere.ai/fail: crash-loop``  containers exit 1 (Error) after ``Timing.crash_after``;
                                      restarted per restartPolicy → CrashLoopBackOff with a
                                      growing restartCount (Never: the pod fails)
``sim.runwhere.ai/fail: oom``         as crash-loop, but terminated reason OOMKilled, exit 137
``sim.runwhere.ai/fail: never-ready`` containers run but never become ready
``sim.runwhere.ai/run-seconds: "N"``  containers exit after N seconds (Job pods default to
                                      ``Timing.job_run``; other pods run until deleted)
``sim.runwhere.ai/exit-code: "N"``    the exit code when the run time ends (default 0:
                                      Completed; non-zero: Error)
``sim.runwhere.ai/stop-seconds: "N"`` how long containers take to stop on deletion (capped
                                      by the grace period; default ``Timing.stop``)
===================================  ======================================================

Pods made from documents that carry no annotations (gpuctl jobs) get the same behaviours
from what a real node would do with them:

- an image on a registry host under ``.invalid`` (RFC 2606: a name that never resolves, e.g.
  ``registry.invalid/team/trainer:v1``) cannot be pulled: as ``fail: image-pull``, with
  containerd's "no such host" error;
- a container whose command is ``exit N`` through a shell (``[sh, -c, "exit 3"]``) or
  ``false`` (N = 1) exits with code N after ``Timing.crash_after``: with restartPolicy Always
  a crash loop, with Never a failed pod.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from gpuctl_async.sim.events import EventRecorder
from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store, timestamp
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.usage import is_terminal

log = logging.getLogger(__name__)

COMPONENT = "kubelet"
PREFIX = "sim.runwhere.ai/"
FAIL = PREFIX + "fail"
RUN_SECONDS = PREFIX + "run-seconds"
EXIT_CODE = PREFIX + "exit-code"
STOP_SECONDS = PREFIX + "stop-seconds"
FAILURES = ("image-pull", "crash-loop", "oom", "never-ready")
SIGTERM_EXIT = 143
_PODS = BY_KEY["pods"]
_NODES = BY_KEY["nodes"]
_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")
_EXIT = re.compile(r"\s*exit\s+(\d{1,3})\s*")
Key = tuple[str, str]


def unresolvable_registry(image: str) -> str | None:
    """The registry host of ``image`` when it is under ``.invalid``, else None."""
    first = image.split("/", 1)[0] if "/" in image else ""
    host = first.split(":", 1)[0]
    return first if host.endswith(".invalid") else None


def command_exit_code(container: dict) -> int | None:
    """N for a container that only runs ``exit N`` (through a shell) or ``false``."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if words in (["false"], ["/bin/false"]):
        return 1
    if len(words) == 3 and words[0] in _SHELLS and words[1] == "-c":
        match = _EXIT.fullmatch(words[2])
        if match:
            return int(match[1]) % 256
    return None


class _PodGone(Exception):
    """The pod was deleted or replaced while its kubelet worked on it."""


def _float(value: object, default: float | None) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Behaviour:
    fail: str | None
    run_seconds: float | None  # None: until deleted
    exit_code: int
    stop_seconds: float
    ready_delay: float

    @classmethod
    def of(cls, pod: dict, timing: Timing) -> Behaviour:
        annotations = pod["metadata"].get("annotations") or {}
        owned_by_job = any(ref.get("kind") == "Job"
                           for ref in pod["metadata"].get("ownerReferences") or [])
        fail = annotations.get(FAIL)
        containers = (pod.get("spec") or {}).get("containers") or []
        if fail is None and any(unresolvable_registry(c.get("image", "")) for c in containers):
            fail = "image-pull"
        run = _float(annotations.get(RUN_SECONDS), timing.job_run if owned_by_job else None)
        exit_code = int(_float(annotations.get(EXIT_CODE), 0) or 0)
        if fail in ("crash-loop", "oom"):
            run, exit_code = timing.crash_after, 137 if fail == "oom" else 1
        elif fail is None:
            codes = [code for code in map(command_exit_code, containers) if code]
            if codes:
                run, exit_code = timing.crash_after, codes[0]
        delays = [(c.get("readinessProbe") or {}).get("initialDelaySeconds") or 0
                  for c in (pod.get("spec") or {}).get("containers") or []]
        return cls(fail if fail in FAILURES else None, run, exit_code,
                   _float(annotations.get(STOP_SECONDS), timing.stop) or 0.0,
                   max(delays, default=0) * timing.probe_scale)


def normalized_image(image: str) -> str:
    """``busybox:1.36`` → ``docker.io/library/busybox:1.36``, as container runtimes report."""
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def image_id(image: str) -> str:
    return f"{normalized_image(image).rsplit(':', 1)[0]}@sha256:{_digest(image)}"


def _image_size(image: str) -> int:
    return 5_000_000 + int(_digest(image)[:8], 16) % 2_000_000_000


class PodAddresses:
    """Pod IPs from 10.244.0.0/16, reused once their pod is gone."""

    def __init__(self) -> None:
        self._network = ipaddress.IPv4Network("10.244.0.0/16")
        self._next = 2
        self._free: list[int] = []
        self._by_pod: dict[str, int] = {}

    def get(self, uid: str) -> str:
        offset = self._by_pod.get(uid)
        if offset is None:
            offset = self._free.pop() if self._free else self._take()
            self._by_pod[uid] = offset
        return str(self._network.network_address + offset)

    def _take(self) -> int:
        offset = self._next
        self._next += 1
        if self._next >= self._network.num_addresses - 1:
            self._next = 2  # wrap around: fine for a simulation
        return offset

    def release(self, uid: str) -> None:
        offset = self._by_pod.pop(uid, None)
        if offset is not None:
            self._free.append(offset)


def _condition(status: dict, type: str, value: bool, reason: str | None = None,
               message: str | None = None) -> dict:
    wanted = "True" if value else "False"
    previous = next((c for c in status.get("conditions") or [] if c.get("type") == type), None)
    condition = {"type": type, "status": wanted, "lastProbeTime": None,
                 "lastTransitionTime": previous["lastTransitionTime"]
                 if previous is not None and previous.get("status") == wanted else timestamp()}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def set_conditions(status: dict, *, sandbox: bool, completed: bool = False) -> None:
    """Pod conditions derived from the container statuses and phase."""
    containers = status.get("containerStatuses") or []
    unready = [c["name"] for c in containers if not c.get("ready")]
    ready = not unready and bool(containers) and status.get("phase") == "Running"
    if completed:
        reason, message = "PodCompleted", None
    else:
        reason = None if ready else "ContainersNotReady"
        message = None if ready else f"containers with unready status: [{' '.join(unready)}]"
    scheduled = [c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"]
    status["conditions"] = [
        _condition(status, "PodReadyToStartContainers", sandbox and not completed),
        _condition(status, "Initialized", True),
        _condition(status, "Ready", ready, reason, message),
        _condition(status, "ContainersReady", ready, reason, message),
        *scheduled,
    ]


class Kubelet:
    def __init__(self, store: Store, events: EventRecorder, timing: Timing):
        self._store = store
        self._events = events
        self._timing = timing
        self._tasks: dict[Key, tuple[str, asyncio.Task]] = {}
        self._stopping: dict[Key, tuple[str, asyncio.Task]] = {}
        self._images: dict[str, set[str]] = {}
        self._addresses = PodAddresses()
        self._closed = False

    def install(self) -> None:
        self._store.add_listener(_PODS, self._on_pod)

    async def stop(self) -> None:
        self._closed = True
        tasks = [task for _, task in (*self._tasks.values(), *self._stopping.values())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._stopping.clear()

    # -- change notifications -------------------------------------------------------------

    def _on_pod(self, event: WatchEvent) -> None:
        if self._closed:
            return
        pod = event.entry.obj
        meta = pod["metadata"]
        uid = meta["uid"]
        if event.type == DELETED:
            self._addresses.release(uid)
            for tasks in (self._tasks, self._stopping):
                current = tasks.get(event.key)
                if current is not None and current[0] == uid:
                    current[1].cancel()
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        if meta.get("deletionTimestamp"):
            if event.key not in self._stopping or self._stopping[event.key][0] != uid:
                self._spawn(self._stopping, event.key, uid, self._terminate(event.key, uid))
        elif (event.key not in self._tasks or self._tasks[event.key][0] != uid) and \
                (pod.get("status") or {}).get("phase") == "Pending" and \
                not (pod.get("status") or {}).get("containerStatuses"):
            self._spawn(self._tasks, event.key, uid, self._run(event.key, uid))

    def _spawn(self, tasks: dict, key: Key, uid: str, work) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"kubelet {key[0]}/{key[1]}")
        tasks[key] = (uid, task)

        def done(finished: asyncio.Task) -> None:
            if tasks.get(key, (None, None))[1] is finished:
                del tasks[key]
            if not finished.cancelled() and finished.exception() is not None:
                log.error("simulated kubelet failed on pod %s/%s", *key,
                          exc_info=finished.exception())

        task.add_done_callback(done)

    # -- store access ---------------------------------------------------------------------

    def _pod(self, key: Key, uid: str) -> dict:
        entry = self._store.table(_PODS).get(key)
        if entry is None or entry.obj["metadata"]["uid"] != uid:
            raise _PodGone()
        return entry.obj

    def _write(self, key: Key, uid: str, change: Callable[[dict], None]) -> dict:
        pod = orjson.loads(orjson.dumps(self._pod(key, uid)))
        change(pod.setdefault("status", {}))
        try:
            return self._store.update(_PODS, pod, subresource="status")
        except StatusError:
            raise _PodGone() from None

    def _event(self, pod: dict, type: str, reason: str, message: str,
               container: str | None = None) -> None:
        self._events.record(pod, type, reason, message, component=COMPONENT,
                            host=pod["spec"].get("nodeName"),
                            field_path=f"spec.containers{{{container}}}" if container else None)

    def _host_ip(self, node: str) -> str:
        entry = self._store.table(_NODES).get(("", node))
        for address in ((entry.obj.get("status") or {}).get("addresses") or []
                        if entry is not None else []):
            if address.get("type") == "InternalIP":
                return address["address"]
        return "10.0.255.254"

    def running_status(self, pod: dict) -> dict:
        """The status of ``pod`` (bound) as if it had been running and ready since now."""
        meta = pod["metadata"]
        host_ip, pod_ip, now = self._host_ip(pod["spec"]["nodeName"]), \
            self._addresses.get(meta["uid"]), timestamp()
        status = dict(pod.get("status") or {})
        status.update(phase="Running", hostIP=host_ip, hostIPs=[{"ip": host_ip}],
                      podIP=pod_ip, podIPs=[{"ip": pod_ip}], startTime=now)
        status["containerStatuses"] = [
            {"name": c["name"], "state": {"running": {"startedAt": now}}, "lastState": {},
             "ready": True, "restartCount": 0, "image": normalized_image(c.get("image", "")),
             "imageID": image_id(c.get("image", "")), "started": True,
             "containerID": "containerd://" + _digest(f"{meta['uid']}/{c['name']}/0")}
            for c in pod["spec"].get("containers") or []]
        status["conditions"] = [{"type": "PodScheduled", "status": "True",
                                 "lastProbeTime": None, "lastTransitionTime": now}]
        set_conditions(status, sandbox=True)
        return status

    # -- the pod's life -------------------------------------------------------------------

    async def _run(self, key: Key, uid: str) -> None:
        try:
            await self._live(key, uid)
        except _PodGone:
            pass

    async def _live(self, key: Key, uid: str) -> None:
        pod = self._pod(key, uid)
        status = pod.get("status") or {}
        if status.get("phase") != "Pending" or status.get("containerStatuses"):
            return  # someone else runs it (bulk seeding created it running)
        behaviour = Behaviour.of(pod, self._timing)
        node = pod["spec"]["nodeName"]
        containers = [(c["name"], c.get("image", ""), c.get("imagePullPolicy", "IfNotPresent"))
                      for c in pod["spec"].get("containers") or []]
        host_ip = self._host_ip(node)
        now = timestamp()

        def accept(status: dict) -> None:
            status.update(phase="Pending", hostIP=host_ip, hostIPs=[{"ip": host_ip}],
                          startTime=now)
            status["containerStatuses"] = [
                {"name": name, "state": {"waiting": {"reason": "ContainerCreating"}},
                 "lastState": {}, "ready": False, "restartCount": 0,
                 "image": normalized_image(image), "imageID": "", "started": False}
                for name, image, _ in containers]
            set_conditions(status, sandbox=True)

        pod = self._write(key, uid, accept)
        restarts = 0
        while True:
            await self._pull(key, uid, behaviour, containers)
            await asyncio.sleep(self._timing.container_start)
            pod = self._pod(key, uid)
            for name, _, _ in containers:
                self._event(pod, "Normal", "Created", f"Created container: {name}", name)
            for name, _, _ in containers:
                self._event(pod, "Normal", "Started", f"Started container {name}", name)
            started = timestamp()
            pod_ip = self._addresses.get(uid)

            def run(status: dict) -> None:
                for container in status["containerStatuses"]:
                    container["containerID"] = "containerd://" + _digest(
                        f"{uid}/{container['name']}/{restarts}")
                    container["imageID"] = image_id(container["image"])
                    container["state"] = {"running": {"startedAt": started}}
                    container["ready"] = False
                    container["started"] = True
                status.update(phase="Running", podIP=pod_ip, podIPs=[{"ip": pod_ip}])
                set_conditions(status, sandbox=True)

            self._write(key, uid, run)
            waited = 0.0
            if behaviour.fail != "never-ready" and (
                    behaviour.run_seconds is None or behaviour.ready_delay < behaviour.run_seconds):
                await asyncio.sleep(behaviour.ready_delay)
                waited = behaviour.ready_delay
                self._write(key, uid, lambda status: self._set_ready(status, True))
            if behaviour.run_seconds is None:
                await asyncio.Event().wait()  # runs until the pod is deleted (cancelled)
            await asyncio.sleep(behaviour.run_seconds - waited)
            code = behaviour.exit_code
            reason = "OOMKilled" if behaviour.fail == "oom" else (
                "Completed" if code == 0 else "Error")
            policy = pod["spec"].get("restartPolicy", "Always")
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            finished = timestamp()

            def finish(status: dict) -> None:
                for container in status["containerStatuses"]:
                    container["state"] = {"terminated": {
                        "exitCode": code, "reason": reason, "startedAt": started,
                        "finishedAt": finished, "containerID": container["containerID"]}}
                    container["ready"] = False
                    container["started"] = False
                if not restart:
                    status["phase"] = "Succeeded" if code == 0 else "Failed"
                set_conditions(status, sandbox=True, completed=not restart)

            pod = self._write(key, uid, finish)
            if not restart:
                return
            restarts += 1
            delay = self._timing.backoff(restarts)
            self._crash_loop(key, uid, delay)
            await asyncio.sleep(delay)

    @staticmethod
    def _set_ready(status: dict, ready: bool) -> None:
        for container in status["containerStatuses"]:
            if "running" in container["state"]:
                container["ready"] = ready
        set_conditions(status, sandbox=True)

    def _crash_loop(self, key: Key, uid: str, delay: float) -> None:
        name, namespace = key[1], key[0]
        seconds = f"{delay:g}s" if delay < 60 else f"{int(delay // 60)}m{int(delay % 60)}s"

        def back_off(status: dict) -> None:
            for container in status["containerStatuses"]:
                container["lastState"] = container["state"]
                container["restartCount"] = container.get("restartCount", 0) + 1
                container["state"] = {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {seconds} restarting failed "
                               f"container={container['name']} pod={name}_{namespace}({uid})"}}

        pod = self._write(key, uid, back_off)
        for container in pod["status"]["containerStatuses"]:
            self._event(pod, "Warning", "BackOff",
                        f"Back-off restarting failed container {container['name']} in pod "
                        f"{name}_{namespace}({uid})", container["name"])

    async def _pull(self, key: Key, uid: str, behaviour: Behaviour,
                    containers: list[tuple[str, str, str]]) -> None:
        node = self._pod(key, uid)["spec"]["nodeName"]
        cached = self._images.setdefault(node, set())
        for name, image, policy in containers:
            attempt = 0
            while True:
                pod = self._pod(key, uid)
                if image in cached and policy != "Always" and behaviour.fail != "image-pull":
                    self._event(pod, "Normal", "Pulled",
                                f'Container image "{image}" already present on machine', name)
                    break
                self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"', name)
                await asyncio.sleep(self._timing.image_pull)
                pod = self._pod(key, uid)
                if behaviour.fail != "image-pull":
                    took = f"{self._timing.image_pull:.3f}s"
                    self._event(pod, "Normal", "Pulled",
                                f'Successfully pulled image "{image}" in {took} ({took} '
                                f'including waiting). Image size: {_image_size(image)} bytes.',
                                name)
                    cached.add(image)
                    break
                attempt += 1
                await self._pull_failed(key, uid, name, image, attempt)

    async def _pull_failed(self, key: Key, uid: str, name: str, image: str,
                           attempt: int) -> None:
        ref = normalized_image(image)
        host = unresolvable_registry(image)
        if host is not None:
            why = (f"rpc error: code = Unknown desc = failed to pull and unpack image "
                   f"\"{ref}\": failed to resolve reference \"{ref}\": failed to do request: "
                   f"Head \"https://{host}/v2/{ref.split('/', 1)[1].rsplit(':', 1)[0]}/"
                   f"manifests/{ref.rsplit(':', 1)[1]}\": dial tcp: lookup "
                   f"{host.split(':', 1)[0]}: no such host")
        else:
            why = (f"rpc error: code = NotFound desc = failed to pull and unpack image "
                   f"\"{ref}\": failed to resolve reference \"{ref}\": {ref}: not found")

        def waiting(reason: str, message: str) -> Callable[[dict], None]:
            def change(status: dict) -> None:
                for container in status["containerStatuses"]:
                    if container["name"] == name:
                        container["state"] = {"waiting": {"reason": reason, "message": message}}
            return change

        pod = self._write(key, uid, waiting("ErrImagePull", why))
        self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {why}', name)
        self._event(pod, "Warning", "Failed", "Error: ErrImagePull", name)
        await asyncio.sleep(self._timing.backoff_base / 10)
        pod = self._write(key, uid, waiting("ImagePullBackOff",
                                            f'Back-off pulling image "{image}"'))
        self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', name)
        self._event(pod, "Warning", "Failed", "Error: ImagePullBackOff", name)
        await asyncio.sleep(self._timing.backoff(attempt))

    # -- graceful termination -------------------------------------------------------------

    async def _terminate(self, key: Key, uid: str) -> None:
        current = self._tasks.get(key)
        if current is not None and current[0] == uid:
            current[1].cancel()
            await asyncio.gather(current[1], return_exceptions=True)
        try:
            pod = self._pod(key, uid)
            if is_terminal(pod):
                self._store.delete(_PODS, key[1], key[0], grace_period_seconds=0,
                                   preconditions={"uid": uid})
                return
            running = [c["name"] for c in (pod.get("status") or {}).get("containerStatuses")
                       or [] if "running" in c.get("state", {})]
            for name in running:
                self._event(pod, "Normal", "Killing", f"Stopping container {name}", name)
            grace = pod["metadata"].get("deletionGracePeriodSeconds") or 0
            stop = Behaviour.of(pod, self._timing).stop_seconds
            await asyncio.sleep(min(grace, stop) if running else 0)
            finished = timestamp()

            def stopped(status: dict) -> None:
                for container in status.get("containerStatuses") or []:
                    state = container.get("state", {})
                    if "running" in state:
                        container["state"] = {"terminated": {
                            "exitCode": SIGTERM_EXIT, "reason": "Error",
                            "startedAt": state["running"].get("startedAt"),
                            "finishedAt": finished,
                            "containerID": container.get("containerID")}}
                        container["ready"] = False
                        container["started"] = False
                status["phase"] = "Failed" if status.get("containerStatuses") else \
                    status.get("phase", "Pending")
                set_conditions(status, sandbox=False, completed=True)

            self._write(key, uid, stopped)
            self._store.delete(_PODS, key[1], key[0], grace_period_seconds=0,
                               preconditions={"uid": uid})
        except (_PodGone, StatusError):
            pass
