"""GET /api/v1/jobs/{jobId}/logs/stream: Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim.logs import BURST_ANNOTATION, LAG_ANNOTATION
from tests.conftest import sim_settings
from tests.helpers import eventually
from tests.logs.helpers import (
    EventStream, LogSocket, add_pod, complete, contiguous, create_job, finish, number,
)


async def test_tail_then_live_lines_with_ids_then_end(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    events = await EventStream.open(api, "train", tail=5)
    assert events.response.headers["Content-Type"].startswith("text/event-stream")
    await events.until(lambda e: len(e.of(pod)) >= 30)
    assert contiguous(events.of(pod))
    ids = [e["id"] for e in events.events]
    assert all(ids) and len(set(ids)) == len(ids)  # every line its own cursor
    finish(sim, pod)
    complete(sim, job)
    await events.until(lambda e: e.ended)
    assert events.named() == ["pod-ended", "end"]
    assert events.events[-1] == {"event": "end", "id": None, "data": {}}
    events.close()


async def test_reconnect_with_last_event_id_resumes_exactly_after_a_cut(api, sim):
    job = await create_job(api, sim, "train")
    grouped = await add_pod(api, sim, job, "aaaaa", rate=20,
                            annotations={BURST_ANNOTATION: "3"})  # three lines per stamp
    late = await add_pod(api, sim, job, "bbbbb", annotations={LAG_ANNOTATION: "1"})
    first = await EventStream.open(api, "train", tail=1)
    await first.until(lambda e: len(e.of(grouped)) >= 30 and len(e.of(late)) >= 30)
    first.close()  # the cut
    # Resume from an event in the middle of a group of lines sharing one timestamp.
    events = first.events
    index = max(i for i, e in enumerate(events)
                if e["data"]["pod"] == grouped and number(e["data"]) % 3 == 1)
    seen = {pod: max(number(e["data"]) for e in events[:index + 1] if e["data"]["pod"] == pod)
            for pod in (grouped, late)}
    again = await EventStream.open(api, "train", last_event_id=events[index]["id"],
                                   since="2000-01-01T00:00:00Z")  # the header wins
    await again.until(lambda e: len(e.of(grouped)) >= 30 and len(e.of(late)) >= 30)
    for pod in (grouped, late):
        assert number(again.of(pod)[0]) == seen[pod] + 1 and contiguous(again.of(pod)), pod
    again.close()


async def test_shares_the_upstream_with_sockets_and_frees_it_when_the_client_goes(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    sock = await LogSocket.open(api, "train")
    events = await EventStream.open(api, "train")
    await sock.lines_from(pod, 20)
    await events.until(lambda e: len(e.of(pod)) >= 20)
    assert sim.open_log_streams(f"default/{pod}") == 1
    await sock.close()
    events.close()
    await eventually(lambda: sim.open_log_streams(), lambda n: n == 0, timeout=5)


async def test_idle_stream_gets_keepalive_comments(sim, aiohttp_client, tmp_path):
    api = await aiohttp_client(create_app(sim_settings(sim, tmp_path, log_sse_keepalive=0.1)))
    assert await api.app[CACHE].wait_synced(timeout=10)
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa", rate=0)
    events = await EventStream.open(api, "train")
    await events.until(lambda e: e.comments >= 2)
    assert not events.lines
    events.close()


async def test_refusals_come_before_the_stream_as_json(api, sim):
    resp = await api.get("/api/v1/jobs/ghost/logs/stream")
    assert resp.status == 404 and (await resp.json())["error"] == "Job 'ghost' not found"
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa")
    resp = await api.get("/api/v1/jobs/train/logs/stream", headers={"Last-Event-ID": "junk"})
    assert resp.status == 400 and "Last-Event-ID" in (await resp.json())["details"]
    resp = await api.get("/api/v1/jobs/train/logs/stream", params={"tail": "0"})
    assert resp.status == 400 and "tail" in (await resp.json())["details"]
