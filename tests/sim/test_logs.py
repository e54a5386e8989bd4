"""pods/log of the simulated cluster, through kubernetes_asyncio, raw HTTP and kubectl.

Container states are written into pod status here exactly as a kubelet writes them; the logs
follow from those alone.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import orjson
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from gpuctl_async.sim.logs import RATE_ANNOTATION
from gpuctl_async.sim.patch import MERGE_PATCH
from gpuctl_async.sim.store import timestamp
from gpuctl_async.sim.testing import SimCluster

from .helpers import kubectl_path, pod, wait_for

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
RATE = 50  # lines per second, so tests see many lines quickly


def make_pod(sim: SimCluster, name: str, *, node: str | None = "node-1",
             containers: tuple[str, ...] = ("main",), rate: float = RATE) -> dict:
    body = pod(name, containers=[{"name": c, "image": "busybox:1.36"} for c in containers],
               **({"nodeName": node} if node else {}))
    body["metadata"]["annotations"] = {RATE_ANNOTATION: str(rate)}
    return sim.store.create("pods", body, namespace="default")


def set_state(sim: SimCluster, name: str, state: dict, *, restarts: int = 0,
              last: dict | None = None, phase: str = "Running", container: str = "main",
              started_at: str | None = None) -> None:
    if "running" in state and not state["running"]:
        state = {"running": {"startedAt": started_at or timestamp()}}
    status = {"name": container, "image": "busybox:1.36", "ready": "running" in state,
              "restartCount": restarts, "state": state,
              "lastState": {"terminated": last} if last else {}}
    sim.store.patch("pods", name, {"status": {"phase": phase, "containerStatuses": [status]}},
                    namespace="default", patch_type=MERGE_PATCH, subresource="status")


def terminated(exit_code: int = 0, reason: str = "Completed") -> dict:
    return {"exitCode": exit_code, "reason": reason, "startedAt": timestamp(),
            "finishedAt": timestamp()}


async def get_log(sim: SimCluster, name: str, **params) -> tuple[int, str]:
    query = {k: str(v) for k, v in params.items()}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.url}/api/v1/namespaces/default/pods/{name}/log",
                               params=query) as resp:
            return resp.status, await resp.text()


def error_message(text: str) -> str:
    return orjson.loads(text)["message"]


async def test_lines_are_deterministic_timestamped_and_tail_limited(k8s, sim):
    make_pod(sim, "p")
    set_state(sim, "p", {"running": {}})
    text = ""

    async def enough() -> bool:
        nonlocal text
        text = await k8s.core.read_namespaced_pod_log("p", "default", timestamps=True)
        return text.count("\n") >= 10
    await wait_for(enough)
    lines = text.splitlines()
    assert all(TS.match(line) for line in lines)
    assert [line.split(" ", 1)[1] for line in lines[:3]] == [
        f"p main run 0 line {i}" for i in range(3)]
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    tail = await k8s.core.read_namespaced_pod_log("p", "default", tail_lines=3)
    assert len(tail.splitlines()) == 3 and not TS.match(tail)
    assert tail.splitlines()[-1].startswith("p main run 0 line ")
    assert await k8s.core.read_namespaced_pod_log("p", "default", tail_lines=0) == ""


async def test_since_and_limit_bytes(sim):
    make_pod(sim, "p")
    set_state(sim, "p", {"running": {}}, started_at=timestamp(time.time() - 3))
    status, text = await get_log(sim, "p", timestamps="true")
    assert status == 200
    stamps = [line.split(" ", 1)[0] for line in text.splitlines()]
    assert len(stamps) >= 100  # three seconds at 50 lines/s
    # sinceTime reaches the kubelet in whole seconds: lines from the start of that second on.
    middle = stamps[len(stamps) // 2]
    status, since = await get_log(sim, "p", timestamps="True", sinceTime=middle)
    first = since.splitlines()[0].split(" ", 1)[0]
    assert first == middle[:19] + ".000000000Z"
    status, recent = await get_log(sim, "p", sinceSeconds=1)
    assert 40 <= len(recent.splitlines()) <= 60
    status, cut = await get_log(sim, "p", limitBytes=25)
    assert (status, cut) == (200, "p main run 0 line 0\np mai")  # cut mid-line


@pytest.mark.parametrize(("params", "message"), [
    ({"tailLines": -1}, 'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be '
                        'greater than or equal to 0'),
    ({"limitBytes": 0}, 'PodLogOptions "p" is invalid: limitBytes: Invalid value: 0: must be '
                        'greater than 0'),
    ({"sinceSeconds": 5, "sinceTime": "2024-01-01T00:00:00Z"},
     'PodLogOptions "p" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` '
     'may be specified'),
])
async def test_invalid_options_are_422(sim, params, message):
    make_pod(sim, "p")
    set_state(sim, "p", {"running": {}})
    status, text = await get_log(sim, "p", **params)
    assert (status, error_message(text)) == (422, message)


@pytest.mark.parametrize(("state", "message"), [
    ({"waiting": {"reason": "ContainerCreating"}},
     'container "main" in pod "p" is waiting to start: ContainerCreating'),
    ({"waiting": {"reason": "ErrImagePull"}},
     'container "main" in pod "p" is waiting to start: image can\'t be pulled'),
    ({"waiting": {"reason": "ImagePullBackOff"}},
     'container "main" in pod "p" is waiting to start: trying and failing to pull image'),
])
async def test_container_not_started_is_the_kubelets_400(k8s, sim, state, message):
    make_pod(sim, "p")
    set_state(sim, "p", state, phase="Pending")
    with pytest.raises(ApiException) as error:
        await k8s.core.read_namespaced_pod_log("p", "default")
    assert error.value.status == 400
    assert orjson.loads(error.value.body) | {} == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "BadRequest", "code": 400}


async def test_unscheduled_pod_has_an_empty_log_and_no_status_is_not_available(sim):
    make_pod(sim, "pending", node=None)
    assert await get_log(sim, "pending") == (200, "")
    make_pod(sim, "bound")
    status, text = await get_log(sim, "bound")
    assert (status, error_message(text)) == (
        400, 'container "main" in pod "bound" is not available')


async def test_container_choice(sim):
    make_pod(sim, "two", containers=("a", "b"))
    status, text = await get_log(sim, "two")
    assert (status, error_message(text)) == (
        400, "a container name must be specified for pod two, choose one of: [a b]")
    status, text = await get_log(sim, "two", container="c")
    assert (status, error_message(text)) == (400, "container c is not valid for pod two")
    set_state(sim, "two", {"running": {}}, container="b",
              started_at=timestamp(time.time() - 1))
    status, text = await get_log(sim, "two", container="b")
    assert status == 200 and text.startswith("two b run 0 line 0\n")


async def test_restarted_container_keeps_its_previous_log(k8s, sim):
    make_pod(sim, "crash")
    status, text = await get_log(sim, "crash", previous="true")
    assert error_message(text) == ('container "main" in pod "crash" is not available')
    set_state(sim, "crash", {"running": {}}, started_at=timestamp(time.time() - 1))
    first = terminated(1, "Error")
    # Crash-looping: waiting, its log is the terminated run's.
    set_state(sim, "crash", {"waiting": {"reason": "CrashLoopBackOff"}}, last=first)
    waiting_log = await k8s.core.read_namespaced_pod_log("crash", "default")
    assert waiting_log.startswith("crash main run 0 line 0\n")
    assert await k8s.core.read_namespaced_pod_log("crash", "default", previous=True) \
        == waiting_log
    set_state(sim, "crash", {"running": {}}, restarts=1, last=first)

    async def second_run() -> bool:
        current = await k8s.core.read_namespaced_pod_log("crash", "default")
        return current.startswith("crash main run 1 line 0\n")
    await wait_for(second_run)
    assert await k8s.core.read_namespaced_pod_log("crash", "default", previous=True) \
        == waiting_log  # the finished run does not grow any more
    make_pod(sim, "fresh")
    set_state(sim, "fresh", {"running": {}})
    with pytest.raises(ApiException) as error:
        await k8s.core.read_namespaced_pod_log("fresh", "default", previous=True)
    assert orjson.loads(error.value.body)["message"] == (
        'previous terminated container "main" in pod "fresh" not found')


async def test_buffer_is_bounded():
    async with SimCluster(log_buffer_lines=5) as sim:
        make_pod(sim, "p")
        set_state(sim, "p", {"running": {}}, started_at=timestamp(time.time() - 2))
        status, text = await get_log(sim, "p")
        lines = text.splitlines()
        assert len(lines) == 5 and not lines[0].endswith(" line 0")


async def follow(sim: SimCluster, name: str, **params) -> tuple[asyncio.Queue, asyncio.Task]:
    """Follow a pod's log; lines arrive on the queue, None at the end of the stream."""
    lines: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        query = {"follow": "True", **{k: str(v) for k, v in params.items()}}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{sim.url}/api/v1/namespaces/default/pods/{name}/log",
                                   params=query) as resp:
                assert resp.status == 200
                try:
                    async for line in resp.content:
                        lines.put_nowait(line.decode().rstrip("\n"))
                except aiohttp.ClientPayloadError:
                    lines.put_nowait("<reset>")
        lines.put_nowait(None)

    return lines, asyncio.create_task(read())


