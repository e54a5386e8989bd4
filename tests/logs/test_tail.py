"""GET /api/v1/jobs/{jobId}/logs: the tail of a job's pods, merged in time order."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.logs.conftest import RATE
from tests.helpers import settle, without_request_id
from tests.logs.helpers import add_pod, create_job, finish, start, wait

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


async def logs(api, job: str, status: int = 200, **params) -> dict:
    resp = await api.get(f"/api/v1/jobs/{job}/logs", params={k: str(v) for k, v in
                                                              params.items()})
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_merges_every_pods_tail_in_time_order(api, sim):
    job = await create_job(api, sim, "train")
    first = await add_pod(api, sim, job, "aaaaa", started_ago=2)
    second = await add_pod(api, sim, job, "bbbbb", started_ago=1)
    body = await logs(api, "train")
    assert body["pods"] == [first, second]
    assert len(body["logs"]) == 100
    stamps = [line.split(" ", 1)[0] for line in body["logs"]]
    assert all(TS.match(s) for s in stamps) and stamps == sorted(stamps)
    assert {line.split(" ")[1] for line in body["logs"]} == {first, second}
    assert body["lastTimestamp"] == stamps[-1]

    few = await logs(api, first, tail=5, timestamps="false")  # a pod name names its job
    assert len(few["logs"]) == 5 and few["pods"] == [first, second]
    assert all(line.startswith("train-") for line in few["logs"])  # no timestamp in front

    only = await logs(api, "train", pod=second, tail=10000)
    assert only["pods"] == [second]
    assert {line.split(" ")[1] for line in only["logs"]} == {second}
    assert len(only["logs"]) >= RATE  # all of it: a second at 50 lines/s


async def test_since_parameters(api, sim):
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa", started_ago=3)
    every = (await logs(api, "train", tail=10000))["logs"]
    middle = every[len(every) // 2].split(" ", 1)[0]
    since = (await logs(api, "train", tail=10000, sinceTime=middle))["logs"]
    assert since[0].split(" ", 1)[0] == middle  # exact, though Kubernetes has whole seconds
    # Everything from the middle on, then whatever was written since the first read.
    assert since[:len(every) - len(every) // 2] == every[len(every) // 2:]
    recent = (await logs(api, "train", tail=10000, sinceSeconds=1))["logs"]
    assert RATE * 0.8 <= len(recent) <= RATE * 1.5


@pytest.mark.parametrize(("params", "message"), [
    ({"follow": "true"}, "Use WebSocket for follow mode"),
    ({"tail": 0}, None), ({"tail": 10001}, None), ({"sinceSeconds": 0}, None),
    ({"sinceTime": "yesterday"}, None),
    ({"sinceTime": "2024-01-01T00:00:00Z", "sinceSeconds": 5}, None),
])
async def test_bad_parameters_are_400(api, sim, params, message):
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa")
    body = await logs(api, "train", 400, **params)
    if message:
        assert without_request_id(body) == {"error": message}
    else:
        assert body["details"]


async def test_follow_is_refused_before_looking_for_the_job(api):
    assert without_request_id(await logs(api, "nothing-here", 400, follow="true")) == {
        "error": "Use WebSocket for follow mode"}


async def test_unknown_job_and_pod_are_404(api, sim):
    assert without_request_id(await logs(api, "ghost", 404)) == {"error": "Job 'ghost' not found"}
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa")
    assert without_request_id(await logs(api, "train", 404, pod="train-zzzzz")) == {
        "error": "Pod 'train-zzzzz' not found in job 'train'"}


async def test_container_not_started_is_409_with_kubernetes_reason(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", running=False)
    assert without_request_id(await logs(api, "train", 409)) == {
        "error": f'container "main" in pod "{pod}" is waiting to start: ContainerCreating'}
    wait(sim, pod, "ImagePullBackOff")
    await settle(api, sim)
    assert (await logs(api, "train", 409))["error"].endswith(
        "is waiting to start: trying and failing to pull image")
    start(sim, pod)
    await settle(api, sim)
    assert (await logs(api, "train"))["pods"] == [pod]


async def test_a_pod_not_started_does_not_hide_the_others(api, sim):
    job = await create_job(api, sim, "train")
    ready = await add_pod(api, sim, job, "aaaaa")
    await add_pod(api, sim, job, "bbbbb", running=False)
    body = await logs(api, "train", tail=3)
    assert body["pods"] == [ready] and len(body["logs"]) == 3


async def test_finished_pod_still_has_its_logs_and_empty_log_has_no_timestamp(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    finish(sim, pod)
    await settle(api, sim)
    assert len((await logs(api, "train", tail=20))["logs"]) == 20
    fresh = await add_pod(api, sim, job, "ccccc", started_ago=0)
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = await logs(api, "train", pod=fresh, sinceTime=later)
    assert body["pods"] == [fresh]
    assert body["logs"] == [] and body["lastTimestamp"] is None
