"""Every verb and its error Status, through kubernetes_asyncio over real HTTP."""

from __future__ import annotations

import orjson
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from .helpers import pod, raw


def status_of(exc: ApiException) -> dict:
    return orjson.loads(exc.body)


async def test_create_sets_server_fields_and_defaults(k8s):
    created = await raw(k8s.core.create_namespaced_pod("default", pod("a", {"app": "x"}),
                                                       _preload_content=False))
    meta = created["metadata"]
    assert created["kind"] == "Pod" and created["apiVersion"] == "v1"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0 and meta["generation"] == 1
    assert meta["namespace"] == "default"
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert created["spec"]["restartPolicy"] == "Always"
    assert created["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    fetched = await raw(k8s.core.read_namespaced_pod("a", "default", _preload_content=False))
    assert fetched == created


async def test_generate_name_and_monotonic_resource_versions(k8s):
    body = pod("")
    body["metadata"] = {"generateName": "worker-"}
    first = await raw(k8s.core.create_namespaced_pod("default", body, _preload_content=False))
    second = await raw(k8s.core.create_namespaced_pod("default", body, _preload_content=False))
    assert first["metadata"]["name"].startswith("worker-")
    assert len(first["metadata"]["name"]) == len("worker-") + 5
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


async def test_already_exists_and_not_found_are_statuses(k8s):
    await k8s.core.create_namespaced_pod("default", pod("dup"))
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod("default", pod("dup"))
    assert exc.value.status == 409
    assert status_of(exc.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods "dup" already exists', "reason": "AlreadyExists",
        "details": {"name": "dup", "kind": "pods"}, "code": 409}
    with pytest.raises(ApiException) as exc:
        await k8s.apps.read_namespaced_deployment("nope", "default")
    assert exc.value.status == 404
    body = status_of(exc.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


async def test_namespace_must_exist(k8s):
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod("ghost", pod("a"))
    assert exc.value.status == 404
    assert status_of(exc.value)["message"] == 'namespaces "ghost" not found'


async def test_invalid_names_and_labels_are_422_with_fields(k8s):
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod("default", pod("Bad_Name", {"ok": "bad value!"}))
    assert exc.value.status == 422
    body = status_of(exc.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Pod" and body["details"]["name"] == "Bad_Name"
    fields = [c["field"] for c in body["details"]["causes"]]
    assert fields == ["metadata.name", "metadata.labels"]
    assert body["message"].startswith('Pod "Bad_Name" is invalid: [metadata.name: Invalid value')
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespace({"metadata": {"name": "a.b"}})
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "metadata.name"
    bad_quantity = pod("q")
    bad_quantity["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "lots"}}
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod("default", bad_quantity)
    assert status_of(exc.value)["details"]["causes"][0]["field"] == (
        "spec.containers[0].resources.limits[cpu]")


async def test_replace_with_optimistic_concurrency(k8s):
    created = await raw(k8s.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}, _preload_content=False))
    created["data"]["a"] = "2"
    updated = await raw(k8s.core.replace_namespaced_config_map(
        "cm", "default", created, _preload_content=False))
    assert updated["data"] == {"a": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"])
    created["data"]["a"] = "3"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        await k8s.core.replace_namespaced_config_map("cm", "default", created)
    assert exc.value.status == 409
    body = status_of(exc.value)
    assert body["reason"] == "Conflict"
    assert body["message"].startswith('Operation cannot be fulfilled on configmaps "cm": the '
                                      "object has been modified")


async def test_noop_update_keeps_resource_version(k8s):
    created = await raw(k8s.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "same"}, "data": {"a": "1"}}, _preload_content=False))
    again = await raw(k8s.core.patch_namespaced_config_map(
        "same", "default", {"data": {"a": "1"}}, _preload_content=False))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_generation_counts_spec_changes_only(k8s):
    deployment = {"metadata": {"name": "web", "labels": {"app": "web"}},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web",
                                                                 "image": "nginx:1"}]}}}}
    created = await raw(k8s.apps.create_namespaced_deployment("default", deployment,
                                                              _preload_content=False))
    assert created["metadata"]["generation"] == 1 and created["spec"]["replicas"] == 1
    labelled = await raw(k8s.apps.patch_namespaced_deployment(
        "web", "default", {"metadata": {"labels": {"tier": "front"}}}, _preload_content=False))
    assert labelled["metadata"]["generation"] == 1
    scaled = await raw(k8s.apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"replicas": 3}}, _preload_content=False))
    assert scaled["metadata"]["generation"] == 2
    status = await raw(k8s.apps.patch_namespaced_deployment_status(
        "web", "default", {"status": {"replicas": 3}, "spec": {"replicas": 9}},
        _preload_content=False))
    assert status["status"] == {"replicas": 3} and status["spec"]["replicas"] == 3
    # the main resource ignores status
    ignored = await raw(k8s.apps.patch_namespaced_deployment(
        "web", "default", {"status": {"replicas": 7}}, _preload_content=False))
    assert ignored["status"] == {"replicas": 3}


