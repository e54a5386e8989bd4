"""Jobs, pods and container states written over the simulated cluster as a controller and a
kubelet would, and a WebSocket reader for the log stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import aiohttp
import orjson

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim.logs import RATE_ANNOTATION
from gpuctl_async.sim.patch import MERGE_PATCH
from gpuctl_async.sim.store import timestamp
from tests.conftest import sim_settings
from tests.helpers import job_pod, job_yaml, settle

KINDS = {"training": "jobs", "inference": "deployments", "notebook": "statefulsets"}


async def create_job(api, sim, name: str, kind: str = "training",
                     namespace: str = "default") -> dict:
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(kind, name,
                                                                        namespace=namespace)})
    assert resp.status == 201, await resp.text()
    return sim.store.get(KINDS[kind], name, namespace=namespace)


async def add_pod(api, sim, controller: dict, suffix: str, *, running: bool = True,
                  started_ago: float = 1.0, rate: float | None = None,
                  annotations: dict[str, str] | None = None) -> str:
    """A pod of ``controller`` on node-1; ``annotations`` shape its simulated log."""
    body = job_pod(controller, suffix, node="node-1", phase="Pending")
    body["metadata"]["annotations"] = dict(annotations or {})
    if rate is not None:
        body["metadata"]["annotations"][RATE_ANNOTATION] = str(rate)
    pod = sim.store.create("pods", body, namespace=controller["metadata"]["namespace"])
    name = pod["metadata"]["name"]
    if running:
        start(sim, pod, started_ago=started_ago)
    else:
        wait(sim, pod, "ContainerCreating")
    await settle(api, sim)
    return name


def _container_status(pod: dict, state: dict, restarts: int = 0) -> dict:
    return {"name": pod["spec"]["containers"][0]["name"], "image": "busybox:1.36",
            "ready": "running" in state, "restartCount": restarts, "state": state}


def _set(sim, pod: dict | str, phase: str, state: dict, namespace: str = "default") -> None:
    if isinstance(pod, str):
        pod = sim.store.get("pods", pod, namespace=namespace)
    meta = pod["metadata"]
    sim.store.patch("pods", meta["name"],
                    {"status": {"phase": phase,
                                "containerStatuses": [_container_status(pod, state)]}},
                    namespace=meta["namespace"], patch_type=MERGE_PATCH, subresource="status")


def start(sim, pod: dict | str, *, started_ago: float = 1.0) -> None:
    _set(sim, pod, "Running", {"running": {"startedAt": timestamp(time.time() - started_ago)}})


def wait(sim, pod: dict | str, reason: str) -> None:
    _set(sim, pod, "Pending", {"waiting": {"reason": reason}})


def finish(sim, pod: dict | str, phase: str = "Succeeded") -> None:
    _set(sim, pod, phase, {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                          "reason": "Completed", "startedAt": timestamp(),
                                          "finishedAt": timestamp()}})


def complete(sim, job: dict) -> None:
    meta = job["metadata"]
    sim.store.patch("jobs", meta["name"], {"status": {"conditions": [
        {"type": "Complete", "status": "True"}], "succeeded": 1}},
        namespace=meta["namespace"], patch_type=MERGE_PATCH, subresource="status")


def number(line: dict) -> int:
    """The sequence number the simulated container wrote at the end of each line."""
    return int(line["data"].rsplit(" ", 1)[1])


class LogSocket:
    """A log WebSocket client that keeps every line (flattened) and every other frame."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.lines: list[dict] = []
        self.frames: list[dict] = []
        self.closed: int | None = None

    @classmethod
    async def open(cls, api, job: str, **params) -> LogSocket:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        return cls(await api.ws_connect(f"/api/v1/jobs/{job}/logs/ws", params=query))

    async def _read_one(self) -> bool:
        message = await self.ws.receive()
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            self.closed = message.data if message.type == aiohttp.WSMsgType.CLOSE \
                else self.ws.close_code or aiohttp.WSCloseCode.ABNORMAL_CLOSURE
            return False
        frame = orjson.loads(message.data)
        self.frames.append(frame)
        if frame["type"] == "log":
            self.lines.append({k: frame[k] for k in ("data", "pod", "ts")})
        elif frame["type"] == "logs":
            self.lines.extend(frame["lines"])
        return True

    async def until(self, check, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not check(self):
                if not await self._read_one():
                    assert check(self), f"closed ({self.closed}) before the condition held"
                    return

    async def lines_from(self, pod: str, count: int, timeout: float = 5.0) -> list[dict]:
        await self.until(lambda s: len(s.of(pod)) >= count, timeout)
        return self.of(pod)

    def of(self, pod: str) -> list[dict]:
        return [line for line in self.lines if line["pod"] == pod]

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames if frame["type"] not in ("log", "logs")]

    async def to_close(self, timeout: float = 5.0) -> int:
        await self.until(lambda s: s.closed is not None, timeout)
        return self.closed

    async def close(self) -> None:
        await self.ws.close()


