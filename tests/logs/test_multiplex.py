"""WS /api/v1/stream: many log subscriptions and a job feed over one socket."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from gpuctl_async.api.stream import STREAM_SOCKETS
from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE, LOG_HUB
from gpuctl_async.logs.lines import parse_ts
from gpuctl_async.sim.logs import LAG_ANNOTATION
from tests.conftest import sim_settings
from tests.helpers import eventually
from tests.logs.helpers import (
    FAST, LogSocket, MuxSocket, add_pod, contiguous, create_job, finish, number, slow_session,
)

SLOW = 10  # lines per second: 40 pods of it stay cheap on a busy machine


async def app_client(sim, aiohttp_client, tmp_path, **settings):
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, **settings)))
    assert await client.app[CACHE].wait_synced(timeout=10)
    return client


def multiplexer(api):
    (mux,) = api.app[STREAM_SOCKETS].values()
    return mux


async def test_forty_log_subscriptions_and_a_job_feed_share_one_socket(api, sim):
    pods: list[tuple[str, str]] = []  # (job, pod)
    for j in range(8):
        job = await create_job(api, sim, f"job-{j}")
        for p in range(5):
            pods.append((f"job-{j}", await add_pod(api, sim, job, f"p{p}aaa", rate=SLOW)))
    plain = [await LogSocket.open(api, job, pod=pod) for job, pod in pods[:2]]
    mux = await MuxSocket.open(api)
    await mux.subscribe_jobs("feed")
    for i, (job, pod) in enumerate(pods):
        await mux.subscribe_logs(f"s{i}", job, pod=pod, tail=5)
    await mux.until(lambda m: all(len(m.lines(f"s{i}")) >= 25 for i in range(len(pods))),
                    timeout=20)
    for i, (job, pod) in enumerate(pods):
        lines = mux.lines(f"s{i}")
        assert {line["pod"] for line in lines} == {pod} and contiguous(lines), i
        assert mux.of(f"s{i}")[0] == {"type": "subscribed", "id": f"s{i}",
                                      "logs": {"job": job, "namespace": "default"}}
    # One upstream per pod, shared with the plain sockets on the same pods.
    for sock, (_, pod) in zip(plain, pods):
        await sock.lines_from(pod, 5)
        assert sim.open_log_streams(f"default/{pod}") == 1
    assert sim.open_log_streams() == 40 and api.app[LOG_HUB].open_streams == 40
    # The job feed, on the same socket.
    subscribed, snapshot = mux.of("feed")[:2]
    assert subscribed == {"type": "subscribed", "id": "feed", "jobs": {}}
    assert snapshot["type"] == "snapshot"
    assert {item["jobId"] for item in snapshot["items"]} == {pod for _, pod in pods}
    finish(sim, pods[7][1])
    await mux.until(lambda m: any(f["type"] == "MODIFIED" and f["item"]["jobId"] == pods[7][1]
                                  for f in m.of("feed")))
    for sock in plain:
        await sock.close()
    await mux.close()


async def test_unsubscribe_frees_the_upstream_after_the_linger(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    mux = await MuxSocket.open(api)
    await mux.subscribe_logs("a", "train")
    await mux.subscribe_logs("b", "train", pod=pod)
    await mux.until(lambda m: len(m.lines("a")) >= 10 and len(m.lines("b")) >= 10)
    assert sim.open_log_streams(f"default/{pod}") == 1  # two subscriptions, one upstream
    await mux.unsubscribe("a")
    await mux.until(lambda m: "unsubscribed" in m.types("a"))
    assert mux.of("a")[-1] == {"type": "unsubscribed", "id": "a"}  # nothing after it
    before = len(mux.lines("b"))
    await mux.until(lambda m: len(m.lines("b")) >= before + 10)  # b goes on
    assert contiguous(mux.lines("b"))
    await mux.unsubscribe("b")
    await mux.until(lambda m: "unsubscribed" in m.types("b"))
    unsubscribed = time.monotonic()
    assert api.app[LOG_HUB].open_streams == 1  # lingering, in case someone comes back
    await eventually(lambda: sim.open_log_streams(), lambda n: n == 0, timeout=5)
    assert time.monotonic() - unsubscribed >= 0.9  # log_stream_linger: 1.0
    assert api.app[LOG_HUB].open_streams == 0
    await mux.subscribe_logs("a", "train", tail=1)  # the id is free again
    await mux.until(lambda m: len(m.lines("a")) >= 12)
    await mux.close()


async def test_a_flooding_subscription_drops_its_own_lines_and_delays_no_other(
        sim, aiohttp_client, tmp_path):
    api = await app_client(sim, aiohttp_client, tmp_path, log_queue_lines=50)
    job = await create_job(api, sim, "train")
    flood = await add_pod(api, sim, job, "flood", rate=FAST)
    calm = [await add_pod(api, sim, job, f"calm{i}") for i in range(5)]
    async with slow_session() as session:
        mux = await MuxSocket.open(api, session)
        await mux.subscribe_logs("flood", "train", pod=flood, tail=1)
        for i, pod in enumerate(calm):
            await mux.subscribe_logs(f"c{i}", "train", pod=pod, tail=1)
        await mux.until(lambda m: all(len(m.lines(f"c{i}")) >= 5 for i in range(5)))
        mux.ws._conn.transport.pause_reading()  # the client stops reading for a while
        outboxes = {sub_id: sub.outbox for sub_id, sub in multiplexer(api).subscriptions.items()}
        await eventually(lambda: outboxes["flood"].dropping, lambda n: n > 0, timeout=10)
        resumed = time.time_ns()
        mux.ws._conn.transport.resume_reading()
        # Each calm subscription gets a line written after the pause within a second or two:
        # what waits ahead of it is at most one frame of the flood's bounded queue.
        await mux.until(lambda m: all(parse_ts(m.lines(f"c{i}")[-1]["ts"]) > resumed
                                      for i in range(5)), timeout=3)
        await mux.close()
    for i in range(5):
        assert contiguous(mux.lines(f"c{i}")) and "dropped" not in mux.types(f"c{i}"), i
    told = sum(f["count"] for f in mux.of("flood") if f["type"] == "dropped")
    numbers = [number(line) for line in mux.lines("flood")]
    assert told > 0 and sum(b - a - 1 for a, b in zip(numbers, numbers[1:])) == told


async def test_too_many_pending_bytes_end_the_biggest_subscription_only(
        sim, aiohttp_client, tmp_path):
    api = await app_client(sim, aiohttp_client, tmp_path, log_queue_lines=100_000,
                           stream_max_pending_bytes=200_000)
    job = await create_job(api, sim, "train")
    flood = await add_pod(api, sim, job, "flood", rate=FAST)
    calm = await add_pod(api, sim, job, "calm")
    async with slow_session() as session:
        mux = await MuxSocket.open(api, session)
        await mux.subscribe_logs("flood", "train", pod=flood, tail=1)
        await mux.subscribe_logs("calm", "train", pod=calm, tail=1)
        await mux.until(lambda m: len(m.lines("calm")) >= 3)
        mux.ws._conn.transport.pause_reading()
        await eventually(lambda: "flood" in multiplexer(api).subscriptions, lambda up: not up,
                         timeout=10)
        mux.ws._conn.transport.resume_reading()
        await mux.until(lambda m: "error" in m.types("flood"))
        before = len(mux.lines("calm"))
        await mux.until(lambda m: len(m.lines("calm")) >= before + 10)
        await mux.close()
    error = mux.of("flood")[-1]
    assert error["type"] == "error" and error["code"] == 503
    assert "200000 bytes" in error["data"]
    assert contiguous(mux.lines("calm"))
    await eventually(lambda: sim.open_log_streams(f"default/{flood}"), lambda n: n == 0)


async def test_every_subscription_resumes_after_a_reconnect(api, sim):
    one = await create_job(api, sim, "one")
    a = await add_pod(api, sim, one, "aaaaa")
    late = await add_pod(api, sim, one, "bbbbb", annotations={LAG_ANNOTATION: "1"})
    two = await create_job(api, sim, "two")
    c = await add_pod(api, sim, two, "ccccc")
    wanted = {"whole-one": ("one", {}), "only-a": ("one", {"pod": a}), "two": ("two", {})}
    mux = await MuxSocket.open(api)
    for sub_id, (job, params) in wanted.items():
        await mux.subscribe_logs(sub_id, job, tail=1, **params)
    await mux.until(lambda m: all(len(m.lines(s)) >= 30 for s in wanted)
                    and len([x for x in m.lines("whole-one") if x["pod"] == late]) >= 10)
    await mux.close()
    again = await MuxSocket.open(api)
    for sub_id, (job, params) in wanted.items():
        await again.subscribe_logs(sub_id, job, since=mux.cursor(sub_id), **params)
    await again.until(lambda m: all(len(m.lines(s)) >= 60 for s in wanted), timeout=10)
    for sub_id in wanted:
        for pod in {line["pod"] for line in mux.lines(sub_id)}:
            before = [x for x in mux.lines(sub_id) if x["pod"] == pod]
            after = [x for x in again.lines(sub_id) if x["pod"] == pod]
            assert number(after[0]) == number(before[-1]) + 1 and contiguous(after), (sub_id,
                                                                                   pod)
    assert {line["pod"] for line in again.lines("two")} == {c}
    await again.close()


async def test_bad_messages_and_limits_are_error_frames_on_an_open_socket(
        sim, aiohttp_client, tmp_path):
    api = await app_client(sim, aiohttp_client, tmp_path, stream_max_subscriptions=2)
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    mux = await MuxSocket.open(api)
    await mux.send_raw("not json")
    await mux.send_raw('{"op": "subscribe", "id": "x", "logs": {"tail": 0}}')
    await mux.ws.send_bytes(b"\x00")
    await mux.unsubscribe("nobody")
    await mux.subscribe_logs("ghost", "no-such-job")
    await mux.until(lambda m: len([f for f in m.frames if f["type"] == "error"]) >= 5)
    await mux.subscribe_logs("a", "train")
    await mux.subscribe_logs("a", "train")
    await mux.subscribe_logs("b", "train", pod="train-zzzzz")
    await mux.until(lambda m: len([f for f in m.frames if f["type"] == "error"]) >= 7)
    errors = [f for f in mux.frames if f["type"] == "error"]
    assert errors[0] == {"type": "error", "id": None, "code": 400,
                         "data": "messages must be JSON objects"}
    assert errors[1]["id"] == "x" and errors[1]["code"] == 400
    assert set(errors[1]["details"]) == {"logs.jobId", "logs.tail"}
    assert errors[2]["id"] is None and "binary" in errors[2]["data"]
    assert errors[3] == {"type": "error", "id": "nobody", "code": 404,
                         "data": "No subscription 'nobody'"}
    by_id = {f["id"]: f for f in errors[4:]}
    assert by_id["ghost"]["code"] == 404 and by_id["ghost"]["data"] == \
        "Job 'no-such-job' not found"
    assert by_id["a"]["code"] == 409
    assert by_id["b"]["code"] == 404  # the pod is not in the job ...
    await mux.subscribe_logs("c", "train")  # ... and its id is free: now "a" and "c"
    await mux.subscribe_logs("d", "train")
    await mux.until(lambda m: m.types("d") == ["error"])
    assert mux.of("d")[0]["code"] == 429 and "At most 2" in mux.of("d")[0]["data"]
    await mux.until(lambda m: len(m.lines("a")) >= 20 and len(m.lines("c")) >= 20)
    assert sim.open_log_streams(f"default/{pod}") == 1
    await mux.close()


async def test_foreign_origins_may_not_open_it(api):
    try:
        await api.ws_connect("/api/v1/stream", headers={"Origin": "https://evil.example"})
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 403
    else:
        raise AssertionError("the upgrade was accepted")


async def test_documented_with_a_sample_session_beside_the_event_stream(api):
    document = await (await api.get("/api/docs/openapi.json")).json()
    description = document["paths"]["/api/v1/stream"]["get"]["description"]
    for needle in ('"op": "subscribe"', '"op": "unsubscribe"', '"type": "subscribed"',
                   '"type": "unsubscribed"', '"type": "error"', "since", "cursor", "> ", "< "):
        assert needle in description, needle
    events = document["paths"]["/api/v1/jobs/{jobId}/logs/stream"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert "Last-Event-ID" in events["description"]


async def test_a_client_that_sends_but_never_reads_is_disconnected(sim, aiohttp_client,
                                                                   tmp_path):
    api = await app_client(sim, aiohttp_client, tmp_path, stream_max_pending_bytes=50_000)
    async with slow_session() as session:
        mux = await MuxSocket.open(api, session)
        mux.ws._conn.transport.pause_reading()
        bad = "x" * 1000  # each answer names the problem; the client reads none of them

        async def flood() -> None:
            while api.app[STREAM_SOCKETS]:
                await mux.send_raw(bad)
                await mux.send_raw('{"op": "unsubscribe", "id": "' + "i" * 100 + '"}')

        sending = asyncio.create_task(flood())
        await eventually(lambda: len(api.app[STREAM_SOCKETS]), lambda n: n == 0, timeout=20)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending


async def test_each_subscribe_costs_a_request_of_the_rate_limit(sim, aiohttp_client, tmp_path):
    api = await app_client(sim, aiohttp_client, tmp_path, rate_limit_per_second=0.5,
                           rate_limit_burst=3)
    job = await create_job(api, sim, "train")  # one token
    await add_pod(api, sim, job, "aaaaa")
    mux = await MuxSocket.open(api)  # one more
    for sub_id in ("a", "b", "c"):
        await mux.subscribe_logs(sub_id, "train", tail=1)
    await mux.until(lambda m: m.types("c") == ["error"] and "subscribed" in m.types("a"))
    assert mux.of("c")[0]["code"] == 429 and "retry in" in mux.of("c")[0]["data"]
    assert "error" not in mux.types("a")
    await mux.close()
