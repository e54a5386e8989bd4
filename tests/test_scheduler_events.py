"""Events recorded the events.k8s.io/v1 way (kube-scheduler's: ``series``, no ``count``, null
timestamps) show in job detail like the core/v1 ones: folded, counted, with their time."""

from __future__ import annotations

from tests.helpers import eventually, job_yaml


async def detail(api, name: str) -> dict:
    resp = await api.get(f"/api/v1/jobs/{name}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_failed_scheduling_from_the_scheduler_is_shown_and_counted(live_sim, live_api):
    # A compute job holds all 4 T4s of inference-pool; a 1-GPU job then waits, and the
    # scheduler reports FailedScheduling. (A job that can never fit is refused at submit.)
    for kind, name, gpus in (("compute", "holder", 4), ("training", "greedy", 1)):
        resp = await live_api.post("/api/v1/jobs", json={"yamlContent": job_yaml(
            kind, name, pool="inference-pool").replace(
                "  memory: 256Mi", f"  memory: 256Mi\n  gpu: {gpus}")})
        assert resp.status == 201, await resp.text()
        if name == "holder":
            await eventually(lambda: detail(live_api, "holder"),
                             lambda d: d["status"] == "Running")

    def failed(d: dict) -> list:
        return [e for e in d["events"] if e["reason"] == "FailedScheduling"]

    shown = await eventually(lambda: detail(live_api, "greedy"), lambda d: failed(d))
    (event,) = failed(shown)
    assert event["from"] == "default-scheduler" and event["type"] == "Warning"
    assert event["lastTimestamp"] and event["count"] == 1
    stored = live_sim.store.list("events", "default", field_selector="reason=FailedScheduling")
    assert "count" not in stored[0] and stored[0]["lastTimestamp"] is None
    # A retry that does not help: the scheduler's series counts it, and so do we.
    live_sim.store.patch("nodes", "infer-t4-0", {"metadata": {"labels": {"touched": "1"}}})
    shown = await eventually(lambda: detail(live_api, "greedy"),
                             lambda d: failed(d) and failed(d)[0]["count"] == 2)
    series = live_sim.store.list("events", "default",
                                 field_selector="reason=FailedScheduling")[0]["series"]
    assert failed(shown)[0]["lastTimestamp"] == series["lastObservedTime"]
