"""Shutdown, connect/disconnect churn, and batching of fast lines."""

from __future__ import annotations

import asyncio

from gpuctl_async.appkeys import LOG_HUB
from tests.helpers import eventually
from tests.logs.helpers import LogSocket, add_pod, app_client, contiguous, create_job


async def test_shutdown_closes_sockets_with_1001_and_every_upstream(aiohttp_client, sim,
                                                                    tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path)
    job = await create_job(api, sim, "train")
    pods = [await add_pod(api, sim, job, suffix) for suffix in ("aaaaa", "bbbbb")]
    socks = [await LogSocket.open(api, "train", tail=1) for _ in range(3)]
    for sock in socks:
        for pod in pods:
            await sock.lines_from(pod, 1)
    assert sim.open_log_streams() == 2
    closing = asyncio.gather(*(sock.to_close() for sock in socks))
    await api.server.close()  # the server alone: the client must not close first
    assert await closing == [1001, 1001, 1001]
    await eventually(sim.open_log_streams, lambda n: n == 0, timeout=3)


async def test_no_task_or_stream_leaks_after_200_connect_disconnect_cycles(
        aiohttp_client, sim, tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_stream_linger=0.1)
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    baseline = len(asyncio.all_tasks())
    for _ in range(200):
        sock = await LogSocket.open(api, "train", tail=1)
        await sock.lines_from(pod, 1)
        await sock.close()
    assert sim.open_log_streams() <= 1
    await eventually(sim.open_log_streams, lambda n: n == 0, timeout=3)
    assert api.app[LOG_HUB].open_streams == 0 and api.app[LOG_HUB].watched_jobs == 0
    await eventually(lambda: len(asyncio.all_tasks()), lambda n: n <= baseline, timeout=3)


async def test_fast_lines_are_batched_into_few_frames(aiohttp_client, sim, tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_batch_window=0.05)
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", rate=2000)
    sock = await LogSocket.open(api, "train", tail=1)
    await sock.lines_from(pod, 2000)
    live = sock.frames[1:]
    assert all(frame["type"] == "logs" for frame in live[1:])
    # At most one frame per window (and the leading one), 2000 lines over about a second.
    assert len(live) <= 1 / 0.05 * 1.5 + 2
    assert contiguous(sock.of(pod))
    await sock.close()


async def test_shutdown_closes_multiplexed_sockets_with_1001_and_ends_event_streams(
        aiohttp_client, sim, tmp_path):
    from tests.logs.helpers import EventStream, MuxSocket

    api = await app_client(aiohttp_client, sim, tmp_path)
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    mux = await MuxSocket.open(api)
    await mux.subscribe_logs("a", "train")
    await mux.subscribe_jobs("jobs")
    events = await EventStream.open(api, "train")
    await mux.until(lambda m: len(m.lines("a")) >= 1 and "snapshot" in m.types("jobs"))
    await events.until(lambda e: len(e.of(pod)) >= 1)
    closing = asyncio.gather(mux.until(lambda m: m.closed is not None),
                             events.until(lambda e: e.ended))
    await api.server.close()
    await closing
    assert mux.closed == 1001
    events.close()
    await eventually(sim.open_log_streams, lambda n: n == 0, timeout=3)
