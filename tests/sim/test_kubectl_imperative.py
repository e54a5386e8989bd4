"""kubectl's imperative commands post protobuf; the simulated cluster decodes what they send
into the same objects a JSON client would have made (checked back with ``kubectl get -o json``)."""

from __future__ import annotations

import base64

import orjson

from .test_kubectl import cluster  # noqa: F401  (the standalone sim, as a fixture)


async def get_json(cluster, *args: str) -> dict:  # noqa: F811
    rc, out, err = await cluster.kubectl("get", *args, "-o", "json")
    assert rc == 0, err
    return orjson.loads(out)


async def test_create_commands_send_protobuf_and_are_understood(cluster):  # noqa: F811
    commands = [
        ("create", "namespace", "team-x"),
        ("create", "configmap", "settings", "-n", "team-x", "--from-literal=mode=fast",
         "--from-literal=level=3"),
        ("create", "secret", "generic", "creds", "-n", "team-x", "--from-literal=password=s3"),
        ("create", "serviceaccount", "robot", "-n", "team-x"),
        ("create", "deployment", "web", "-n", "team-x", "--image=nginx:1.27", "--replicas=3",
         "--port=8080"),
        ("create", "job", "once", "-n", "team-x", "--image=busybox:1.36", "--", "echo", "hi"),
        ("create", "quota", "q", "-n", "team-x",
         "--hard=cpu=2000m,memory=1073217536Ki,pods=4"),
        ("create", "priorityclass", "urgent", "--value=1000", "--description=now"),
        ("create", "rolebinding", "robot-view", "-n", "team-x", "--clusterrole=view",
         "--serviceaccount=team-x:robot"),
        ("run", "shell", "-n", "team-x", "--image=busybox:1.36", "--labels=app=shell",
         "--", "sleep", "60"),
    ]
    for command in commands:
        rc, out, err = await cluster.kubectl(*command)
        assert rc == 0, (command, err)

    configmap = await get_json(cluster, "configmap", "settings", "-n", "team-x")
    assert configmap["data"] == {"mode": "fast", "level": "3"}
    secret = await get_json(cluster, "secret", "creds", "-n", "team-x")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"s3"
    deployment = await get_json(cluster, "deployment", "web", "-n", "team-x")
    spec = deployment["spec"]
    assert spec["replicas"] == 3 and spec["selector"] == {"matchLabels": {"app": "web"}}
    (container,) = spec["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("nginx", "nginx:1.27")
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    job = await get_json(cluster, "job", "once", "-n", "team-x")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["echo", "hi"] and container["image"] == "busybox:1.36"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    quota = await get_json(cluster, "resourcequota", "q", "-n", "team-x")
    # Stored in canonical form, as the real server does.
    assert quota["spec"]["hard"] == {"cpu": "2", "memory": "1048064Mi", "pods": "4"}
    priority = await get_json(cluster, "priorityclass", "urgent")
    assert (priority["value"], priority["description"]) == (1000, "now")
    binding = await get_json(cluster, "rolebinding", "robot-view", "-n", "team-x")
    assert binding["roleRef"]["name"] == "view"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "robot",
                                    "namespace": "team-x"}]
    pod = await get_json(cluster, "pod", "shell", "-n", "team-x")
    assert pod["metadata"]["labels"] == {"app": "shell"}
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["sleep", "60"] and container["image"] == "busybox:1.36"
    assert pod["spec"]["restartPolicy"] == "Always"


async def test_namespace_deletion_takes_seconds_through_its_finalizer(cluster):  # noqa: F811
    rc, _, err = await cluster.kubectl("create", "namespace", "short-lived")
    assert rc == 0, err
    rc, out, err = await cluster.kubectl("delete", "namespace", "short-lived", "--wait=false")
    assert rc == 0, err
    namespace = await get_json(cluster, "namespace", "short-lived")
    assert namespace["status"]["phase"] == "Terminating"
    assert namespace["spec"]["finalizers"] == ["kubernetes"]
    rc, out, err = await cluster.kubectl("wait", "--for=delete", "namespace/short-lived",
                                         "--timeout=20s")
    assert rc == 0, err
