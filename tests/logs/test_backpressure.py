"""Slow and silent clients: bounded queues, dropped counts, disconnection; pings; the cap."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gpuctl_async.api.heartbeat import HEARTBEAT
from gpuctl_async.api.logs import LOG_SOCKETS
from gpuctl_async.api.stream import STREAM_SOCKETS
from tests.helpers import eventually
from tests.logs.helpers import (FAST, LogSocket, add_pod, app_client, contiguous, create_job,
                                number, open_slow, silent_client, slow_session, stalling_app)


async def test_slow_client_gets_dropped_counts_and_fast_clients_everything(
        aiohttp_client, sim, tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_queue_lines=50)
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", rate=FAST)
    fast = await LogSocket.open(api, "train", tail=1)
    async with slow_session() as session:
        slow = await open_slow(session, api, "train", tail=1)
        await slow.lines_from(pod, 1)
        slow.ws._conn.transport.pause_reading()  # the client stops reading
        await fast.lines_from(pod, FAST * 3, timeout=10)
        slow.ws._conn.transport.resume_reading()
        await slow.until(lambda s: "dropped" in s.types()
                         and s.frames[-1]["type"] in ("log", "logs"), timeout=10)
        await slow.close()
    assert contiguous(fast.of(pod))
    # What the slow client got is in order, and its gaps are exactly the counts it was told.
    told, numbers = 0, []
    for frame in slow.frames:
        if frame["type"] == "dropped":
            told += frame["count"]
        elif frame["type"] in ("log", "logs"):
            numbers += [number(f) for f in frame.get("lines", [frame])]
    gaps = sum(b - a - 1 for a, b in zip(numbers, numbers[1:]))
    assert told > 0 and gaps == told
    await fast.close()


async def test_client_that_reads_nothing_is_disconnected(aiohttp_client, sim, tmp_path):
    api, pod = await stalling_app(aiohttp_client, sim, tmp_path)
    fast = await LogSocket.open(api, "train", tail=1)
    async with silent_client(api, pod):
        await eventually(lambda: len(api.app[LOG_SOCKETS]), lambda n: n == 1, timeout=10)
    before = len(fast.lines)
    await fast.until(lambda s: len(s.lines) > before + FAST // 10)  # unaffected
    assert contiguous(fast.of(pod))
    await fast.close()


async def test_idle_sockets_are_pinged(aiohttp_client, sim, tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_heartbeat=0.1)
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa", rate=0)
    async with asyncio.timeout(5):
        ws = await api.ws_connect("/api/v1/jobs/train/logs/ws", autoping=False)
        while (await ws.receive()).type != aiohttp.WSMsgType.PING:
            pass
        await ws.close()


async def _until_ping(ws) -> None:
    while (message := await ws.receive()).type != aiohttp.WSMsgType.PING:
        assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PONG), message


@pytest.mark.parametrize("path", ["/api/v1/jobs/train/logs/ws", "/api/v1/stream"])
async def test_a_socket_that_answers_no_ping_is_disconnected(aiohttp_client, sim, tmp_path,
                                                             path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_heartbeat=0.2)
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa", rate=0)
    heartbeat = api.app[HEARTBEAT]
    async with asyncio.timeout(10):
        ws = await api.ws_connect(path, autoping=False)
        await _until_ping(ws)  # ... and never a pong: a dead peer, as far as the server sees
        while (message := await ws.receive()).type not in (aiohttp.WSMsgType.CLOSED,
                                                           aiohttp.WSMsgType.ERROR):
            assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING)
    assert heartbeat.dead == 1
    await eventually(lambda: (len(api.app[LOG_SOCKETS]), len(api.app[STREAM_SOCKETS])),
                     lambda n: n == (0, 0))
    await ws.close()


@pytest.mark.parametrize("path", ["/api/v1/jobs/train/logs/ws", "/api/v1/stream"])
async def test_a_socket_that_answers_pings_stays_open(aiohttp_client, sim, tmp_path, path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_heartbeat=0.3)
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa", rate=0)
    async with asyncio.timeout(10):
        ws = await api.ws_connect(path, autoping=False)
        for _ in range(5):  # five beats, each answered only by the pong
            await _until_ping(ws)
            await ws.pong()
        # The client's own ping is answered too, with its payload.
        await ws.ping(b"are you there")
        while (message := await ws.receive()).type != aiohttp.WSMsgType.PONG:
            assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING)
        assert message.data == b"are you there"
    assert not ws.closed and api.app[HEARTBEAT].dead == 0
    await ws.close()


async def test_cap_on_upstream_streams_answers_with_an_error_frame(aiohttp_client, sim,
                                                                   tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_max_streams=1)
    job = await create_job(api, sim, "train")
    one = await add_pod(api, sim, job, "aaaaa")
    other = await add_pod(api, sim, job, "bbbbb")
    first = await LogSocket.open(api, "train", pod=one)
    await first.lines_from(one, 1)
    second = await LogSocket.open(api, "train", pod=one)  # shares the open stream
    await second.lines_from(one, 1)
    refused = await LogSocket.open(api, "train", pod=other)
    assert await refused.to_close() == 1013
    assert refused.frames == [{"type": "error", "data": "Too many log streams are open (1); "
                                                        "try again later"}]
    assert sim.open_log_streams() == 1
    await first.close()
    await second.close()
