"""Log streaming and the job feed in ``/metrics``: sockets and streams move the gauges and
back, lines and frames are counted, and so are slow clients' drops, stalls and resumes."""

from __future__ import annotations

from gpuctl_async.api.paths import JOB_FEED_PATH
from tests.helpers import eventually
from tests.logs.helpers import (FAST, LogSocket, add_pod, app_client, create_job, open_slow,
                                silent_client, slow_session, stalling_app, start, wait)
from tests.metrics_helpers import scrape

LOGS = {"kind": "logs"}


async def test_opening_and_closing_log_sockets_moves_the_gauges_back(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    before = await scrape(api)
    first = await LogSocket.open(api, "train", tail=1)
    second = await LogSocket.open(api, pod, tail=1)
    await first.lines_from(pod, 5)
    await second.lines_from(pod, 5)
    during = await scrape(api)
    assert during.get_value("gpuctl_websockets_open", **LOGS) == \
        before.get_value("gpuctl_websockets_open", **LOGS) + 2
    assert during.get_value("gpuctl_log_streams_open") == 1  # shared upstream
    assert during.get_value("gpuctl_log_stream_subscribers") == 2
    sent = during.get_value("gpuctl_log_lines_sent_total")
    assert sent >= len(first.lines) + len(second.lines) - 2  # a frame may be in flight
    assert during.get_value("gpuctl_log_frames_sent_total") >= 2
    await first.close()
    await second.close()
    after = await eventually(lambda: scrape(api), lambda s: (
        s.get_value("gpuctl_websockets_open", **LOGS),
        s.get_value("gpuctl_log_streams_open"),
        s.get_value("gpuctl_log_stream_subscribers")) == (
        before.get_value("gpuctl_websockets_open", **LOGS),
        before.get_value("gpuctl_log_streams_open"),
        before.get_value("gpuctl_log_stream_subscribers")))
    assert after.get_value("gpuctl_log_lines_sent_total") >= sent


async def test_an_upstream_cut_counts_a_resume(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    sock = await LogSocket.open(api, "train", tail=1)
    await sock.lines_from(pod, 5)
    assert (await scrape(api)).get_value("gpuctl_log_stream_resumes_total") == 0
    assert sim.close_log_streams("reset") == 1
    await sock.lines_from(pod, len(sock.of(pod)) + 10)
    assert (await scrape(api)).get_value("gpuctl_log_stream_resumes_total") == 1
    await sock.close()


async def test_a_slow_clients_drops_are_counted(aiohttp_client, sim, tmp_path):
    api = await app_client(aiohttp_client, sim, tmp_path, log_queue_lines=50)
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", rate=FAST)
    fast = await LogSocket.open(api, "train", tail=1)
    async with slow_session() as session:
        slow = await open_slow(session, api, "train", tail=1)
        await slow.lines_from(pod, 1)
        slow.ws._conn.transport.pause_reading()
        await fast.lines_from(pod, FAST * 2, timeout=10)
        slow.ws._conn.transport.resume_reading()
        await slow.until(lambda s: "dropped" in s.types(), timeout=10)
        told = sum(frame["count"] for frame in slow.frames if frame["type"] == "dropped")
        dropped = (await scrape(api)).get_value("gpuctl_log_lines_dropped_total")
        assert dropped >= told > 0  # it may have been told of some only later
        await slow.close()
    await fast.close()


async def test_a_stalled_client_is_counted(aiohttp_client, sim, tmp_path):
    api, pod = await stalling_app(aiohttp_client, sim, tmp_path)
    async with silent_client(api, pod):
        await eventually(lambda: scrape(api),
                         lambda s: s.get_value("gpuctl_log_clients_stalled_total") == 1,
                         timeout=10)


async def test_the_job_feed_counts_sockets_frames_and_coalesced_updates(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", running=False)
    async with api.ws_connect(JOB_FEED_PATH) as ws:
        assert (await ws.receive_json())["type"] == "snapshot"
        samples = await scrape(api)
        assert samples.get_value("gpuctl_websockets_open", kind="jobs") == 1
        assert samples.get_value("gpuctl_job_feed_frames_sent_total") == 1
        for _ in range(3):  # a burst of changes to one job: the window folds them
            start(sim, pod)
            wait(sim, pod, "ContainerCreating")
        await eventually(lambda: scrape(api), lambda s: s.get_value(
            "gpuctl_job_feed_coalesced_updates_total") >= 1)
        assert (await ws.receive_json())["type"] == "MODIFIED"
        assert (await scrape(api)).get_value("gpuctl_job_feed_frames_sent_total") >= 2
    await eventually(lambda: scrape(api),
                     lambda s: s.get_value("gpuctl_websockets_open", kind="jobs") == 0)


async def test_multiplexed_sockets_and_their_subscriptions_are_counted(api, sim):
    from tests.logs.helpers import MuxSocket

    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    before = await scrape(api)
    mux = await MuxSocket.open(api)
    await mux.subscribe_logs("a", "train", tail=1)
    await mux.subscribe_logs("b", pod, tail=1)
    await mux.subscribe_jobs("jobs")
    await mux.until(lambda m: len(m.lines("a")) >= 3 and len(m.lines("b")) >= 3
                    and "snapshot" in m.types("jobs"))
    during = await scrape(api)
    assert during.get_value("gpuctl_websockets_open", kind="stream") == 1
    assert during.get_value("gpuctl_stream_subscriptions") == 3
    assert during.get_value("gpuctl_log_stream_subscribers") == 2  # one upstream, two
    assert during.get_value("gpuctl_log_lines_sent_total") >= \
        before.get_value("gpuctl_log_lines_sent_total") + 4
    assert during.get_value("gpuctl_job_feed_frames_sent_total") >= \
        before.get_value("gpuctl_job_feed_frames_sent_total") + 1
    await mux.unsubscribe("b")
    await mux.until(lambda m: "unsubscribed" in m.types("b"))
    assert (await scrape(api)).get_value("gpuctl_stream_subscriptions") == 2
    await mux.close()
    await eventually(lambda: scrape(api), lambda s: (
        s.get_value("gpuctl_websockets_open", kind="stream"),
        s.get_value("gpuctl_stream_subscriptions")) == (0, 0))
