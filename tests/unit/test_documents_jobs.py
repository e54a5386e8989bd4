"""Job documents: every rule with the path it is reported under, aliases and defaults."""

from __future__ import annotations

import pytest

from gpuctl_async.kuberules.naming import DNS1123_LABEL_MESSAGE
from gpuctl_async.documents.fields import ENV_NAME_MESSAGE

from .helpers import details, document, parse


def test_minimal_training_gets_every_default():
    assert parse(document()).spec == {
        "kind": "training",
        "version": "v0.1",
        "job": {"name": "demo", "namespace": "default", "priority": "medium"},
        "environment": {"image": "busybox", "command": [], "args": [], "env": []},
        "resources": {"pool": "default", "gpu": 0, "cpu": "1", "memory": "256Mi"},
        "storage": {"workdirs": []},
    }


@pytest.mark.parametrize(("kind", "service"), [
    ("inference", {"replicas": 1, "port": 8000}),
    ("compute", {"replicas": 1, "port": 8000}),
    ("notebook", {"replicas": 1, "port": 8888}),
])
def test_service_defaults_per_kind(kind, service):
    assert parse(document(kind)).spec["service"] == service


def test_every_field_of_the_original_is_accepted():
    spec = parse(document(
        "inference",
        version="v2",
        job={"description": "d", "priority": "high", "epochs": 3, "batch_size": 64,
             "namespace": "team-a"},
        environment={"imagePullSecret": "regcred", "command": ["python"], "args": ["-m", "x"]},
        resources={"pool": "p1", "gpu": "2", "gpuType": "a100", "gpuShare": "2Gi"},
        service={"replicas": 3, "port": 9000, "healthCheck": "/healthz", "timeout": "30s"},
        model={"name": "llama", "version": "3"},
        storage={"workdirs": [{"path": "/data"}]},
    )).spec
    assert spec["version"] == "v2"
    assert spec["job"] == {"name": "demo", "namespace": "team-a", "priority": "high",
                           "description": "d", "epochs": 3, "batchSize": 64}
    assert spec["environment"]["imagePullSecret"] == "regcred"
    assert spec["resources"] == {"pool": "p1", "gpu": 2, "gpuType": "a100", "cpu": "1",
                                 "memory": "256Mi", "gpuShare": "2Gi"}
    assert spec["service"] == {"replicas": 3, "port": 9000, "healthCheck": "/healthz",
                               "timeout": "30s"}
    assert spec["model"] == {"source": "model-registry", "name": "llama", "version": "3",
                             "format": "safetensors", "cache": True}
    assert spec["storage"] == {"workdirs": [{"path": "/data"}]}


@pytest.mark.parametrize(("block", "alias", "canonical", "value"), [
    ("resources", "gpu_type", "gpuType", "a100"),
    ("resources", "gpu-type", "gpuType", "a100"),
    ("resources", "accelerator_count", "gpu", 2),
    ("resources", "gpu_share", "gpuShare", "2Gi"),
    ("environment", "image_pull_secret", "imagePullSecret", "regcred"),
    ("service", "health_check", "healthCheck", "/health"),
    ("job", "batch_size", "batchSize", 8),
])
def test_aliases_load_under_the_canonical_key(block, alias, canonical, value):
    spec = parse(document("compute", **{block: {alias: value}})).spec
    assert spec[block][canonical] == value
    assert alias not in spec[block]


def test_alias_given_twice_is_an_error():
    assert details(document(resources={"gpuType": "a", "gpu-type": "b"})) == {
        "resources.gpu-type": ["Duplicates 'gpuType'; give only one of them."]}


def test_unknown_top_level_key_is_named():
    assert details(document(resource={"gpu": 1})) == {"resource": ["Unknown field."]}


@pytest.mark.parametrize(("block", "key"), [
    ("job", "nmae"), ("environment", "images"), ("resources", "gpus"), ("storage", "workdir"),
])
def test_unknown_nested_key_is_named(block, key):
    assert details(document(**{block: {key: 1}})) == {f"{block}.{key}": ["Unknown field."]}


