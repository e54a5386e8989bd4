"""storage.workdirs: node system directories refused, the allowlist, normalisation — over HTTP,
for single submits, dry runs and batches."""

from __future__ import annotations

import pytest

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.settings import SettingsError, load_settings
from tests.conftest import sim_settings
from tests.helpers import job_yaml

FIELD = "storage.workdirs.0.path"


def with_workdirs(*paths: str, name: str = "train-1") -> str:
    lines = "".join(f"    - path: '{path}'\n" for path in paths)
    return job_yaml(name=name, extra=f"storage:\n  workdirs:\n{lines}")


async def submit(api, text: str, **extra):
    return await api.post("/api/v1/jobs", json={"yamlContent": text, **extra})


@pytest.fixture
async def allowlisted(sim, aiohttp_client, tmp_path):
    """The app with allowed_host_paths: /data and /scratch/jobs (given un-normalised)."""
    settings = sim_settings(sim, tmp_path, allowed_host_paths=("/data/", "//scratch/./jobs"))
    client = await aiohttp_client(create_app(settings))
    assert await client.app[CACHE].wait_synced(timeout=10)
    return client


@pytest.mark.parametrize(("path", "shown", "directory"), [
    ("/etc", "/etc", "/etc"),
    ("/etc/kubernetes/pki", "/etc/kubernetes/pki", "/etc"),
    ("/proc/1", "/proc/1", "/proc"),
    ("/sys", "/sys", "/sys"),
    ("/dev/nvidia0", "/dev/nvidia0", "/dev"),
    ("/boot", "/boot", "/boot"),
    ("/root/.ssh", "/root/.ssh", "/root"),
    ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock", "/run"),
    ("/var/run/docker.sock", "/var/run/docker.sock", "/var/run"),
    ("/var/lib/kubelet/pods", "/var/lib/kubelet/pods", "/var/lib/kubelet"),
    ("/var/lib/containerd", "/var/lib/containerd", "/var/lib/containerd"),
    ("/var/lib/docker/volumes", "/var/lib/docker/volumes", "/var/lib/docker"),
    ("/usr/bin", "/usr/bin", "/usr"),
    ("/bin", "/bin", "/bin"),
    ("/sbin", "/sbin", "/sbin"),
    ("/lib", "/lib", "/lib*"),
    ("/lib64/ld.so", "/lib64/ld.so", "/lib*"),
    ("/lib32", "/lib32", "/lib*"),
    ("/libx32", "/libx32", "/lib*"),
    # Normalised before the check: doubled, trailing and "." components hide nothing.
    ("//etc", "/etc", "/etc"),
    ("/etc/", "/etc", "/etc"),
    ("/./etc", "/etc", "/etc"),
    ("/var//run/", "/var/run", "/var/run"),
])
async def test_system_directories_are_refused_naming_path_and_field(api, path, shown, directory):
    resp = await submit(api, with_workdirs(path))
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    (message,) = body["details"][FIELD]
    assert f"'{shown}'" in message and directory in message
    assert FIELD in body["error"]


@pytest.mark.parametrize(("path", "held"), [
    ("/", "/etc"), ("//", "/etc"), ("/.", "/etc"), ("/var", "/var/run"),
    ("/var/", "/var/run"), ("/var/lib", "/var/lib/kubelet"),
])
async def test_directories_holding_system_directories_are_refused(api, path, held):
    resp = await submit(api, with_workdirs(path))
    assert resp.status == 400
    (message,) = (await resp.json())["details"][FIELD]
    assert f"contains the node system directory {held}" in message


@pytest.mark.parametrize(("path", "problem"), [
    ("data", "must be an absolute path"),
    ("./data", "must be an absolute path"),
    ("/data/../etc", "must not contain '..'"),
    ("/..", "must not contain '..'"),
])
async def test_relative_paths_and_backsteps_are_refused(api, path, problem):
    resp = await submit(api, with_workdirs(path))
    assert resp.status == 400
    assert (await resp.json())["details"][FIELD] == [problem]


async def test_other_paths_are_mounted_normalised(api, sim):
    resp = await submit(api, with_workdirs("/var/log//", "/./data/x", "/opt"))
    assert resp.status == 201, await resp.text()
    job = sim.store.get("jobs", "train-1", namespace="default")
    pod = job["spec"]["template"]["spec"]
    assert [v["hostPath"]["path"] for v in pod["volumes"]] == ["/var/log", "/data/x", "/opt"]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == [
        "/var/log", "/data/x", "/opt"]