async def drain(queue: asyncio.Queue, timeout: float = 5.0) -> list:
    seen = []
    async with asyncio.timeout(timeout):
        while (item := await queue.get()) is not None:
            seen.append(item)
    return seen


async def test_follow_ends_when_the_container_terminates(sim):
    make_pod(sim, "p")
    set_state(sim, "p", {"running": {}})
    lines, reader = await follow(sim, "p", tailLines=0)
    first = await asyncio.wait_for(lines.get(), 5)
    assert first.startswith("p main run 0 line ")
    assert sim.counters()["logs"] == {"open": {"default/p": 1}}
    set_state(sim, "p", {"terminated": terminated()}, phase="Succeeded")
    rest = await drain(lines)
    await reader
    numbers = [int(line.rsplit(" ", 1)[1]) for line in [first, *rest]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no gap
    assert sim.open_log_streams("default/p") == 0
    status, text = await get_log(sim, "p")
    assert text.splitlines()[-1] == [first, *rest][-1]  # the stream had it all


@pytest.mark.parametrize("mode", ["eof", "reset"])
async def test_fault_cuts_open_follow_streams(sim, mode):
    make_pod(sim, "p")
    set_state(sim, "p", {"running": {}})
    lines, reader = await follow(sim, "p", tailLines=1)
    await asyncio.wait_for(lines.get(), 5)
    await wait_for(lambda: sim.open_log_streams("default/p") == 1)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.url}/_sim/logs/close", params={"mode": mode}) as resp:
            assert await resp.json() == {"closed": 1}
    rest = await drain(lines)
    await reader
    assert (rest[-1:] == ["<reset>"]) == (mode == "reset")
    assert sim.open_log_streams() == 0
    assert sim.request_count("get", "pods/log") == 1


