"""WS /api/v1/jobs/{jobId}/logs/ws: tail then live lines, pods joining and ending, the end."""

from __future__ import annotations

import pytest

from gpuctl_async.appkeys import LOG_HUB
from tests.helpers import eventually
from tests.logs.helpers import (
    LogSocket, add_pod, complete, contiguous, create_job, finish, number, settle, start,
)


async def test_tail_then_live_then_end_for_a_job(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", started_ago=1)
    sock = await LogSocket.open(api, "train", tail=10)
    lines = await sock.lines_from(pod, 40)
    assert contiguous(lines) and number(lines[0]) > 0  # the tail: the last 10, then live
    assert all(line["data"].startswith(line["ts"] + " ") for line in lines)
    assert sim.open_log_streams(f"default/{pod}") == 1
    finish(sim, pod)
    await sock.until(lambda s: "pod-ended" in s.types())
    assert "end" not in sock.types()  # the Job has not said it is complete
    complete(sim, job)
    assert await sock.to_close() == 1000
    assert sock.types() == ["pod-ended", "end"]
    assert sock.frames[-2] == {"type": "pod-ended", "pod": pod}
    assert contiguous(sock.of(pod))
    resp = await api.get("/api/v1/jobs/train/logs", params={"tail": "1"})
    assert (await resp.json())["logs"][0] == sock.of(pod)[-1]["data"]  # nothing lost at the end


async def test_finished_job_sends_its_tail_and_ends(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    finish(sim, pod)
    complete(sim, job)
    await settle(api, sim, "jobs")
    sock = await LogSocket.open(api, "train", tail=5, timestamps=False)
    assert await sock.to_close() == 1000
    assert len(sock.lines) == 5 and sock.types() == ["end"]
    assert sock.lines[0]["data"] == f"{pod} main run 0 line {number(sock.lines[0])}"


async def test_pods_of_a_deployment_join_and_leave(api, sim):
    deployment = await create_job(api, sim, "serve", kind="inference")
    old = await add_pod(api, sim, deployment, "aaaaa")
    sock = await LogSocket.open(api, "serve", tail=1)
    await sock.lines_from(old, 5)
    sim.store.delete("pods", old, namespace="default", grace_period_seconds=0)
    new = await add_pod(api, sim, deployment, "bbbbb", started_ago=0.5)
    joined = await sock.lines_from(new, 30)
    assert number(joined[0]) == 0 and contiguous(joined)  # a new pod joins from its start
    await sock.until(lambda s: {"type": "pod-ended", "pod": old} in s.frames)
    assert sock.closed is None  # a Deployment goes on
    await sock.close()


async def test_a_pod_not_started_joins_when_it_starts(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", running=False)
    sock = await LogSocket.open(api, "train")
    start(sim, pod, started_ago=0.2)
    lines = await sock.lines_from(pod, 20)
    assert number(lines[0]) == 0 and contiguous(lines)
    await sock.close()


@pytest.mark.parametrize("mode", ["eof", "reset"])
async def test_upstream_cut_resumes_without_gap_or_repeat(api, sim, mode):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    sock = await LogSocket.open(api, "train", tail=1)
    await sock.lines_from(pod, 10)
    sim.reset_counters()
    assert sim.close_log_streams(mode) == 1
    await sock.lines_from(pod, 60)  # more than a second: the resume repeats up to a second
    assert contiguous(sock.of(pod))
    assert sim.request_count("get", "pods/log") == 1  # one reconnection
    assert sim.open_log_streams(f"default/{pod}") == 1
    await sock.close()


async def test_subscribers_share_one_upstream_closed_after_the_last_leaves(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    first = await LogSocket.open(api, "train")
    second = await LogSocket.open(api, pod)
    a, b = await first.lines_from(pod, 110), await second.lines_from(pod, 110)
    assert a[-1] in b and b[-1] in a or a[:110] == b[:110]
    assert sim.open_log_streams(f"default/{pod}") == 1
    assert api.app[LOG_HUB].open_streams == 1
    await first.close()
    await second.lines_from(pod, 130)
    assert sim.open_log_streams(f"default/{pod}") == 1
    await second.close()
    await eventually(lambda: sim.open_log_streams(), lambda n: n == 0, timeout=3)
    assert api.app[LOG_HUB].open_streams == 0


async def test_resume_with_since_has_no_gap_and_no_repeat(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    first = await LogSocket.open(api, "train", tail=3)
    seen = await first.lines_from(pod, 20)
    await first.close()
    second = await LogSocket.open(api, "train", since=seen[-1]["ts"])
    resumed = await second.lines_from(pod, 30)
    assert number(resumed[0]) == number(seen[-1]) + 1 and contiguous(resumed)
    await second.close()


async def test_only_the_pod_asked_for_ends_with_it(api, sim):
    job = await create_job(api, sim, "train")
    one = await add_pod(api, sim, job, "aaaaa")
    other = await add_pod(api, sim, job, "bbbbb")
    sock = await LogSocket.open(api, "train", pod=one, tail=1)
    await sock.lines_from(one, 5)
    finish(sim, one)
    assert await sock.to_close() == 1000
    assert sock.types() == ["pod-ended", "end"] and not sock.of(other)


async def test_unknown_job_or_pod_is_an_error_frame_and_4404(api, sim):
    sock = await LogSocket.open(api, "ghost")
    assert await sock.to_close() == 4404
    assert sock.frames == [{"type": "error", "data": "Job 'ghost' not found"}]
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa")
    sock = await LogSocket.open(api, "train", pod="train-zzzzz")
    assert await sock.to_close() == 4404
    assert sock.frames[0]["type"] == "error"


async def test_bad_parameters_are_refused_before_the_upgrade(api):
    resp = await api.get("/api/v1/jobs/x/logs/ws", params={"tail": "0"})
    assert resp.status == 400 and "tail" in (await resp.json())["details"]


async def test_frames_and_close_codes_are_documented(api):
    document = await (await api.get("/api/docs/openapi.json")).json()
    operation = document["paths"]["/api/v1/jobs/{jobId}/logs/ws"]["get"]
    for needle in ('"type": "log"', '"type": "logs"', '"type": "dropped"', "pod-ended",
                   '"type": "end"', '"type": "error"', "1011", "4404", "1001", "since="):
        assert needle in operation["description"], needle


async def test_an_upstream_refusal_is_an_error_frame_and_1011(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    sim.forbid("log")  # the service account lost pods/log, as an RBAC change would do
    sock = await LogSocket.open(api, "train")
    assert await sock.to_close() == 1011
    (error,) = [f for f in sock.frames if f["type"] == "error"]
    assert 'cannot get resource "pods/log"' in error["data"] and pod in error["data"]
    resp = await api.get("/api/v1/jobs/train/logs")  # the REST tail says the same, as a 403
    assert resp.status == 403
    assert "cannot get resource" in (await resp.json())["error"]