async def test_two_spellings_of_one_path_are_one_mount(api):
    resp = await submit(api, with_workdirs("/data", "/data/"))
    assert resp.status == 400
    assert (await resp.json())["details"]["storage.workdirs"] == [
        "each path may be mounted once: /data"]


async def test_every_refused_workdir_is_reported_with_other_errors(api):
    text = with_workdirs("/ok", "/etc", "/proc").replace("memory: 256Mi", "memory: lots")
    resp = await submit(api, text)
    details = (await resp.json())["details"]
    assert set(details) == {"resources.memory", "storage.workdirs.1.path",
                            "storage.workdirs.2.path"}


async def test_dry_run_refuses_system_directories(api, sim):
    resp = await submit(api, with_workdirs("/etc"), dryRun=True)
    assert resp.status == 400
    assert FIELD in (await resp.json())["details"]


async def test_batch_refuses_per_document(api, sim):
    resp = await api.post("/api/v1/jobs/batch", json={"yamlContents": [
        with_workdirs("/data", name="fine"), with_workdirs("/tmp", "/var/run", name="bad")]})
    assert resp.status == 201
    body = await resp.json()
    assert [ok["name"] for ok in body["success"]] == ["fine"]
    (failed,) = body["failed"]
    assert failed["index"] == 1
    assert list(failed["details"]) == ["storage.workdirs.1.path"]
    assert "'/var/run'" in failed["details"]["storage.workdirs.1.path"][0]


@pytest.mark.parametrize("path", ["/data", "/data/", "/data/imagenet", "//data/./x",
                                  "/scratch/jobs", "/scratch/jobs/run-1"])
async def test_allowlist_lets_in_paths_at_or_under_its_prefixes(allowlisted, path):
    resp = await submit(allowlisted, with_workdirs(path), dryRun=True)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("path", ["/data2", "/dat", "/scratch", "/scratch/jobs2", "/tmp",
                                  "/var/log"])
async def test_allowlist_refuses_everything_else_by_component(allowlisted, path):
    resp = await submit(allowlisted, with_workdirs(path), dryRun=True)
    assert resp.status == 400
    (message,) = (await resp.json())["details"][FIELD]
    assert message == (f"host path '{path}' is outside the allowed host paths "
                       "(/data, /scratch/jobs)")


async def test_allowlist_applies_to_batches_and_never_lets_in_system_directories(
        sim, aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(sim_settings(
        sim, tmp_path, allowed_host_paths=("/", "/data"))))
    assert await client.app[CACHE].wait_synced(timeout=10)
    resp = await client.post("/api/v1/jobs/batch", json={"yamlContents": [
        with_workdirs("/etc", name="a"), with_workdirs("/data/x", name="b")]})
    body = await resp.json()
    assert [ok["name"] for ok in body["success"]] == ["b"]
    assert "node system directory /etc" in body["failed"][0]["details"][FIELD][0]


def test_setting_lists_from_environment_and_file(tmp_path):
    settings = load_settings(environ={"GPUCTL_ALLOWED_HOST_PATHS": " /data/ , //scratch,,"})
    assert settings.allowed_host_paths == ("/data", "/scratch")
    config = tmp_path / "gpuctl.yaml"
    config.write_text("allowed_host_paths: [/data, /data/]\n")
    assert load_settings(config_file=config, environ={}).allowed_host_paths == ("/data",)
    assert load_settings(environ={}).allowed_host_paths == ()


@pytest.mark.parametrize("value", ["data", "/data/../etc", "/etc/gpu", "/data,/lib64/x"])
def test_setting_refuses_bad_prefixes(value):
    with pytest.raises(SettingsError, match="allowed_host_paths"):
        load_settings(environ={"GPUCTL_ALLOWED_HOST_PATHS": value})


async def test_indices_stay_true_when_an_earlier_workdir_is_invalid(api):
    resp = await submit(api, with_workdirs("data", "/etc"))
    details = (await resp.json())["details"]
    assert details["storage.workdirs.0.path"] == ["must be an absolute path"]
    assert "'/etc'" in details["storage.workdirs.1.path"][0]
