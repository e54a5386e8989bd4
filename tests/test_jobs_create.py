"""POST /api/v1/jobs and /api/v1/jobs/batch against the simulated cluster."""

from __future__ import annotations

import asyncio

import pytest

from gpuctl_async.sim.status import StatusError
from gpuctl_async.documents.examples import JOB_EXAMPLES
from tests.helpers import job_yaml, node_manifest, without_request_id


@pytest.fixture
async def cluster(sim):
    """Nodes like `serve --simulate` has: two pooled, one default."""
    sim.store.create("nodes", node_manifest("gpu-a", pool="training-pool", ip="192.168.1.11"))
    sim.store.create("nodes", node_manifest("gpu-b", pool="inference-pool", gpu_type="t4",
                                            ip="192.168.1.12"))
    sim.store.create("nodes", node_manifest("gpu-c", gpu_type="l4", ip="192.168.1.13"))
    return sim


def absent(sim, resource: str, name: str, namespace: str | None = None) -> bool:
    try:
        sim.store.get(resource, name, namespace=namespace)
    except StatusError as exc:
        return exc.status["code"] == 404
    return False


async def submit(api, text: str, **extra):
    return await api.post("/api/v1/jobs", json={"yamlContent": text, **extra})


async def test_training_job_is_created_as_the_reference_says(cluster, api):
    resp = await submit(api, JOB_EXAMPLES["training"])
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert {k: body[k] for k in ("jobId", "name", "kind", "status", "message", "namespace")} == {
        "jobId": "resnet-train", "name": "resnet-train", "kind": "training",
        "status": "pending", "message": "Job submitted to resource pool", "namespace": "team-a"}
    assert body["createdAt"].endswith("+00:00")

    job = cluster.store.get("jobs", "resnet-train", namespace="team-a")
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["ttlSecondsAfterFinished"] == 86400
    template = job["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    assert pod_labels["runwhere.ai/job-name"] == "resnet-train"
    assert pod_labels["runwhere.ai/job-type"] == "training"
    assert pod_labels["runwhere.ai/pool"] == "training-pool"
    assert pod_labels["runwhere.ai/priority"] == "high"
    pod = template["spec"]
    assert pod["priorityClassName"] == "gpuctl-high"
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"runwhere.ai/pool": "training-pool",
                                   "runwhere.ai/gpu-type": "a100"}
    (container,) = pod["containers"]
    assert container["env"] == [{"name": "NCCL_DEBUG", "value": "INFO"}]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"] == container["resources"]["limits"]

    namespace = cluster.store.get("namespaces", "team-a")
    assert namespace["metadata"]["labels"]["runwhere.ai/namespace"] == "true"
    assert {pc["metadata"]["name"] for pc in cluster.store.list("priorityclasses")} == {
        "gpuctl-high", "gpuctl-medium", "gpuctl-low"}


async def test_job_is_visible_right_after_the_201(cluster, api):
    resp = await submit(api, job_yaml(name="visible"))
    assert resp.status == 201
    listed = await (await api.get("/api/v1/jobs", params={"namespace": "default"})).json()
    assert "visible" in [item["name"] for item in listed["items"]]
    assert (await api.get("/api/v1/jobs/visible")).status == 200


async def test_inference_gets_deployment_probes_and_nodeport_service(cluster, api):
    resp = await submit(api, JOB_EXAMPLES["inference"])
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    name, namespace = body["name"], body["namespace"]
    deployment = cluster.store.get("deployments", name, namespace=namespace)
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": name}}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"]
    assert container["readinessProbe"]["initialDelaySeconds"] == 5
    service = cluster.store.get("services", f"svc-{name}", namespace=namespace)
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"] == {"app": name}
    assert 30000 <= service["spec"]["ports"][0]["nodePort"] <= 32767
    assert service["metadata"]["labels"]["runwhere.ai/job-name"] == name


async def test_notebook_gets_statefulset_and_service_on_8888(cluster, api):
    resp = await submit(api, job_yaml("notebook", "nb-1"))
    assert resp.status == 201, await resp.text()
    statefulset = cluster.store.get("statefulsets", "nb-1", namespace="default")
    assert statefulset["spec"]["serviceName"] == "svc-nb-1"
    service = cluster.store.get("services", "svc-nb-1", namespace="default")
    assert service["spec"]["ports"][0]["port"] == 8888
    assert service["spec"]["ports"][0]["targetPort"] == 8888
    affinity = statefulset["spec"]["template"]["spec"]["affinity"]
    (term,) = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": "runwhere.ai/pool", "operator": "DoesNotExist"}]


async def test_compute_carries_its_port_label(cluster, api):
    resp = await submit(api, job_yaml("compute", "web-1", extra="service:\n  port: 8080\n"))
    assert resp.status == 201, await resp.text()
    deployment = cluster.store.get("deployments", "web-1", namespace="default")
    assert deployment["spec"]["template"]["metadata"]["labels"]["runwhere.ai/port"] == "8080"
    assert cluster.store.get("services", "svc-web-1", namespace="default")


async def test_priority_classes_are_created_once(cluster, api):
    for index in range(3):
        assert (await submit(api, job_yaml(name=f"pc-{index}"))).status == 201
    assert cluster.request_count("create", "priorityclasses") == 3


