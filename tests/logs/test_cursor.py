"""The per-pod resume cursor: exact across pods whose lines arrive late, and across lines that
share a timestamp; a plain timestamp is still accepted."""

from __future__ import annotations

from gpuctl_async.sim.logs import BURST_ANNOTATION, LAG_ANNOTATION
from tests.logs.helpers import LogSocket, add_pod, contiguous, create_job, number


def last_cursor(sock: LogSocket) -> str:
    return [f for f in sock.frames if f["type"] in ("log", "logs")][-1]["cursor"]


async def test_multi_pod_resume_with_the_cursor_loses_the_late_lines_a_timestamp_loses(api, sim):
    job = await create_job(api, sim, "train")
    prompt = await add_pod(api, sim, job, "aaaaa")
    # Its node's clock is a second behind: its lines arrive a second late for their stamps.
    late = await add_pod(api, sim, job, "bbbbb", annotations={LAG_ANNOTATION: "1"})
    sock = await LogSocket.open(api, "train", tail=1)
    await sock.until(lambda s: len(s.of(prompt)) >= 30 and len(s.of(late)) >= 30)
    await sock.close()
    cursor, newest = last_cursor(sock), max(line["ts"] for line in sock.lines)
    seen = {pod: number(sock.of(pod)[-1]) for pod in (prompt, late)}

    by_time = await LogSocket.open(api, "train", since=newest)  # what clients did until now
    await by_time.until(lambda s: len(s.of(late)) >= 5)
    assert number(by_time.of(late)[0]) > seen[late] + 1  # the late pod's lines were skipped
    await by_time.close()

    exact = await LogSocket.open(api, "train", since=cursor)
    await exact.until(lambda s: len(s.of(prompt)) >= 20 and len(s.of(late)) >= 20)
    for pod in (prompt, late):
        lines = exact.of(pod)
        assert number(lines[0]) == seen[pod] + 1 and contiguous(lines), pod
    await exact.close()


async def test_lines_sharing_a_timestamp_all_arrive_and_survive_an_upstream_cut(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa", rate=20, annotations={BURST_ANNOTATION: "3"})
    sock = await LogSocket.open(api, "train", tail=1)
    lines = await sock.lines_from(pod, 30)
    assert contiguous(lines)
    stamps = [line["ts"] for line in lines if number(line) % 3 == 0]
    assert all(line["ts"] in stamps for line in lines[3:])  # groups of three, one stamp each
    assert sim.close_log_streams("eof") == 1  # the hub resumes in the middle of a second
    assert contiguous(await sock.lines_from(pod, 90))
    await sock.close()


async def test_every_log_frame_carries_its_cursor_and_bad_ones_are_refused(api, sim):
    job = await create_job(api, sim, "train")
    pod = await add_pod(api, sim, job, "aaaaa")
    sock = await LogSocket.open(api, "train", tail=5)
    await sock.lines_from(pod, 10)
    await sock.close()
    frames = [f for f in sock.frames if f["type"] in ("log", "logs")]
    assert all(isinstance(f["cursor"], str) and f["cursor"].startswith("1~") for f in frames)
    assert len({f["cursor"] for f in frames}) == len(frames)  # each says where it leaves off
    for bad in ("yesterday", "1~train-aaaaa_zz", "1~train-aaaaa_1f_0"):
        resp = await api.get("/api/v1/jobs/train/logs/ws", params={"since": bad})
        assert resp.status == 400
        assert "since" in (await resp.json())["details"], bad