async def test_kubectl_logs_follow_prints_lines_and_exits_when_the_pod_ends(sim, tmp_path):
    config = sim.write_kubeconfig(tmp_path / "kubeconfig")
    make_pod(sim, "p", rate=20)
    set_state(sim, "p", {"running": {}})
    process = await asyncio.create_subprocess_exec(
        kubectl_path(), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"),
        "logs", "-f", "p", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    first = await asyncio.wait_for(process.stdout.readline(), 10)
    assert first.decode().startswith("p main run 0 line ")
    set_state(sim, "p", {"terminated": terminated()}, phase="Succeeded")
    out, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err
    assert (first + out).decode().splitlines()[-1].startswith("p main run 0 line ")


async def test_kubectl_logs_follow_on_a_job_run_by_the_simulated_kubelet(tmp_path):
    from gpuctl_async.sim.timing import Timing
    from gpuctl_async.sim.topology import default_nodes

    async with SimCluster(workloads=True, nodes=default_nodes(), log_lines_per_second=20,
                          timing=Timing.fast().with_changes(job_run=1.5)) as sim:
        config = sim.write_kubeconfig(tmp_path / "kubeconfig")
        sim.store.create("jobs", {
            "metadata": {"name": "train"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox:1.36"}]}}}}, namespace="default")

        def running_pod() -> str | None:
            pods = sim.store.list("pods", "default", label_selector="job-name=train")
            running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            return running[0]["metadata"]["name"] if running else None

        await wait_for(lambda: running_pod() is not None)
        name = running_pod()
        process = await asyncio.create_subprocess_exec(
            kubectl_path(), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"),
            "logs", "-f", name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 20)  # ends with the pod
        assert process.returncode == 0, err
        lines = out.decode().splitlines()
        assert len(lines) >= 10 and all(line.startswith(f"{name} main run 0 line ")
                                        for line in lines)
        pod_phase = sim.store.get("pods", name, namespace="default")["status"]["phase"]
        assert pod_phase == "Succeeded"


async def test_multi_line_writes_share_a_stamp_and_a_lagging_clock_stamps_early(sim):
    from gpuctl_async.logs.lines import NS, parse_ts
    from gpuctl_async.sim.logs import BURST_ANNOTATION, LAG_ANNOTATION

    make_pod(sim, "burst", rate=20)
    sim.store.patch("pods", "burst", {"metadata": {"annotations": {
        BURST_ANNOTATION: "3", LAG_ANNOTATION: "5"}}}, namespace="default",
        patch_type=MERGE_PATCH)
    set_state(sim, "burst", {"running": {}}, started_at=timestamp(time.time() - 1))
    status, text = await get_log(sim, "burst", timestamps="true")
    assert status == 200
    lines = text.splitlines()
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert len(lines) >= 30 and len(lines) % 3 == 0  # whole writes only
    assert all(stamps[i] == stamps[i + 1] == stamps[i + 2] for i in range(0, len(lines), 3))
    assert len(set(stamps)) == len(lines) // 3
    # Written within the last second, stamped five seconds early.
    assert time.time_ns() - parse_ts(stamps[-1]) > 4.5 * NS
    second = stamps[3][:19] + "Z"  # sinceTime finds them by their (early) stamps
    status, again = await get_log(sim, "burst", timestamps="true", sinceTime=second)
    since = [line.split(" ", 1)[0] for line in again.splitlines()]
    assert status == 200 and since[0] >= second[:19] and stamps[3] in since
