"""What each open log socket and subscription keeps for its life (issue 18's memory targets):
no task while following, no over-allocated encoded frames kept."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import orjson

from gpuctl_async.logs.frames import compact, control_frame
from gpuctl_async.streams.protocol import parse_message
from tests.logs.helpers import (LogSocket, MuxSocket, add_pod, app_client, complete,
                                create_job, finish)


def _following_tasks() -> list[str]:
    return [task.get_name() for task in asyncio.all_tasks()
            if task.get_name().startswith(("log session", "subscription"))]


async def test_following_sockets_and_subscriptions_keep_no_task(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", rate=20)
    plain = [await LogSocket.open(api, "train", tail=1) for _ in range(3)]
    mux = await MuxSocket.open(api)
    for i in range(3):
        await mux.subscribe_logs(f"s{i}", "train", tail=1)
    for sock in plain:
        await sock.lines_from(pod, 3)
    await mux.until(lambda m: all(len(m.lines(f"s{i}")) >= 3 for i in range(3)))
    assert _following_tasks() == []
    # ... and the end still reaches both kinds, closing the plain ones and freeing ids.
    finish(sim, pod)
    complete(sim, job)
    await mux.unsubscribe("s0")
    await mux.until(lambda m: "unsubscribed" in m.types("s0"))
    for sock in plain:
        assert await sock.to_close(timeout=10) == 1000
        assert "end" in sock.types()
    await mux.until(lambda m: all("end" in m.types(f"s{i}") for i in (1, 2)), timeout=10)
    await mux.subscribe_logs("s1", "train", tail=1)  # its id is free again
    await mux.until(lambda m: m.types("s1").count("subscribed") == 2)
    await mux.close()


PASS_THROUGH = {"origin_middleware", "rate_limit", "auth_middleware", "consistency_middleware",
                "large_body_middleware"}


def _suspended_chain(handler_name: str) -> list[str]:
    """The names of the coroutines a server task is suspended in, outermost first, for the
    task whose chain holds ``handler_name``."""
    for task in asyncio.all_tasks():
        names, awaited = [], task.get_coro()
        while asyncio.iscoroutine(awaited):
            names.append(awaited.__qualname__.rsplit(".", 1)[-1])
            awaited = awaited.cr_await
        if handler_name in names:
            return names
    raise AssertionError(f"no task is suspended in {handler_name}")


async def test_open_sockets_hold_no_frame_of_pass_through_middlewares(aiohttp_client, sim,
                                                                      tmp_path):
    # The rate limit and CORS on: every middleware of the chain is there.
    api = await app_client(aiohttp_client, sim, tmp_path, rate_limit_per_second=100.0,
                           rate_limit_burst=100, cors_origins=("https://dash.example",))
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", rate=20)
    plain = await LogSocket.open(api, "train", tail=1)
    await plain.lines_from(pod, 1)
    mux = await MuxSocket.open(api)
    await mux.subscribe_logs("a", "train", tail=1)
    await mux.until(lambda m: len(m.lines("a")) >= 1)
    for handler in ("stream_logs", "stream"):
        chain = _suspended_chain(handler)
        # What must stay: the request id's scope, the error envelope, the handler.
        assert {"request_id_middleware", "error_middleware", handler} <= set(chain), chain
        assert not PASS_THROUGH & set(chain), chain
    await plain.close()
    await mux.close()


def test_kept_encodings_are_right_sized():
    tracemalloc.start()
    try:
        raw = [orjson.dumps(f"s{i}") for i in range(200)]
        over = tracemalloc.get_traced_memory()[0]
        kept = [compact(orjson.dumps(f"s{i}")) for i in range(200)]
        right = tracemalloc.get_traced_memory()[0] - over
        frames = [control_frame("end") for _ in range(200)]
        controls = tracemalloc.get_traced_memory()[0] - over - right
    finally:
        tracemalloc.stop()
    assert kept == raw and frames[0] == b'{"type":"end"}'
    # orjson's own result holds its whole write buffer (~4 KiB), however short the JSON.
    assert right < 200 * 100 and controls < 200 * 100, (over, right, controls)


def test_parsing_a_subscribe_message_leaves_no_cyclic_garbage():
    text = '{"op": "subscribe", "id": "s", "logs": {"jobId": "train", "tail": 1}}'
    parse_message(text)  # the first use may build what is kept
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(50):
            parse_message(text)
        assert gc.collect() < 50  # a schema per message left 59 objects each in cycles
    finally:
        if was:
            gc.enable()