class EventStream:
    """A Server-Sent Events client of ``/logs/stream``: every event, parsed."""

    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response
        self.events: list[dict] = []  # {"event", "id", "data"} (data decoded from JSON)
        self.comments = 0
        self.ended = False

    @classmethod
    async def open(cls, api, job: str, last_event_id: str | None = None,
                   **params) -> EventStream:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        response = await api.get(f"/api/v1/jobs/{job}/logs/stream", params=query,
                                 headers=headers)
        assert response.status == 200, await response.text()
        return cls(response)

    @property
    def lines(self) -> list[dict]:
        return [event["data"] for event in self.events if event["event"] == "message"]

    def of(self, pod: str) -> list[dict]:
        return [line for line in self.lines if line["pod"] == pod]

    def named(self) -> list[str]:
        return [event["event"] for event in self.events if event["event"] != "message"]

    async def _read_event(self) -> bool:
        event: dict = {"event": "message", "id": None, "data": None}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                self.ended = True
                return False
            line = raw.decode().rstrip("\n")
            if not line:
                if event["data"] is not None:
                    self.events.append(event)
                    return True
                continue
            if line.startswith(":"):
                self.comments += 1
                return True
            field, _, value = line.partition(": ")
            if field == "data":
                event["data"] = orjson.loads(value)
            else:
                event[field] = value

    async def until(self, check, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not check(self):
                if not await self._read_event():
                    assert check(self), "the stream ended before the condition held"
                    return

    def close(self) -> None:
        self.response.close()


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class MuxSocket:
    """A client of the multiplexed socket: every frame, and each subscription's lines."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.frames: list[dict] = []
        self.closed: int | None = None

    @classmethod
    async def open(cls, api, session: aiohttp.ClientSession | None = None,
                   **kwargs) -> MuxSocket:
        if session is None:
            return cls(await api.ws_connect("/api/v1/stream", **kwargs))
        return cls(await session.ws_connect(api.make_url("/api/v1/stream"), **kwargs))

    async def subscribe_logs(self, sub_id: str, job: str, **params) -> None:
        await self.ws.send_str(_json({"op": "subscribe", "id": sub_id,
                                               "logs": {"jobId": job, **params}}))

    async def subscribe_jobs(self, sub_id: str, **filters) -> None:
        await self.ws.send_str(_json({"op": "subscribe", "id": sub_id,
                                               "jobs": filters}))

    async def unsubscribe(self, sub_id: str) -> None:
        await self.ws.send_str(_json({"op": "unsubscribe", "id": sub_id}))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def _read_one(self) -> bool:
        message = await self.ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            self.closed = self.ws.close_code or aiohttp.WSCloseCode.ABNORMAL_CLOSURE
            return False
        self.frames.append(orjson.loads(message.data))
        return True

    async def until(self, check, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not check(self):
                if not await self._read_one():
                    assert check(self), f"closed ({self.closed}) before the condition held"
                    return

    def of(self, sub_id: str | None) -> list[dict]:
        return [frame for frame in self.frames if frame.get("id") == sub_id]

    def lines(self, sub_id: str) -> list[dict]:
        lines: list[dict] = []
        for frame in self.of(sub_id):
            if frame["type"] == "log":
                lines.append({k: frame[k] for k in ("data", "pod", "ts")})
            elif frame["type"] == "logs":
                lines.extend(frame["lines"])
        return lines

    def types(self, sub_id: str) -> list[str]:
        return [f["type"] for f in self.of(sub_id) if f["type"] not in ("log", "logs")]

    def cursor(self, sub_id: str) -> str:
        return [f for f in self.of(sub_id) if f["type"] in ("log", "logs")][-1]["cursor"]

    async def close(self) -> None:
        await self.ws.close()


def contiguous(lines: list[dict]) -> bool:
    numbers = [number(line) for line in lines]
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))


FAST = 20_000  # lines per second: fills socket buffers in a moment


async def app_client(aiohttp_client, sim, tmp_path, **settings):
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, **settings)))
    assert await client.app[CACHE].wait_synced(timeout=10)
    return client


def _small_buffer_socket(addr_info) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    return sock


@contextlib.asynccontextmanager
async def slow_session():
    """A client whose sockets buffer little, so that the server's buffers fill up fast."""
    connector = aiohttp.TCPConnector(socket_factory=_small_buffer_socket)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def open_slow(session, api, job: str, **params) -> LogSocket:
    url = api.make_url(f"/api/v1/jobs/{job}/logs/ws")
    return LogSocket(await session.ws_connect(url, params={k: str(v) for k, v in
                                                            params.items()}))


async def stalling_app(aiohttp_client, sim, tmp_path):
    """An app that disconnects a log client accepting nothing for 0.3 s, and the pod of its
    job ``train``, writing ``FAST`` lines a second."""
    api = await app_client(aiohttp_client, sim, tmp_path, log_queue_lines=50,
                           log_stall_timeout=0.3)
    job = await create_job(api, sim, "train")
    return api, await add_pod(api, sim, job, "aaaaa", rate=FAST)


@contextlib.asynccontextmanager
async def silent_client(api, pod: str):
    """A log client of ``train`` that got its first line of ``pod`` and then reads nothing
    (its transport paused); on leaving it reads again and must see the server close it."""
    async with slow_session() as session:
        silent = await open_slow(session, api, "train", tail=1)
        await silent.lines_from(pod, 1)
        silent.ws._conn.transport.pause_reading()
        yield silent
        silent.ws._conn.transport.resume_reading()
        await silent.to_close(timeout=10)