def test_training_has_no_service_block():
    assert details(document(service={"port": 80})) == {"service": ["Unknown field."]}


def test_notebook_service_has_no_health_check_and_one_replica():
    assert details(document("notebook", service={"healthCheck": "/", "replicas": 2})) == {
        "service.healthCheck": ["Unknown field."],
        "service.replicas": ["a notebook runs exactly 1 replica"],
    }


@pytest.mark.parametrize("block", ["job", "environment", "resources"])
def test_required_blocks(block):
    assert details(document(**{block: ...})) == {block: ["Missing data for required field."]}


def test_required_block_may_not_be_null():
    assert details(document(environment=None)) == {"environment": ["Field may not be null."]}


@pytest.mark.parametrize(("block", "key"), [
    ("job", "name"), ("environment", "image"), ("resources", "cpu"), ("resources", "memory"),
])
def test_required_fields(block, key):
    doc = document()
    del doc[block][key]
    assert details(doc) == {f"{block}.{key}": ["Missing data for required field."]}


def test_block_must_be_a_mapping():
    assert details(document(resources=[1, 2])) == {"resources": ["Invalid input type."]}


@pytest.mark.parametrize("kind", ["compute", "inference", "notebook"])
def test_null_optional_blocks_mean_defaults(kind):
    spec = parse(f"kind: {kind}\njob: {{name: a}}\nenvironment: {{image: x}}\n"
                 "resources: {cpu: 1, memory: 1Gi}\nservice:\nstorage:\n").spec
    assert spec["service"]["replicas"] == 1
    assert spec["storage"] == {"workdirs": []}


def test_null_optional_fields_mean_defaults():
    spec = parse("kind: training\njob: {name: a, priority: null, namespace: null}\n"
                 "environment: {image: x, command: null, env: null}\n"
                 "resources: {cpu: 1, memory: 1Gi, gpu: null, pool: null}\n").spec
    assert spec["job"]["priority"] == "medium"
    assert spec["job"]["namespace"] == "default"
    assert spec["environment"]["command"] == []
    assert spec["resources"]["gpu"] == 0
    assert spec["resources"]["pool"] == "default"


# job -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "trail-", "", "a.b"])
def test_job_name_must_be_a_dns_label(name):
    assert details(document(job={"name": name})) == {"job.name": [DNS1123_LABEL_MESSAGE]}


def test_job_name_leaves_room_for_the_service_name():
    assert parse(document(job={"name": "a" * 59})).name == "a" * 59
    assert details(document(job={"name": "a" * 60})) == {"job.name": [
        "must be no more than 59 characters, so that its Service name svc-<name> fits in 63"]}


def test_notebook_name_leaves_room_for_the_revision_label():
    assert parse(document("notebook", job={"name": "n" * 52})).name == "n" * 52
    assert details(document("notebook", job={"name": "n" * 53})) == {"job.name": [
        "must be no more than 52 characters for a notebook, so that its pods' "
        "controller-revision-hash label fits in 63"]}


def test_numeric_job_name_is_text():
    assert parse(document(job={"name": 123})).name == "123"


def test_namespace_must_be_a_dns_label():
    assert details(document(job={"namespace": "Team_A"})) == {
        "job.namespace": [DNS1123_LABEL_MESSAGE]}
    assert parse(document(job={"namespace": "team-a"})).namespace == "team-a"


@pytest.mark.parametrize("priority", ["urgent", "High", ""])
def test_priority(priority):
    assert details(document(job={"priority": priority})) == {
        "job.priority": ["Must be one of: high, medium, low."]}


@pytest.mark.parametrize("key", ["epochs", "batchSize"])
def test_epochs_and_batch_size_are_positive(key):
    assert details(document(job={key: 0})) == {
        f"job.{key}": ["Must be greater than or equal to 1."]}


# environment ---------------------------------------------------------------------------------