async def test_deployment_selector_must_match_template(k8s):
    deployment = {"metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "other"}},
                                        "spec": {"containers": [{"name": "c",
                                                                 "image": "nginx"}]}}}}
    with pytest.raises(ApiException) as exc:
        await k8s.apps.create_namespaced_deployment("default", deployment)
    cause = status_of(exc.value)["details"]["causes"][0]
    assert cause["field"] == "spec.template.metadata.labels"
    assert "`selector` does not match template `labels`" in cause["message"]


async def test_job_gets_generated_selector_and_rejects_always(k8s):
    job = {"metadata": {"name": "train"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "main", "image": "busybox"}]}}}}
    created = await raw(k8s.batch.create_namespaced_job("default", job, _preload_content=False))
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert created["spec"]["template"]["metadata"]["labels"]["job-name"] == "train"
    assert created["spec"]["completions"] == 1 and created["spec"]["backoffLimit"] == 6
    job["metadata"]["name"] = "always"
    job["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as exc:
        await k8s.batch.create_namespaced_job("default", job)
    assert status_of(exc.value)["details"]["causes"][0] == {
        "reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy",
        "message": 'Unsupported value: "Always": supported values: "OnFailure", "Never"'}


async def test_patch_types(k8s):
    base = pod("p", {"app": "x", "drop": "me"})
    base["spec"]["containers"].append({"name": "side", "image": "envoy:1", "env": [
        {"name": "A", "value": "1"}]})
    await k8s.core.create_namespaced_pod("default", base)
    merged = await raw(k8s.core.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"drop": None, "new": "y"}}},
        _preload_content=False))
    assert merged["metadata"]["labels"] == {"app": "x", "new": "y"}
    # strategic merge (the client's default for dict bodies): containers merge by name
    strategic = await raw(k8s.core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "side", "image": "envoy:2"}]}},
        _preload_content=False))
    containers = strategic["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"]
    assert containers[1]["image"] == "envoy:2" and containers[1]["env"] == [
        {"name": "A", "value": "1"}]
    json_patched = await raw(k8s.core.patch_namespaced_pod(
        "p", "default", [{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
                         {"op": "replace", "path": "/spec/containers/0/image",
                          "value": "busybox:2"}], _preload_content=False))
    assert json_patched["metadata"]["annotations"] == {"k": "v"}
    assert json_patched["spec"]["containers"][0]["image"] == "busybox:2"
    with pytest.raises(ApiException) as exc:
        await k8s.core.patch_namespaced_pod(
            "p", "default", [{"op": "test", "path": "/metadata/name", "value": "other"}])
    assert exc.value.status == 422
    with pytest.raises(ApiException) as exc:
        await k8s.core.patch_namespaced_pod(
            "p", "default", {"spec": {"restartPolicy": "Never"}})
    assert exc.value.status == 422
    assert status_of(exc.value)["details"]["causes"][0]["reason"] == "FieldValueForbidden"


async def test_merge_patch_content_type_replaces_lists(k8s, sim):
    base = pod("m")
    base["spec"]["containers"].append({"name": "b", "image": "x:1"})
    await k8s.core.create_namespaced_pod("default", base)
    k8s.api.set_default_header("Content-Type", "application/merge-patch+json")
    # merge patch replaces the list wholesale: dropping a container is then a spec change
    with pytest.raises(ApiException) as exc:
        await k8s.core.patch_namespaced_pod(
            "m", "default", {"spec": {"containers": [{"name": "b", "image": "x:2"}]}})
    assert exc.value.status == 422


async def test_dry_run_validates_but_stores_nothing(k8s, sim):
    before = sim.store.resource_version
    created = await raw(k8s.core.create_namespaced_pod("default", pod("dry"), dry_run="All",
                                                       _preload_content=False))
    assert created["metadata"]["name"] == "dry" and "resourceVersion" not in created["metadata"]
    with pytest.raises(ApiException) as exc:
        await k8s.core.read_namespaced_pod("dry", "default")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod("default", pod("Bad"), dry_run="All")
    assert exc.value.status == 422
    await k8s.core.create_namespaced_pod("default", pod("real"))
    await k8s.core.delete_namespaced_pod("real", "default", dry_run="All")
    await k8s.core.patch_namespaced_pod("real", "default", {"metadata": {"labels": {"a": "b"}}},
                                        dry_run="All")
    stored = sim.store.get("pods", "real", "default")
    assert stored["metadata"].get("labels") == {}
    assert sim.store.resource_version == before + 1


async def test_field_validation(k8s, sim):
    body = {"metadata": {"name": "cm", "bogus": 1}, "data": {}, "spec": {}}
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_config_map("default", body, field_validation="Strict")
    assert exc.value.status == 400
    assert 'unknown field "spec"' in status_of(exc.value)["message"]
    response = await k8s.core.create_namespaced_config_map(
        "default", body, field_validation="Warn", _preload_content=False)
    warning = response.headers.get("Warning")
    created = orjson.loads(await response.read())
    assert 'unknown field \\"metadata.bogus\\"' in warning
    assert "spec" not in created and "bogus" not in created["metadata"]
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_config_map("default", body, field_validation="Loud")
    assert exc.value.status == 400


async def test_node_ports_are_allocated_without_collisions(k8s):
    def service(name: str, node_port: int | None = None) -> dict:
        port = {"port": 80}
        if node_port:
            port["nodePort"] = node_port
        return {"metadata": {"name": name},
                "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]}}

    first = await raw(k8s.core.create_namespaced_service("default", service("a"),
                                                         _preload_content=False))
    port = first["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767 and first["spec"]["clusterIP"].startswith("10.")
    assert first["spec"]["ports"][0]["targetPort"] == 80
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_service("default", service("b", port))
    cause = status_of(exc.value)["details"]["causes"][0]
    assert cause["field"] == "spec.ports[0].nodePort"
    assert cause["message"] == f"Invalid value: {port}: provided port is already allocated"
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_service("default", service("c", 80))
    assert "valid range" in status_of(exc.value)["details"]["causes"][0]["message"]
    others = [await raw(k8s.core.create_namespaced_service("default", service(f"s{i}"),
                                                           _preload_content=False))
              for i in range(20)]
    ports = {s["spec"]["ports"][0]["nodePort"] for s in others} | {port}
    assert len(ports) == 21
    await k8s.core.delete_namespaced_service("a", "default")
    reused = await raw(k8s.core.create_namespaced_service("default", service("b", port),
                                                          _preload_content=False))
    assert reused["spec"]["ports"][0]["nodePort"] == port


async def test_cluster_scoped_resources(k8s):
    node = await raw(k8s.core.create_node({"metadata": {"name": "gpu-1", "labels": {
        "runwhere.ai/pool": "a"}}, "status": {"capacity": {"nvidia.com/gpu": "8"}}},
        _preload_content=False))
    assert "namespace" not in node["metadata"]
    assert node["status"]["capacity"] == {"nvidia.com/gpu": "8"}
    pc = await raw(k8s.scheduling.create_priority_class(
        {"metadata": {"name": "gpuctl-high"}, "value": 1000000}, _preload_content=False))
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"
    with pytest.raises(ApiException) as exc:
        await k8s.scheduling.create_priority_class({"metadata": {"name": "nov"}})
    assert exc.value.status == 422


async def test_status_subresource_and_binding(k8s, sim):
    await k8s.core.create_namespaced_pod("default", pod("s"))
    updated = await raw(k8s.core.patch_namespaced_pod_status(
        "s", "default", {"status": {"phase": "Running"}, "metadata": {"labels": {"x": "y"}}},
        _preload_content=False))
    assert updated["status"]["phase"] == "Running"
    assert updated["metadata"]["labels"] == {}
    # The real server answers a binding with a Success Status (kubernetes_asyncio's V1Binding
    # model cannot hold it), hence the raw call.
    bound = await raw(k8s.core.create_namespaced_pod_binding(
        "s", "default", {"metadata": {"name": "s"}, "target": {"kind": "Node", "name": "n1"}},
        _preload_content=False))
    assert bound["status"] == "Success"
    bound = sim.store.get("pods", "s", "default")
    assert bound["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod_binding(
            "s", "default", {"metadata": {"name": "s"}, "target": {"kind": "Node", "name": "n2"}})
    assert exc.value.status == 409


async def test_unknown_paths_and_methods_are_statuses(k8s, sim):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.url}/api/v1/widgets") as response:
            assert response.status == 404
            assert (await response.json())["reason"] == "NotFound"
        async with session.put(f"{sim.url}/api/v1/namespaces/default/pods") as response:
            assert response.status == 405
            assert (await response.json())["reason"] == "MethodNotAllowed"
        async with session.patch(f"{sim.url}/api/v1/namespaces/default",
                                 data=b"{}", headers={"Content-Type": "text/plain"}) as response:
            assert response.status == 415
