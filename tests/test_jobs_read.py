"""GET /api/v1/jobs, GET /api/v1/jobs/{jobId} and the live job feed, served from the caches.

Pods here are made and moved through their states over the simulated cluster's API, as a
controller and a kubelet would, so every state can be pinned exactly.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import orjson
import pytest

from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim.patch import MERGE_PATCH
from tests.helpers import eventually, job_pod, job_yaml, node_manifest, settle, without_request_id

NOW = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def create(api, sim, kind: str, name: str, namespace: str = "default", extra: str = ""):
    resp = await api.post("/api/v1/jobs",
                          json={"yamlContent": job_yaml(kind, name, namespace=namespace,
                                                        extra=extra)})
    assert resp.status == 201, await resp.text()
    resource = {"training": "jobs", "inference": "deployments", "compute": "deployments",
                "notebook": "statefulsets"}[kind]
    return sim.store.get(resource, name, namespace=namespace)


def set_status(sim, pod: dict, status: dict) -> dict:
    meta = pod["metadata"]
    return sim.store.patch("pods", meta["name"], {"status": status}, namespace=meta["namespace"],
                           patch_type=MERGE_PATCH, subresource="status")


def container(state: dict, *, ready: bool = False, restarts: int = 0) -> dict:
    return {"status": {"containerStatuses": [{"name": "main", "image": "busybox:1.36",
                                              "ready": ready, "restartCount": restarts,
                                              "state": state}]}}


async def add_pod(api, sim, controller: dict, suffix: str, status: dict | None = None, *,
                  node: str | None = None) -> dict:
    pod = sim.store.create("pods", job_pod(controller, suffix, node=node),
                           namespace=controller["metadata"]["namespace"])
    if status:
        pod = set_status(sim, pod, status)
    await settle(api, sim)
    return pod


async def jobs(api, **params) -> dict:
    resp = await api.get("/api/v1/jobs", params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.fixture
async def node(sim):
    return sim.store.create("nodes", node_manifest("gpu-1", ip="192.168.7.1"))


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ({"status": {"phase": "Pending"}}, "Pending"),
        ({"status": {"phase": "Pending", **container(
            {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
            ["status"]}}, "ImagePullBackOff"),
        ({"status": {"phase": "Running", **container(
            {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=3)["status"]}},
         "CrashLoopBackOff"),
        ({"status": {"phase": "Running", **container(
            {"terminated": {"reason": "OOMKilled", "exitCode": 137}})["status"]}}, "OOMKilled"),
        ({"status": {"phase": "Failed", **container(
            {"terminated": {"reason": "Error", "exitCode": 1}})["status"]}}, "Error"),
        ({"status": {"phase": "Succeeded", **container(
            {"terminated": {"reason": "Completed", "exitCode": 0}})["status"]}}, "Succeeded"),
        ({"status": {"phase": "Running", "podIP": "10.42.0.9", **container(
            {"running": {"startedAt": NOW}}, ready=True)["status"]}}, "Running"),
    ],
)
async def test_pod_states_are_shown(sim, api, node, status, shown):
    job = await create(api, sim, "training", "states")
    await add_pod(api, sim, job, "aaaaa", status["status"], node="gpu-1")
    body = await jobs(api)
    assert body["total"] == 1
    (item,) = body["items"]
    assert item["jobId"] == "states-aaaaa" and item["name"] == "states"
    assert item["kind"] == "training" and item["namespace"] == "default"
    assert item["status"] == shown
    assert item["node"] == "gpu-1"
    if shown == "Running":
        assert item["ready"] == "1/1" and item["ip"] == "10.42.0.9"


async def test_terminating_pod(sim, api, node):
    job = await create(api, sim, "training", "ending")
    pod = await add_pod(api, sim, job, "bbbbb", {"phase": "Running"}, node="gpu-1")
    sim.store.delete("pods", pod["metadata"]["name"], namespace="default",
                     grace_period_seconds=30)
    await settle(api, sim)
    (item,) = (await jobs(api))["items"]
    assert item["status"] == "Terminating"


async def test_job_without_pods_shows_its_controller_and_why(sim, api):
    job = await create(api, sim, "training", "quota-wait")
    body = await jobs(api)
    (item,) = body["items"]
    assert (item["jobId"], item["name"], item["status"], item["ready"]) == (
        "quota-wait", "quota-wait", "Pending", "0/0")
    # The Job controller's pods were refused by a quota: it says so in an event.
    sim.store.create("events", {
        "metadata": {"name": "quota-wait.1"},
        "involvedObject": {"kind": "Job", "namespace": "default", "name": "quota-wait",
                           "uid": job["metadata"]["uid"], "apiVersion": "batch/v1"},
        "reason": "FailedCreate", "type": "Warning", "count": 1,
        "message": 'pods "quota-wait-x" is forbidden: exceeded quota: q-default, requested: '
                   'nvidia.com/gpu=1, used: nvidia.com/gpu=0, limited: nvidia.com/gpu=0',
        "source": {"component": "job-controller"}, "firstTimestamp": NOW, "lastTimestamp": NOW,
    }, namespace="default")
    await eventually(lambda: jobs(api), lambda b: b["items"][0]["status"] == "FailedCreate")
    detail = await (await api.get("/api/v1/jobs/quota-wait")).json()
    assert detail["status"] == "FailedCreate"
    assert detail["events"][0]["reason"] == "FailedCreate"
    assert "exceeded quota" in detail["events"][0]["message"]


async def test_filters_and_pages(sim, api, node):
    train = await create(api, sim, "training", "t1")
    infer = await create(api, sim, "inference", "i1", namespace="team-x")
    for suffix in ("aaaaa", "bbbbb", "ccccc"):
        await add_pod(api, sim, train, suffix, {"phase": "Running"}, node="gpu-1")
    await add_pod(api, sim, infer, "ddddd", {"phase": "Pending"})
    assert (await jobs(api))["total"] == 4
    assert [i["jobId"] for i in (await jobs(api, kind="inference"))["items"]] == ["i1-ddddd"]
    assert (await jobs(api, namespace="team-x"))["total"] == 1
    assert (await jobs(api, status="RUNNING"))["total"] == 3
    assert (await jobs(api, status="pending"))["total"] == 1
    assert (await jobs(api, pool="default"))["total"] == 4
    assert (await jobs(api, pool="other"))["total"] == 0
    page1 = await jobs(api, pageSize=3, page=1)
    page2 = await jobs(api, pageSize=3, page=2)
    assert page1["total"] == page2["total"] == 4
    assert len(page1["items"]) == 3 and len(page2["items"]) == 1
    assert not {i["jobId"] for i in page1["items"]} & {i["jobId"] for i in page2["items"]}
    assert (await jobs(api, pageSize=3, page=9))["items"] == []
    # Newest first, then namespace and name: a stable order.
    created = {p["metadata"]["name"]: p["metadata"]["creationTimestamp"]
               for p in sim.store.list("pods")}
    order = [(i["namespace"], i["jobId"]) for i in (await jobs(api))["items"]]
    expected = sorted(order, key=lambda o: o[1])  # names first, then a stable sort by age
    expected.sort(key=lambda o: o[0])
    expected.sort(key=lambda o: created[o[1]], reverse=True)
    assert order == expected
    for params, field in (({"page": 0}, "page"), ({"pageSize": 101}, "pageSize"),
                          ({"pageSize": 0}, "pageSize"), ({"kind": "batch"}, "kind")):
        resp = await api.get("/api/v1/jobs", params=params)
        assert resp.status == 400
        assert field in (await resp.json())["details"]


async def test_detail_of_an_inference_job(sim, api, node):
    deployment = await create(api, sim, "inference", "infer",
                              extra="service:\n  port: 8080\n  healthCheck: /healthz\n")
    pod = await add_pod(api, sim, deployment, "7d9f8c6b5-x2x4z", {
        "phase": "Running", "podIP": "10.42.0.7", "startTime": NOW,
        **container({"running": {"startedAt": NOW}}, ready=True)["status"]}, node="gpu-1")
    for count in (1, 2):  # the same event twice: folded into one with its count
        sim.store.create("events", {
            "metadata": {"name": f"{pod['metadata']['name']}.{count}"},
            "involvedObject": {"kind": "Pod", "namespace": "default",
                               "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
            "reason": "Pulled", "type": "Normal", "count": 1,
            "message": 'Container image "busybox:1.36" already present on machine',
            "source": {"component": "kubelet"}, "firstTimestamp": NOW, "lastTimestamp": NOW,
        }, namespace="default")
    await eventually(lambda: api.get("/api/v1/jobs/infer"),
                     lambda r: r.status == 200)
    detail = await eventually(lambda: _json(api.get("/api/v1/jobs/infer")),
                              lambda d: d["events"] and d["events"][0]["count"] == 2)
    assert detail["job_id"] == "infer" and detail["resource_type"] == "Deployment"
    assert detail["kind"] == "inference" and detail["pool"] == "default"
    assert detail["priority"] == "medium"
    assert detail["resources"] == {"cpu": "1", "memory": "256Mi", "gpu": 0}
    assert detail["metrics"] == {}
    assert detail["events"][0] | {"age": None} == {
        "age": None, "type": "Normal", "reason": "Pulled", "from": "kubelet",
        "object": f"Pod/{pod['metadata']['name']}", "count": 2, "lastTimestamp": NOW,
        "message": 'Container image "busybox:1.36" already present on machine'}
    service = sim.store.get("services", "svc-infer", namespace="default")
    node_port = service["spec"]["ports"][0]["nodePort"]
    assert detail["access_methods"] == {
        "pod_ip_access": {"pod_ip": "10.42.0.7", "port": 8080, "url": "http://10.42.0.7:8080"},
        "node_port_access": {"node_ip": "192.168.7.1", "node_port": node_port,
                             "url": f"http://192.168.7.1:{node_port}"},
    }
    yaml_content = detail["yaml_content"]
    assert yaml_content["kind"] == "inference"
    assert yaml_content["service"]["port"] == 8080
    assert yaml_content["service"]["healthCheck"] == "/healthz"
    # The detail by pod name is the pod's view of the same job.
    by_pod = await _json(api.get(f"/api/v1/jobs/{pod['metadata']['name']}"))
    assert by_pod["name"] == "infer"


async def test_yaml_content_round_trips(sim, api):
    from gpuctl_async.documents import parse_document
    from gpuctl_async.documents.examples import JOB_EXAMPLES

    sim.store.create("nodes", node_manifest("pooled", pool="training-pool"))
    await eventually(lambda: len(api.app[CACHE].nodes), lambda n: n == 1)
    for kind, text in JOB_EXAMPLES.items():
        resp = await api.post("/api/v1/jobs", json={"yamlContent": text})
        if resp.status == 400 and "resources.pool" in (await resp.json()).get("details", {}):
            continue  # an example naming a pool this cluster lacks
        assert resp.status == 201, await resp.text()
        created = await resp.json()
        detail = await _json(api.get(f"/api/v1/jobs/{created['name']}",
                                     params={"namespace": created["namespace"]}))
        again = parse_document(orjson.dumps(detail["yaml_content"]).decode())
        original = parse_document(text)
        assert again.spec["job"] == original.spec["job"], kind
        assert again.spec["resources"] == original.spec["resources"], kind
        assert again.spec["environment"] == original.spec["environment"], kind


async def test_training_has_no_access_methods_and_unknown_is_404(sim, api):
    await create(api, sim, "training", "plain")
    detail = await _json(api.get("/api/v1/jobs/plain"))
    assert detail["access_methods"] is None and detail["resource_type"] == "Job"
    resp = await api.get("/api/v1/jobs/nope")
    assert resp.status == 404
    assert without_request_id(await resp.json()) == {"error": "Job 'nope' not found"}


async def test_detail_namespace_restricts_and_ambiguity_is_409(sim, api):
    await create(api, sim, "training", "same", namespace="ns-a")
    await create(api, sim, "compute", "same", namespace="ns-b")
    resp = await api.get("/api/v1/jobs/same")
    assert resp.status == 409
    assert "ns-a" in (await resp.json())["error"]
    detail = await _json(api.get("/api/v1/jobs/same", params={"namespace": "ns-b"}))
    assert detail["kind"] == "compute"
    assert (await api.get("/api/v1/jobs/same", params={"namespace": "ns-c"})).status == 404


async def test_reads_make_no_api_requests(sim, api, node):
    job = await create(api, sim, "notebook", "nb")
    await add_pod(api, sim, job, "0", {"phase": "Running"}, node="gpu-1")
    sim.reset_counters()
    for _ in range(5):
        await jobs(api)
        await jobs(api, status="running", kind="notebook")
        assert (await api.get("/api/v1/jobs/nb")).status == 200
        assert (await api.get("/api/v1/jobs/nb-0")).status == 200
    requests = sim.counters()["requests"]
    assert not any(verb in requests for verb in ("list", "get")), requests



async def test_a_page_asked_again_shows_a_change_at_once(sim, api, node):
    """Pages are reused within their second (ages count whole seconds) until a row changes:
    a change, or a row's move, is in the very next answer, not the next second's."""
    job = await create(api, sim, "training", "flips")
    pod = await add_pod(api, sim, job, "aaaaa", {"phase": "Pending"}, node="gpu-1")
    for phase in ("Running", "Pending", "Running", "Pending", "Running"):
        assert (await jobs(api))["items"][0]["status"] != phase  # the page is memoized now
        set_status(sim, pod, {"phase": phase})
        await settle(api, sim)
        assert (await jobs(api))["items"][0]["status"] == phase
    other = await add_pod(api, sim, job, "bbbbb", {"phase": "Running"}, node="gpu-1")
    assert {i["jobId"] for i in (await jobs(api))["items"]} == {"flips-aaaaa", "flips-bbbbb"}
    sim.store.delete("pods", other["metadata"]["name"], namespace="default",
                     grace_period_seconds=0)
    await settle(api, sim)
    assert [i["jobId"] for i in (await jobs(api))["items"]] == ["flips-aaaaa"]

async def test_a_reused_page_shows_ages_moving_on(sim, api, node):
    """A page is reused until one of its ages would read differently, never longer."""
    job = await create(api, sim, "training", "ages")
    await add_pod(api, sim, job, "aaaaa", {"phase": "Running"}, node="gpu-1")
    first = (await jobs(api))["items"][0]["age"]
    assert first.endswith("s")
    await eventually(lambda: jobs(api), lambda b: b["items"][0]["age"] != first, timeout=5)


async def test_feed_sends_snapshot_then_coalesced_changes(sim, api, node):
    job = await create(api, sim, "training", "fed")
    first = await add_pod(api, sim, job, "aaaaa", {"phase": "Pending"}, node="gpu-1")
    async with api.ws_connect("/api/v1/jobs-feed/ws", params={"kind": "training"}) as ws:
        snapshot = await ws.receive_json(timeout=5)
        assert snapshot["type"] == "snapshot"
        assert [i["jobId"] for i in snapshot["items"]] == ["fed-aaaaa"]
        # The items the list shows, field for field (the age may have moved a second on).
        listed = (await jobs(api, kind="training"))["items"]
        assert [{**i, "age": None} for i in snapshot["items"]] == [
            {**i, "age": None} for i in listed]
        assert snapshot["items"][0]["age"].endswith("s")
        for phase in ("Running", "Succeeded"):  # a burst: at most one frame for this pod
            set_status(sim, first, {"phase": phase})
        second = await add_pod(api, sim, job, "bbbbb", {"phase": "Pending"}, node="gpu-1")
        frames = []
        while len({f["item"]["jobId"] for f in frames}) < 2 or \
                not any(f["item"]["status"] == "Succeeded" for f in frames):
            frames.append(await ws.receive_json(timeout=5))
        assert {(f["type"], f["item"]["jobId"]) for f in frames} >= {
            ("MODIFIED", "fed-aaaaa"), ("ADDED", "fed-bbbbb")}
        sim.store.delete("pods", second["metadata"]["name"], namespace="default",
                         grace_period_seconds=0)
        frame = await ws.receive_json(timeout=5)
        while frame["type"] != "DELETED":
            frame = await ws.receive_json(timeout=5)
        assert frame["item"]["jobId"] == "fed-bbbbb"
        assert set(frame["item"]) == set(listed[0])  # a whole JobItem
        listed = {i["jobId"]: i["status"] for i in (await jobs(api))["items"]}
        assert listed == {"fed-aaaaa": "Succeeded"}


async def test_a_namespace_feed_hears_only_its_namespace_and_lets_go_when_closed(sim, api, node):
    from gpuctl_async.appkeys import LISTING

    sim.ensure_namespace("team-a")
    mine = await create(api, sim, "training", "mine", namespace="team-a")
    other = await create(api, sim, "training", "other")
    async with api.ws_connect("/api/v1/jobs-feed/ws", params={"namespace": "team-a"}) as ws, \
            api.ws_connect("/api/v1/jobs-feed/ws") as everything:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
        assert (await everything.receive_json(timeout=5))["type"] == "snapshot"
        await add_pod(api, sim, other, "ooooo", {"phase": "Pending"}, node="gpu-1")
        await add_pod(api, sim, mine, "mmmmm", {"phase": "Pending"}, node="gpu-1")
        seen: set[tuple[str, str]] = set()
        while not seen >= {("default", "other-ooooo"), ("team-a", "mine-mmmmm")}:
            item = (await everything.receive_json(timeout=5))["item"]
            seen.add((item["namespace"], item["jobId"]))
        heard = set()
        while ("team-a", "mine-mmmmm") not in heard:
            item = (await ws.receive_json(timeout=5))["item"]
            heard.add((item["namespace"], item["jobId"]))
        assert {namespace for namespace, _ in heard} == {"team-a"}
    listing = api.app[LISTING]
    await eventually(lambda: (listing._listeners, listing._namespace_listeners),
                     lambda listeners: listeners == ([], {}))


async def test_a_namespace_filter_lists_what_filtering_every_row_would(sim, api, node):
    sim.ensure_namespace("team-a")
    made = [await create(api, sim, "training", f"j{i}", namespace=("team-a", "default")[i % 2])
            for i in range(4)]
    pods = [await add_pod(api, sim, job, f"p{i:04d}", {"phase": "Running"}, node="gpu-1")
            for i, job in enumerate(made)]
    sim.store.delete("pods", pods[0]["metadata"]["name"], namespace="team-a",
                     grace_period_seconds=0)
    await settle(api, sim)
    everything = (await jobs(api, pageSize=100))["items"]
    for namespace in ("team-a", "default", "nowhere"):
        listed = await jobs(api, namespace=namespace, pageSize=100)
        expected = [i for i in everything if i["namespace"] == namespace]
        assert [i["jobId"] for i in listed["items"]] == [i["jobId"] for i in expected]
        assert listed["total"] == len(expected)


async def test_feed_closes_with_1001_on_shutdown(sim, aiohttp_server, tmp_path):
    import aiohttp

    from gpuctl_async.app import create_app
    from tests.conftest import sim_settings

    from gpuctl_async.appkeys import CACHE

    server = await aiohttp_server(create_app(sim_settings(sim, tmp_path)))
    assert await server.app[CACHE].wait_synced(timeout=10)  # before that the feed is 503
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.make_url("/api/v1/jobs-feed/ws")) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
            stopping = asyncio.create_task(server.close())
            message = await ws.receive(timeout=5)
            await stopping
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1001


async def _json(response_awaitable):
    response = await response_awaitable
    assert response.status == 200, await response.text()
    return await response.json()