@pytest.mark.parametrize("image", ["", "  ", "my image"])
def test_image_must_be_a_reference(image):
    assert details(document(environment={"image": image})) == {
        "environment.image": ["must be non-empty and contain no whitespace"]}


def test_image_pull_secret_must_be_a_secret_name():
    assert list(details(document(environment={"imagePullSecret": "Bad Secret"}))) == [
        "environment.imagePullSecret"]


def test_command_must_be_a_list():
    assert details(document(environment={"command": "sleep 10"})) == {
        "environment.command": ["Not a valid list."]}


def test_command_and_args_items_are_strings_numbers_converted():
    spec = parse(document(environment={"command": ["sleep", 10], "args": [1.5]})).spec
    assert spec["environment"]["command"] == ["sleep", "10"]
    assert spec["environment"]["args"] == ["1.5"]
    assert details(document(environment={"args": ["ok", {"a": 1}, True]})) == {
        "environment.args.1": ["Not a valid string."],
        "environment.args.2": [
            "Not a valid string; quote booleans to mean the text (e.g. 'true')."],
    }


def test_env_list_gives_one_variable_per_item():
    spec = parse(document(environment={"env": [{"name": "A", "value": "1"},
                                               {"name": "B", "value": 2},
                                               {"name": "C"}]})).spec
    assert spec["environment"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"},
                                          {"name": "C", "value": ""}]


def test_env_mapping_form():
    spec = parse(document(environment={"env": {"A": "x", "B": 3, "C.d-e": 0.5}})).spec
    assert spec["environment"]["env"] == [{"name": "A", "value": "x"}, {"name": "B", "value": "3"},
                                          {"name": "C.d-e", "value": "0.5"}]


def test_env_errors_point_at_the_item():
    assert details(document(environment={"env": [
        {"name": "OK", "value": "1"},
        {"name": "A", "value": True},
        {"name": "1BAD", "value": "x"},
        {"value": "x"},
        "A=1",
        {"name": "B", "value": "x", "valueFrom": {}},
        {"name": "OK", "value": "2"},
    ]})) == {
        "environment.env.1.value": [
            "Not a valid string; quote booleans to mean the text (e.g. 'true')."],
        "environment.env.2.name": [ENV_NAME_MESSAGE],
        "environment.env.3.name": ["Missing data for required field."],
        "environment.env.4": ["Not a valid mapping; expected {name, value}."],
        "environment.env.5.valueFrom": ["Unknown field."],
        "environment.env.6.name": ["Duplicate environment variable name 'OK'."],
    }


def test_env_mapping_errors_point_at_the_name():
    assert details(document(environment={"env": {"GOOD": "1", "BAD NAME": "x", "V": [1]}})) == {
        "environment.env.BAD NAME.name": [ENV_NAME_MESSAGE],
        "environment.env.V.value": ["Not a valid string."],
    }


def test_env_must_be_a_list_or_mapping():
    assert details(document(environment={"env": "A=1"})) == {
        "environment.env": ["Must be a list of {name, value} items or a mapping of NAME: value."]}


# resources -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("gpu", "loaded"), [(0, 0), (8, 8), ("4", 4), (2.0, 2)])
def test_gpu_accepted(gpu, loaded):
    assert parse(document(resources={"gpu": gpu})).spec["resources"]["gpu"] == loaded


@pytest.mark.parametrize(("gpu", "message"), [
    (9, "GPU count cannot exceed 8"),
    (-1, "GPU count cannot be negative"),
    (1.5, "Not a valid integer."),
    ("two", "Not a valid integer."),
    (True, "Not a valid integer."),
])
def test_gpu_refused(gpu, message):
    assert details(document(resources={"gpu": gpu})) == {"resources.gpu": [message]}


@pytest.mark.parametrize(("cpu", "loaded"), [
    (2, "2"), ("2", "2"), (1.5, "1500m"), ("1.5", "1500m"), ("500m", "500m"), (0.25, "250m"),
    ("2000m", "2"),
])
def test_cpu_accepted_in_canonical_form(cpu, loaded):
    assert parse(document(resources={"cpu": cpu})).spec["resources"]["cpu"] == loaded