async def test_dry_run_validates_on_the_server_and_creates_nothing(cluster, api):
    cluster.reset_counters()
    resp = await submit(api, job_yaml("inference", "dry-1", namespace="brand-new"), dryRun=True)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["dryRun"] is True
    assert [m["kind"] for m in body["manifests"]] == ["Deployment", "Service"]
    assert cluster.request_count("create", "deployments") == 1  # the dryRun=All request
    assert absent(cluster, "deployments", "dry-1", "brand-new")
    assert absent(cluster, "deployments", "dry-1", "default")
    assert absent(cluster, "namespaces", "brand-new")
    assert absent(cluster, "priorityclasses", "gpuctl-medium")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (job_yaml(extra="") .replace("cpu: 1", "cpu: 1\n  gpu: -1"), "resources.gpu"),
        (job_yaml(name="Bad_Name"), "job.name"),
        (job_yaml().replace("resources:", "resource:"), "resource"),
        ("kind: training\njob: {name: x\n", "yamlContent"),
        (job_yaml() + "---\n" + job_yaml(), "yamlContent"),
        ("kind: quota\nquota: {name: q}\ndefault: {cpu: 1}\n", "kind"),
    ],
)
async def test_invalid_documents_name_the_field(cluster, api, text, field):
    resp = await submit(api, text)
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert field in body["details"], body


async def test_yaml_syntax_error_carries_line(cluster, api):
    resp = await submit(api, "kind: training\njob:\n  name: [unclosed\n")
    assert resp.status == 400
    (message,) = (await resp.json())["details"]["yamlContent"]
    assert "line" in message and "column" in message


async def test_oversized_document_is_refused(cluster, api):
    text = job_yaml() + "# " + "x" * (300 * 1024) + "\n"
    resp = await submit(api, text)
    assert resp.status in (400, 413)
    assert "error" in await resp.json()


async def test_pool_without_nodes_is_400(cluster, api):
    resp = await submit(api, job_yaml(pool="ghost-pool"))
    assert resp.status == 400
    body = await resp.json()
    assert body["details"]["resources.pool"] == ["resource pool 'ghost-pool' has no nodes"]


async def test_duplicate_name_is_409(cluster, api):
    assert (await submit(api, job_yaml(name="dup"))).status == 201
    resp = await submit(api, job_yaml("compute", "dup"))
    assert resp.status == 409
    assert without_request_id(await resp.json()) == {
        "error": "Job 'dup' already exists in namespace 'default'"}


async def test_failed_service_rolls_back_the_controller(cluster, api):
    cluster.store.create("services", {
        "metadata": {"name": "svc-clash"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "other"}}}, namespace="default")
    resp = await submit(api, job_yaml("inference", "clash"))
    assert resp.status == 409
    assert "svc-clash" in (await resp.json())["error"]
    assert absent(cluster, "deployments", "clash", "default")
    # The pre-existing Service is untouched.
    assert cluster.store.get("services", "svc-clash", namespace="default")


async def test_batch_mixes_successes_and_failures_in_order(cluster, api):
    assert (await submit(api, job_yaml(name="taken"))).status == 201
    docs = [job_yaml(name="b-0"), "kind: nonsense\n", job_yaml(name="taken"),
            job_yaml("inference", "b-3"), job_yaml(pool="ghost")]
    resp = await api.post("/api/v1/jobs/batch", json={"yamlContents": docs})
    assert resp.status == 201
    body = await resp.json()
    assert [s["jobId"] for s in body["success"]] == ["b-0", "b-3"]
    assert [f["index"] for f in body["failed"]] == [1, 2, 4]
    assert body["failed"][0]["error"] == "Unsupported kind: nonsense"
    assert "kind" in body["failed"][0]["details"]
    assert body["failed"][1] == {
        "index": 2, "error": "Job 'taken' already exists in namespace 'default'"}
    assert body["failed"][2]["details"]["resources.pool"] == ["resource pool 'ghost' has no nodes"]
    assert cluster.store.get("services", "svc-b-3", namespace="default")


async def test_batch_over_the_limit_is_400(cluster, api):
    resp = await api.post("/api/v1/jobs/batch", json={"yamlContents": ["x"] * 101})
    assert resp.status == 400
    assert "yamlContents" in (await resp.json())["details"]


async def test_create_waiting_on_a_slow_api_server_blocks_nothing(cluster, api):
    cluster.set_latency(0.3)
    creating = asyncio.create_task(submit(api, job_yaml(name="slow")))
    loop = asyncio.get_running_loop()
    started = loop.time()
    health = await api.get("/health")
    assert health.status == 200
    listed = await api.get("/api/v1/jobs")
    assert listed.status == 200
    assert loop.time() - started < 0.25, "reads waited behind the slow create"
    assert not creating.done()
    assert (await creating).status == 201
    cluster.set_latency(0)


async def test_kubernetes_refusals_keep_their_meaning(cluster, api):
    from gpuctl_async.sim import status as st

    def policy(request):  # an admission webhook refusing the image, as a real cluster might
        raise st.invalid(request.resource, request.obj["metadata"]["name"], [
            st.FieldError.forbidden("spec.template.spec.containers[0].image",
                                    "images must come from the internal registry")])
    cluster.store.add_admission("jobs", policy)
    resp = await submit(api, job_yaml(name="policed"))
    assert resp.status == 400
    message = (await resp.json())["error"]
    assert 'Job.batch "policed" is invalid' in message and "internal registry" in message

    cluster.set_unavailable(5)
    resp = await submit(api, job_yaml("compute", "unreachable"))
    assert resp.status == 503
    assert "Kubernetes API server" in (await resp.json())["error"]
    cluster.set_unavailable(0)