@pytest.mark.parametrize(("cpu", "message"), [
    ("fast", "Invalid CPU format, should be a number or millicores (e.g., 8000m)"),
    ([1], "Invalid CPU format, should be a number or millicores (e.g., 8000m)"),
    (True, "Invalid CPU format, should be a number or millicores (e.g., 8000m)"),
    (0, "CPU must be greater than 0"),
    ("-1", "CPU cannot be negative"),
    ("0.0005", "CPU must be a whole number of millicores (at least 1m)"),
])
def test_cpu_refused(cpu, message):
    assert details(document(resources={"cpu": cpu})) == {"resources.cpu": [message]}


@pytest.mark.parametrize(("memory", "loaded"), [
    ("512Mi", "512Mi"), ("32Gi", "32Gi"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("1G", "1G"),
    (1073741824, "1073741824"),
])
def test_memory_accepted(memory, loaded):
    assert parse(document(resources={"memory": memory})).spec["resources"]["memory"] == loaded


@pytest.mark.parametrize(("memory", "message"), [
    ("32GB", "Invalid memory format, should be like 32Gi"),
    ("lots", "Invalid memory format, should be like 32Gi"),
    ("0Mi", "Memory must be greater than 0"),
    ("-1Gi", "Memory cannot be negative"),
    ("500m", "Memory must be a whole number of bytes"),
])
def test_memory_refused(memory, message):
    assert details(document(resources={"memory": memory})) == {"resources.memory": [message]}


@pytest.mark.parametrize("key", ["pool", "gpuType"])
def test_pool_and_gpu_type_must_be_label_values(key):
    assert list(details(document(resources={key: "has space"}))) == [f"resources.{key}"]
    assert details(document(resources={key: ""})) == {f"resources.{key}": ["must not be empty"]}


# service -------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", [0, 65536, -80])
def test_port_range(port):
    assert details(document("inference", service={"port": port})) == {"service.port": [
        "Must be greater than or equal to 1 and less than or equal to 65535."]}


def test_replicas_at_least_one():
    assert details(document("compute", service={"replicas": 0})) == {
        "service.replicas": ["Must be greater than or equal to 1."]}


def test_health_check_is_a_path():
    assert details(document("inference", service={"healthCheck": "health"})) == {
        "service.healthCheck": ["must be an HTTP path starting with '/'"]}


# storage -------------------------------------------------------------------------------------

def test_workdir_paths_are_absolute_and_unique():
    assert details(document(storage={"workdirs": [
        {"path": "relative"}, {"path": "/a/../etc"}, {}, {"path": "/ok", "mode": "rw"},
    ]})) == {
        "storage.workdirs.0.path": ["must be an absolute path"],
        "storage.workdirs.1.path": ["must not contain '..'"],
        "storage.workdirs.2.path": ["Missing data for required field."],
        "storage.workdirs.3.mode": ["Unknown field."],
    }
    assert details(document(storage={"workdirs": [{"path": "/d"}, {"path": "/d"}]})) == {
        "storage.workdirs": ["each path may be mounted once: /d"]}


def test_inference_keeps_its_storage():
    spec = parse(document("inference", storage={"workdirs": [{"path": "/models"}]})).spec
    assert spec["storage"] == {"workdirs": [{"path": "/models"}]}


def test_inference_model_block_needs_name_and_version():
    assert details(document("inference", model={"source": "hf"})) == {
        "model.name": ["Missing data for required field."],
        "model.version": ["Missing data for required field."],
    }


def test_many_problems_are_reported_together():
    assert set(details(document(
        job={"name": "X", "priority": "p"},
        environment={"env": [{"name": "A", "value": None}, {"name": "9"}]},
        resources={"gpu": 10, "cpu": "x", "memory": "y"},
    ))) == {"job.name", "job.priority", "environment.env.1.name", "resources.gpu",
            "resources.cpu", "resources.memory"}
